//! Order-message signatures: buy and the sweeper sign every message they send, settle confirms
//! only messages whose signature checks out. A message that anyone else put on the queue (a made
//! up order, a copy with another buyer or quantity) is refused and ends in the DLQ.
//!
//! HMAC-SHA256 over the exact body, hex-encoded, in the SQS message attribute
//! [`SIGNATURE_ATTRIBUTE`]. The key (`ORDER_SIGNING_KEY`, at least 32 bytes) is shared by buy,
//! reconcile and settle only.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The SQS message attribute that carries the signature.
pub const SIGNATURE_ATTRIBUTE: &str = "ff-sig";
/// The shortest key accepted.
pub const MIN_KEY_LEN: usize = 32;

/// Signs and verifies order messages with one key.
#[derive(Clone)]
pub struct Signer {
    keyed: Hmac<Sha256>,
}

/// Where the key comes from: `ORDER_SIGNING_KEY_SECRET_ARN` (a Secrets Manager secret holding the
/// key as a bare string, as the template generates it) or else `ORDER_SIGNING_KEY` itself.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SigningSettings {
    #[serde(rename = "order_signing_key")]
    pub key: Option<secrecy::SecretString>,
    #[serde(rename = "order_signing_key_secret_arn")]
    pub secret: Option<String>,
}

impl crate::settings::FromEnv for SigningSettings {}

/// Why no signer could be made.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error(transparent)]
    Config(#[from] crate::settings::ConfigError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("ORDER_SIGNING_KEY: {0}")]
    Weak(#[source] WeakKey),
}

impl SigningSettings {
    /// The signer, its key read from Secrets Manager when a secret is configured.
    ///
    /// # Errors
    /// [`SignerError`] when no key is configured, the secret cannot be read, or the key is short.
    pub async fn signer(&self, sdk: &aws_config::SdkConfig) -> Result<Signer, SignerError> {
        use secrecy::ExposeSecret;
        let key = match (&self.secret, &self.key) {
            (Some(id), _) => crate::secrets::read(sdk, id).await?.password,
            (None, Some(key)) => key.clone(),
            (None, None) => {
                return Err(crate::settings::ConfigError::Missing {
                    name: "ORDER_SIGNING_KEY".into(),
                    hint: "a secret of at least 32 bytes shared by buy, reconcile and settle (or ORDER_SIGNING_KEY_SECRET_ARN)",
                }
                .into())
            }
        };
        Signer::new(key.expose_secret().as_bytes()).map_err(SignerError::Weak)
    }
}

/// The key is too short to be a secret.
#[derive(Debug, thiserror::Error)]
#[error("the order signing key must be at least {MIN_KEY_LEN} bytes")]
pub struct WeakKey;

impl Signer {
    /// # Errors
    /// [`WeakKey`] when `key` is shorter than [`MIN_KEY_LEN`].
    pub fn new(key: &[u8]) -> Result<Self, WeakKey> {
        if key.len() < MIN_KEY_LEN {
            return Err(WeakKey);
        }
        Ok(Self {
            keyed: Hmac::<Sha256>::new_from_slice(key).map_err(|_| WeakKey)?,
        })
    }

    /// The signature of `body`.
    pub fn sign(&self, body: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is this key's signature of `body` (compared in constant time).
    pub fn verify(&self, body: &str, signature: &str) -> bool {
        let Ok(given) = hex::decode(signature) else {
            return false;
        };
        let mut mac = self.keyed.clone();
        mac.update(body.as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signature_verifies_only_for_the_same_body_and_key() {
        let s = Signer::new(KEY).unwrap();
        let sig = s.sign(r#"{"quantity":1}"#);
        assert!(s.verify(r#"{"quantity":1}"#, &sig));
        assert!(!s.verify(r#"{"quantity":2}"#, &sig));
        assert!(!s.verify(r#"{"quantity":1}"#, "not hex"));
        assert!(!s.verify(r#"{"quantity":1}"#, ""));
        let other = Signer::new(b"another key of thirty-two bytes!").unwrap();
        assert!(!other.verify(r#"{"quantity":1}"#, &sig));
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(Signer::new(b"short").is_err());
    }
}
