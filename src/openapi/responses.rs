//! The error answers of the document: the RFC 9457 `Problem` schema, and per route the
//! statuses it answers with the `code` values each can carry (CONTRACT §4).
//!
//! A route lists its problems once, with [`problems!`], next to its handler:
//!
//! ```ignore
//! problems!(DraftProblems {
//!     404 "the draft or the store is unknown" [not_found, store_not_found],
//! });
//! #[utoipa::path(..., responses((status = 200, ...), DraftProblems))]
//! ```
//!
//! Each status becomes a `application/problem+json` response whose schema is `Problem` with
//! `code` narrowed to those values, and `Retry-After` where the service sends it. Answers
//! every route can give (a 503 `database_unavailable`, a 500) are the `default` response that
//! `finish` adds to every operation.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::response::Response;

/// An RFC 9457 problem document, the body of every error answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Problem {
    /// A URI naming the problem type: `https://docs.mango.store/problems/{code}`.
    #[schema(
        rename = "type",
        example = "https://docs.mango.store/problems/not_found"
    )]
    kind: String,
    /// The status's reason phrase.
    #[schema(example = "Not Found")]
    title: String,
    #[schema(example = 404, minimum = 400, maximum = 599)]
    status: u16,
    /// For people; never an internal message.
    #[schema(example = "no route matches this path")]
    detail: String,
    /// Stable and machine-readable (snake_case); each operation lists the ones it answers.
    #[schema(example = "not_found", pattern = "^[a-z][a-z_]*$")]
    code: String,
}

/// The statuses whose answers carry `Retry-After`: rate limits, upstream and database
/// outages, and a 502 when a retry can help soon (`finish` marks which are required).
fn retry_after(status: u16) -> bool {
    matches!(status, 429 | 502 | 503)
}

/// One problem response: `Problem` with `code` limited to `codes`.
pub fn problem_response(status: u16, description: &str, codes: &[&str]) -> Value {
    let mut response = json!({
        "description": format!("{description} (`code`: {})", codes.join(", ")),
        "content": {"application/problem+json": {"schema": {
            "allOf": [
                {"$ref": "#/components/schemas/Problem"},
                {"type": "object", "properties": {
                    "status": {"type": "integer", "enum": [status]},
                    "code": {"type": "string", "enum": codes},
                }},
            ],
        }}},
    });
    if retry_after(status) {
        response["headers"] = json!({"Retry-After": {
            "description": "Seconds to wait before trying again",
            "schema": {"type": "integer", "minimum": 0},
        }});
    }
    response
}

/// The responses of a [`problems!`] list, for `utoipa::IntoResponses`.
pub fn responses(list: &[(u16, &str, &[&str])]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description, codes)| {
            let response = serde_json::from_value(problem_response(*status, description, codes))
                .expect("a problem response is an OpenAPI response");
            (status.to_string(), response)
        })
        .collect()
}

/// A unit type whose `utoipa::IntoResponses` are `$responses`, for `responses(...)`.
macro_rules! responses_type {
    ($(#[$meta:meta])* $name:ident => $responses:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $responses
            }
        }
    };
}
pub(crate) use responses_type;

/// Declares a route's error answers as a type for `#[utoipa::path(responses(...))]`:
/// `status "what it means" [code, …]`, one line per status.
macro_rules! problems {
    ($(#[$meta:meta])* $name:ident { $($status:literal $description:literal [$($code:ident),+ $(,)?]),+ $(,)? }) => {
        $crate::openapi::responses::responses_type!($(#[$meta])* $name =>
            $crate::openapi::responses::responses(&[
                $(($status, $description, &[$(stringify!($code)),+])),+
            ])
        );
    };
}
pub(crate) use problems;

/// 200 with the schema `body` and 304, as the catalog's read path answers both: `x-cache`,
/// a strong `ETag` of the exact bytes, `Cache-Control: public, no-cache`.
pub fn cached(body: &str, description: &str) -> BTreeMap<String, RefOr<Response>> {
    let headers = json!({
        "x-cache": {"description": "HIT: within its TTL; MISS: fetched from Biz for this request; STALE: past its TTL (Biz failed, or a refresh is under way)",
                    "schema": {"type": "string", "enum": ["HIT", "MISS", "STALE"]}},
        "ETag": {"description": "Strong validator of the exact bytes; send it back in `If-None-Match`",
                 "schema": {"type": "string", "pattern": "^\"[!#-~]*\"$"}},
        "Cache-Control": {"description": "`public, no-cache`: revalidate every time",
                          "schema": {"type": "string"}},
    });
    let ok = json!({"description": description, "headers": headers,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}});
    let not_modified = json!({"description": "Not modified: `If-None-Match` matched the ETag (no body)",
                              "headers": headers});
    [("200", ok), ("304", not_modified)]
        .into_iter()
        .map(|(status, response)| {
            let response =
                serde_json::from_value(response).expect("a cached answer is an OpenAPI response");
            (status.to_string(), response)
        })
        .collect()
}

/// Declares a cached answer (see [`cached`]) as a type for `responses(...)`.
macro_rules! cached_answers {
    ($name:ident, $body:literal, $description:literal) => {
        $crate::openapi::responses::responses_type!($name =>
            $crate::openapi::responses::cached($body, $description)
        );
    };
}
pub(crate) use cached_answers;
