//! The `Stripe-Signature` header of a webhook: `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, where each
//! `v1` is HMAC-SHA256 of `"{t}.{payload}"` under an endpoint secret. An event is believed only
//! when one `v1` matches one of the secrets (several while a secret is rotated) and `t` is within
//! the tolerance of now, so a captured request cannot be replayed later. Other schemes (`v0`) are
//! ignored, as Stripe's own libraries do.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::time::Duration;

/// Stripe's default tolerance: five minutes either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Why a webhook is not believed. Each is answered `400` and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp or no v1 signature")]
    Malformed,
    #[error("the signature's timestamp is {age_s} s from now, past the tolerance")]
    Stale { age_s: i64 },
    #[error("no v1 signature matches the payload under any configured secret")]
    Mismatch,
}

/// The `Stripe-Signature` header Stripe sends for `payload` at `t` (unix seconds), signed with
/// `secret`: for tests and local tools that play Stripe's part.
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(payload);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Check `header` (the `Stripe-Signature` value) for `payload` (the raw body, as received) at
/// `now_s` (unix seconds) against every secret in `secrets`.
///
/// # Errors
/// [`SignatureError`] when the header is missing or malformed, its timestamp is outside
/// `tolerance`, or no signature matches.
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[SecretString],
    now_s: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", hex_sig)) => {
                if let Ok(sig) = hex::decode(hex_sig) {
                    signatures.push(sig);
                }
            }
            _ => {}
        }
    }
    let (Some(t), false) = (timestamp, signatures.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    let age_s = now_s - t;
    if age_s.unsigned_abs() > tolerance.as_secs() {
        return Err(SignatureError::Stale { age_s });
    }
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
            continue;
        };
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(payload);
        let expected = mac.finalize().into_bytes();
        // `ct_eq` compares in constant time: how much of a guess matched must not show in timing.
        if signatures
            .iter()
            .any(|sig| bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &sig[..])))
        {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_170_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// What Stripe sends: `t=…,v1=…` signed with `key`.
    fn signed(key: &str, t: i64, body: &[u8]) -> String {
        sign(body, key, t)
    }

    fn check(header: Option<&str>, body: &[u8]) -> Result<(), SignatureError> {
        verify(body, header, &[secret("whsec_a")], NOW, DEFAULT_TOLERANCE)
    }

    #[test]
    fn a_payload_signed_with_the_endpoint_secret_within_five_minutes_is_believed() {
        assert_eq!(
            check(Some(&signed("whsec_a", NOW - 299, BODY)), BODY),
            Ok(())
        );
        assert_eq!(
            check(Some(&signed("whsec_a", NOW + 10, BODY)), BODY),
            Ok(())
        );
    }

    #[test]
    fn an_altered_payload_another_secret_or_a_stale_timestamp_is_refused() {
        let header = signed("whsec_a", NOW, BODY);
        assert_eq!(
            check(
                Some(&header),
                br#"{"id":"evt_1","type":"payment_intent.succeeded "}"#
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(Some(&signed("whsec_b", NOW, BODY)), BODY),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(Some(&signed("whsec_a", NOW - 301, BODY)), BODY),
            Err(SignatureError::Stale { age_s: 301 })
        );
        // The timestamp is signed too: moving it breaks the signature.
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW - 1));
        assert_eq!(check(Some(&moved), BODY), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_or_malformed_headers_are_refused() {
        assert_eq!(check(None, BODY), Err(SignatureError::Missing));
        for header in [
            "",
            "t=1",
            "v1=abcd",
            "t=x,v1=abcd",
            "garbage",
            "t=1796170000,v1=zz",
        ] {
            assert!(
                matches!(
                    check(Some(header), BODY),
                    Err(SignatureError::Malformed | SignatureError::Stale { .. })
                ),
                "{header}"
            );
        }
    }

    #[test]
    fn any_of_several_signatures_and_any_of_several_secrets_may_match_during_a_rotation() {
        let old = signed("whsec_old", NOW, BODY);
        let new = signed("whsec_new", NOW, BODY);
        let both = format!("{old},v1={}", new.split("v1=").nth(1).unwrap());
        let secrets = [secret("whsec_new")];
        assert_eq!(
            verify(BODY, Some(&both), &secrets, NOW, DEFAULT_TOLERANCE),
            Ok(())
        );
        let rotating = [secret("whsec_new"), secret("whsec_old")];
        assert_eq!(
            verify(BODY, Some(&old), &rotating, NOW, DEFAULT_TOLERANCE),
            Ok(())
        );
        assert_eq!(
            verify(BODY, Some(&old), &secrets, NOW, DEFAULT_TOLERANCE),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_v0_signature_alone_is_not_enough() {
        let v0 = signed("whsec_a", NOW, BODY).replace("v1=", "v0=");
        assert_eq!(check(Some(&v0), BODY), Err(SignatureError::Malformed));
    }
}
