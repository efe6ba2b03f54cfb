//! Standard Webhooks signatures: `v1,BASE64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))`,
//! verified over the raw body bytes, in constant time, against every configured secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;

pub use crate::domain::WebhookSecret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the webhook-id, webhook-timestamp and webhook-signature headers are required")]
    MissingHeaders,
    #[error("webhook-timestamp must be Unix seconds")]
    InvalidTimestamp,
    #[error("webhook-timestamp is outside the allowed tolerance")]
    TimestampOutOfTolerance,
    #[error("no signature matches")]
    InvalidSignature,
}

/// The three headers of a delivery, as received.
pub struct SignedDelivery<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signatures: &'a str,
    pub body: &'a [u8],
}

/// Checks the timestamp (both directions) and then every `v1,` entry against every secret.
/// Entries of other versions are ignored; an entry that does not decode to a full 32-byte tag
/// can never match (`verify_slice` compares length and bytes in constant time).
pub fn verify(
    delivery: &SignedDelivery<'_>,
    secrets: &[WebhookSecret],
    now_unix: i64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    if delivery.id.is_empty() || delivery.timestamp.is_empty() || delivery.signatures.is_empty() {
        return Err(SignatureError::MissingHeaders);
    }
    let timestamp: i64 = delivery
        .timestamp
        .parse()
        .ok()
        .filter(|t: &i64| *t >= 0 && delivery.timestamp.bytes().all(|b| b.is_ascii_digit()))
        .ok_or(SignatureError::InvalidTimestamp)?;
    if now_unix.abs_diff(timestamp) > tolerance_secs {
        return Err(SignatureError::TimestampOutOfTolerance);
    }
    let tags: Vec<Vec<u8>> = delivery
        .signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    for secret in secrets {
        let mac = secret.mac(delivery.id, delivery.timestamp, delivery.body);
        if tags.iter().any(|tag| mac.clone().verify_slice(tag).is_ok()) {
            return Ok(());
        }
    }
    Err(SignatureError::InvalidSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example from the Standard Webhooks specification's reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: &str = "1614265330";
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn delivery<'a>(signatures: &'a str, timestamp: &'a str) -> SignedDelivery<'a> {
        SignedDelivery {
            id: SPEC_ID,
            timestamp,
            signatures,
            body: SPEC_BODY,
        }
    }

    fn secrets() -> Vec<WebhookSecret> {
        vec![WebhookSecret::parse(SPEC_SECRET).unwrap()]
    }

    const NOW: i64 = 1614265330;

    #[test]
    fn the_specification_vector_verifies() {
        assert_eq!(
            verify(&delivery(SPEC_SIG, SPEC_TS), &secrets(), NOW, 300),
            Ok(())
        );
        assert_eq!(secrets()[0].sign(SPEC_ID, NOW, SPEC_BODY), SPEC_SIG);
    }

    #[test]
    fn any_entry_and_any_secret_may_match() {
        let both = format!("v1,AAAA v2,{} {SPEC_SIG}", &SPEC_SIG[3..]);
        assert_eq!(
            verify(&delivery(&both, SPEC_TS), &secrets(), NOW, 300),
            Ok(())
        );
        let rotated = vec![
            WebhookSecret::parse("whsec_b2xkc2VjcmV0").unwrap(),
            secrets().remove(0),
        ];
        assert_eq!(
            verify(&delivery(SPEC_SIG, SPEC_TS), &rotated, NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn truncated_empty_and_altered_signatures_fail() {
        for bad in [
            "v1,",
            "v1,AAAA",
            "v1,g0hM9SsE+OTPJTGt",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "garbage",
        ] {
            assert_eq!(
                verify(&delivery(bad, SPEC_TS), &secrets(), NOW, 300),
                Err(SignatureError::InvalidSignature),
                "{bad}"
            );
        }
        let tampered = SignedDelivery {
            body: br#"{"test": 2432232315}"#,
            ..delivery(SPEC_SIG, SPEC_TS)
        };
        assert_eq!(
            verify(&tampered, &secrets(), NOW, 300),
            Err(SignatureError::InvalidSignature)
        );
        let other = vec![WebhookSecret::parse("whsec_b2xkc2VjcmV0").unwrap()];
        assert_eq!(
            verify(&delivery(SPEC_SIG, SPEC_TS), &other, NOW, 300),
            Err(SignatureError::InvalidSignature)
        );
    }

    #[test]
    fn timestamps_are_checked_both_ways() {
        assert_eq!(
            verify(&delivery(SPEC_SIG, SPEC_TS), &secrets(), NOW + 301, 300),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(&delivery(SPEC_SIG, SPEC_TS), &secrets(), NOW - 301, 300),
            Err(SignatureError::TimestampOutOfTolerance)
        );
        assert_eq!(
            verify(&delivery(SPEC_SIG, SPEC_TS), &secrets(), NOW + 300, 300),
            Ok(())
        );
        for bad in [
            "-1614265330",
            "1614265330.5",
            "abc",
            "+1614265330",
            " 1614265330",
        ] {
            assert_eq!(
                verify(&delivery(SPEC_SIG, bad), &secrets(), NOW, 300),
                Err(SignatureError::InvalidTimestamp),
                "{bad}"
            );
        }
        assert_eq!(
            verify(&delivery(SPEC_SIG, ""), &secrets(), NOW, 300),
            Err(SignatureError::MissingHeaders)
        );
    }

    #[test]
    fn a_signature_is_bound_to_its_id_and_timestamp() {
        // A replayer who re-stamps an old delivery, or reuses its signature under another id,
        // does not verify: both are part of the signed content.
        let restamped = SPEC_TS.parse::<i64>().unwrap() + 60;
        assert_eq!(
            verify(
                &delivery(SPEC_SIG, &restamped.to_string()),
                &secrets(),
                NOW,
                300
            ),
            Err(SignatureError::InvalidSignature)
        );
        let other_id = SignedDelivery {
            id: "msg_other",
            ..delivery(SPEC_SIG, SPEC_TS)
        };
        assert_eq!(
            verify(&other_id, &secrets(), NOW, 300),
            Err(SignatureError::InvalidSignature)
        );
    }

    #[test]
    fn secrets_must_be_whsec_base64() {
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(WebhookSecret::parse("whsec_***").is_err());
        assert!(WebhookSecret::parse("whsec_").is_err());
    }
}
