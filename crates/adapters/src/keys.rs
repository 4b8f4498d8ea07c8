//! The keys buy, settle and the queue function sign with, read once at start: from a Secrets
//! Manager secret when one is named, else from the environment.

use crate::secrets::SecretError;
use flashflow::domain::signing::{Signer, WeakKey};
use flashflow::domain::waiting_room::tokens::TokenKeys;
use flashflow_settings::ConfigError;

/// Where the key comes from: `ORDER_SIGNING_KEY_SECRET_ARN` (a Secrets Manager secret holding the
/// key as a bare string, as the template generates it) or else `ORDER_SIGNING_KEY` itself. Buy and
/// settle read it; nothing else does.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SigningSettings {
    #[serde(rename = "order_signing_key")]
    pub key: Option<secrecy::SecretString>,
    #[serde(rename = "order_signing_key_secret_arn")]
    pub secret: Option<String>,
}

impl flashflow_settings::FromEnv for SigningSettings {}

/// Why no signer could be made.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] SecretError),
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
        let Some(key) = key_from(sdk, self.secret.as_deref(), self.key.as_ref()).await? else {
            return Err(ConfigError::Missing {
                name: "ORDER_SIGNING_KEY".into(),
                hint: "a secret of at least 32 bytes shared by buy, reconcile and settle (or ORDER_SIGNING_KEY_SECRET_ARN)",
            }
            .into());
        };
        Signer::new(key.expose_secret().as_bytes()).map_err(SignerError::Weak)
    }
}

/// The waiting room's key, which signs its tickets, admission tokens and challenges:
/// `ADMISSION_KEY_SECRET_ARN` (a Secrets Manager secret holding the key as a bare string) or
/// else `ADMISSION_KEY`. The queue function and buy read it; nothing else does.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct AdmissionSettings {
    #[serde(rename = "admission_key")]
    pub key: Option<secrecy::SecretString>,
    #[serde(rename = "admission_key_secret_arn")]
    pub secret: Option<String>,
}

impl flashflow_settings::FromEnv for AdmissionSettings {}

impl AdmissionSettings {
    /// The keys, when configured (`None`: this deployment has no waiting room key, and no
    /// admission checks out).
    ///
    /// # Errors
    /// [`SignerError`] when the secret cannot be read or the key is short.
    pub async fn keys(
        &self,
        sdk: &aws_config::SdkConfig,
    ) -> Result<Option<TokenKeys>, SignerError> {
        use secrecy::ExposeSecret;
        let Some(key) = key_from(sdk, self.secret.as_deref(), self.key.as_ref()).await? else {
            return Ok(None);
        };
        TokenKeys::new(key.expose_secret().as_bytes())
            .map(Some)
            .ok_or(SignerError::Weak(WeakKey))
    }

    /// The keys, which the waiting room's own function cannot do without.
    ///
    /// # Errors
    /// As [`AdmissionSettings::keys`], and when none is configured.
    pub async fn required_keys(
        &self,
        sdk: &aws_config::SdkConfig,
    ) -> Result<TokenKeys, SignerError> {
        self.keys(sdk).await?.ok_or_else(|| {
            ConfigError::Missing {
                name: "ADMISSION_KEY".into(),
                hint: "a secret of at least 32 bytes shared by the queue function and buy (or ADMISSION_KEY_SECRET_ARN)",
            }
            .into()
        })
    }
}

/// A key from its Secrets Manager secret when one is named, else from the environment.
async fn key_from(
    sdk: &aws_config::SdkConfig,
    secret: Option<&str>,
    key: Option<&secrecy::SecretString>,
) -> Result<Option<secrecy::SecretString>, SignerError> {
    Ok(match (secret, key) {
        (Some(id), _) => Some(crate::secrets::read(sdk, id).await?.password),
        (None, key) => key.cloned(),
    })
}
