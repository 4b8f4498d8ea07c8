//! Credentials from AWS Secrets Manager, read once per instance at start, so no password sits in
//! a Lambda's environment. The endpoint comes from the standard environment
//! (`AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL`), so the local stack reads the same
//! secrets from LocalStack.
//!
//! A secret is either the JSON object RDS and Secrets Manager rotation use
//! (`{"username": "...", "password": "...", ...}`, other fields ignored) or a bare string, taken
//! as the password (an ElastiCache AUTH token).

use aws_config::SdkConfig;
use secrecy::SecretString;

/// A user name (optional: Redis AUTH may have none) and a password, which never prints.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: SecretString,
}

/// Why a secret could not be used. Messages name the secret, never its value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "reading secret {id}: {}",
        aws_sdk_secretsmanager::error::DisplayErrorContext(source)
    )]
    Unavailable {
        id: String,
        #[source]
        source: Box<
            aws_sdk_secretsmanager::error::SdkError<
                aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError,
            >,
        >,
    },
    #[error("secret {id} is malformed: {reason}")]
    Malformed { id: String, reason: &'static str },
}

/// Parse a secret's string.
///
/// # Errors
/// [`SecretError::Malformed`] for an empty value, JSON that is not an object with a non-empty
/// string `password`, or a non-string `username`.
pub fn parse(id: &str, value: &str) -> Result<Credentials, SecretError> {
    let malformed = |reason| SecretError::Malformed {
        id: id.to_owned(),
        reason,
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(malformed("empty"));
    }
    if !value.starts_with('{') {
        return Ok(Credentials {
            username: None,
            password: value.into(),
        });
    }
    let json: serde_json::Value =
        serde_json::from_str(value).map_err(|_| malformed("not valid JSON"))?;
    let password: SecretString = match json.get("password") {
        Some(serde_json::Value::String(p)) if !p.is_empty() => p.as_str().into(),
        _ => return Err(malformed("no non-empty string \"password\"")),
    };
    let username = match json.get("username") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(u)) if !u.is_empty() => Some(u.clone()),
        _ => return Err(malformed("\"username\" is not a non-empty string")),
    };
    Ok(Credentials { username, password })
}

/// Read and parse secret `id` (a name or an ARN).
///
/// # Errors
/// [`SecretError::Unavailable`] when Secrets Manager refuses or cannot be reached (missing
/// permission or VPC endpoint, unknown secret); [`SecretError::Malformed`] as [`parse`].
pub async fn read(sdk: &SdkConfig, id: &str) -> Result<Credentials, SecretError> {
    let out = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| SecretError::Unavailable {
            id: id.to_owned(),
            source: Box::new(e),
        })?;
    let value = out.secret_string().ok_or_else(|| SecretError::Malformed {
        id: id.to_owned(),
        reason: "no SecretString (binary secrets are not supported)",
    })?;
    parse(id, value)
}

/// Read secret `id` when one is configured.
///
/// # Errors
/// As [`read`].
pub async fn read_optional(
    sdk: &SdkConfig,
    id: Option<&str>,
) -> Result<Option<Credentials>, SecretError> {
    match id {
        Some(id) => read(sdk, id).await.map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn an_rds_style_secret_gives_user_and_password() {
        let c = parse(
            "db",
            r#"{"username":"app","password":"p@ss","engine":"postgres","port":5432}"#,
        )
        .unwrap();
        assert_eq!(c.username.as_deref(), Some("app"));
        assert_eq!(c.password.expose_secret(), "p@ss");
    }

    #[test]
    fn a_bare_string_is_an_auth_token() {
        let c = parse("redis", "  token-123\n").unwrap();
        assert_eq!(c.username, None);
        assert_eq!(c.password.expose_secret(), "token-123");
    }

    #[test]
    fn a_secret_without_a_password_is_refused_without_echoing_it() {
        for bad in [
            "",
            "{",
            r#"{"username":"u"}"#,
            r#"{"password":""}"#,
            r#"{"password":1}"#,
        ] {
            let e = parse("db", bad).unwrap_err().to_string();
            assert!(e.contains("secret db is malformed"), "{e}");
        }
        let e = parse("db", r#"{"password":"s3cret","username":5}"#)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn credentials_never_print_the_password() {
        let c = parse("r", "hunter2hunter2").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
