//! Who is calling the admin API: the operator (`MANGO_ADMIN_TOKEN`, every store) or a store's
//! own API key (that store only). Keys are stored as SHA-256 hashes and found by that hash.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::db::StoreRecord;
use crate::error::ApiError;
use crate::extract::Path;
use crate::tenant::is_valid_slug;

pub const API_KEY_PREFIX: &str = "msk_";

/// A new store API key (`msk_` + 32 random bytes) and the hash that is stored instead of it.
pub fn new_api_key() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash_api_key(&key);
    (key, hash)
}

pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub enum Caller {
    Operator,
    /// A store key: the store, and the hash of the key presented (what a rotation is
    /// conditional on).
    Store(Box<StoreRecord>, String),
}

impl Caller {
    /// Whether the caller may act on the store `slug`. A store key naming another store is
    /// answered as if that store did not exist.
    pub fn check_store(&self, slug: &str) -> Result<(), ApiError> {
        match self {
            Caller::Operator => Ok(()),
            Caller::Store(own, _) if own.slug == slug => Ok(()),
            Caller::Store(..) => Err(ApiError::StoreNotFound),
        }
    }
}

/// Only the operator.
pub struct Operator;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let operator = state.config.admin_token.expose().as_bytes();
        if bool::from(token.as_bytes().ct_eq(operator)) {
            return Ok(Caller::Operator);
        }
        if token.starts_with(API_KEY_PREFIX) && token.len() <= 128 {
            let hash = hash_api_key(token);
            if let Some(store) = state.db.store_by_api_key_hash(&hash).await? {
                return Ok(Caller::Store(Box::new(store), hash));
            }
        }
        Err(ApiError::Unauthorized)
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Operator => Ok(Operator),
            // A store key is a valid credential, but not for operator routes.
            Caller::Store(..) => Err(ApiError::other(
                axum::http::StatusCode::FORBIDDEN,
                "forbidden",
                "this route needs the operator token",
            )),
        }
    }
}

/// The store named by the route's `{slug}`, once the caller is known to be allowed on it.
/// Authentication comes first (401 before anything else), and a store key naming another
/// store gets the same 404 as a store that does not exist, so keys cannot probe for slugs.
pub struct AdminStore(pub StoreRecord);

/// [`AdminStore`] with who asked for it: for the routes whose effect depends on the caller
/// (a key rotation is conditional on the key the caller authenticated with).
pub struct AdminStoreCaller {
    pub store: StoreRecord,
    pub caller: Caller,
}

#[derive(serde::Deserialize)]
struct SlugParam {
    slug: String,
}

impl FromRequestParts<AppState> for AdminStore {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let AdminStoreCaller { store, .. } =
            AdminStoreCaller::from_request_parts(parts, state).await?;
        Ok(Self(store))
    }
}

impl FromRequestParts<AppState> for AdminStoreCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let Path(SlugParam { slug }) = Path::from_request_parts(parts, state).await?;
        caller.check_store(&slug)?;
        if !is_valid_slug(&slug) {
            return Err(ApiError::StoreNotFound);
        }
        let store = state
            .db
            .store_by_slug(&slug)
            .await?
            .ok_or(ApiError::StoreNotFound)?;
        crate::context::record_store(&std::sync::Arc::from(store.slug.as_str()));
        Ok(Self { store, caller })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_hashed() {
        let (a, hash_a) = new_api_key();
        let (b, _) = new_api_key();
        assert!(a.starts_with("msk_"));
        assert!(a.len() >= 4 + 43);
        assert_ne!(a, b);
        assert_eq!(hash_a, hash_api_key(&a));
        assert!(!hash_a.contains(&a[4..]));
    }
}
