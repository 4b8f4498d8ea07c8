//! TLS for Postgres (rustls, with the aws-lc-rs provider the AWS SDK already uses).
//!
//! `sslmode=verify-full` (the template's default) or a CA file (e.g. RDS's `global-bundle.pem`):
//! TLS is forced and the server's certificate chain and host name are verified. Otherwise this
//! behaves like libpq's `sslmode=require`/`prefer`: encrypted, the server not authenticated.

use flashflow::ports::DbError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the connection to Postgres is secured, from the URL's `sslmode` and `DATABASE_CA_FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsPolicy {
    /// The URL as tokio-postgres takes it (it knows `disable`/`prefer`/`require` only).
    pub url: String,
    /// TLS is mandatory: never fall back to plaintext.
    pub required: bool,
    /// Verify the chain and host name: against the CA file, else the system roots.
    pub verify: Option<Option<String>>,
}

/// libpq's rules, made stricter where they are weak:
/// - `verify-full` / `verify-ca`: TLS required, the certificate chain and host name verified (both
///   modes check the host name here), against `ca_file` or else the system roots;
/// - a CA file given: as `verify-full` (TLS forced), whatever the `sslmode`; with `disable` a
///   configuration error, since the two contradict each other;
/// - otherwise `disable` / `prefer` (the default) / `require` as libpq: encrypted, not verified.
///
/// # Errors
/// [`DbError::Config`] for a `sslmode` libpq does not know, or `disable` with a CA file.
pub(crate) fn policy(url: &str, ca_file: Option<&str>) -> Result<TlsPolicy, DbError> {
    let (mode, span) = match url.find("sslmode=") {
        Some(at) => {
            let start = at + "sslmode=".len();
            let end = url[start..]
                .find(|c: char| c == '&' || c.is_whitespace())
                .map_or(url.len(), |n| start + n);
            (&url[start..end], Some((start, end)))
        }
        None => ("prefer", None),
    };
    let verify_mode = matches!(mode, "verify-full" | "verify-ca");
    if !verify_mode && !matches!(mode, "disable" | "allow" | "prefer" | "require") {
        return Err(DbError::Config(format!(
            "DATABASE_URL sslmode={mode} is not one of disable, prefer, require, verify-ca, verify-full"
        ).into()));
    }
    if mode == "disable" && ca_file.is_some() {
        return Err(DbError::Config(
            "DATABASE_CA_FILE is set but DATABASE_URL says sslmode=disable".into(),
        ));
    }
    let verify = (verify_mode || ca_file.is_some()).then(|| ca_file.map(str::to_owned));
    let required = verify.is_some() || mode == "require";
    let url = match (span, required) {
        (Some((start, end)), true) => format!("{}require{}", &url[..start], &url[end..]),
        (Some((start, end)), false) if mode == "allow" => {
            format!("{}prefer{}", &url[..start], &url[end..])
        }
        _ => url.to_owned(),
    };
    Ok(TlsPolicy {
        url,
        required,
        verify,
    })
}

/// The connector for [`super::postgres::Db`].
pub(crate) fn connector(verify: Option<Option<&str>>) -> Result<MakeRustlsConnect, DbError> {
    let config = match verify {
        Some(ca_file) => {
            let roots = super::super::tls::roots("DATABASE_CA_FILE", ca_file)
                .map_err(|e| DbError::Config(e.into()))?;
            super::super::tls::verifying(roots).map_err(|e| DbError::Config(e.into()))?
        }
        None => {
            let provider = super::super::tls::provider();
            ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| DbError::Config(format!("TLS setup: {e}").into()))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// libpq's `require` without a root certificate: check the handshake signatures, trust any server
/// certificate.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "postgres://u:p@db.example:5432/ff";

    #[test]
    fn verify_full_forces_tls_and_verifies_against_system_roots() {
        let p = policy(
            &format!("{HOST}?sslmode=verify-full&application_name=x"),
            None,
        )
        .unwrap();
        assert_eq!(p.url, format!("{HOST}?sslmode=require&application_name=x"));
        assert!(p.required);
        assert_eq!(p.verify, Some(None));
    }

    #[test]
    fn a_ca_file_forces_verification_even_with_prefer() {
        let p = policy(&format!("{HOST}?sslmode=prefer"), Some("/opt/ca.pem")).unwrap();
        assert_eq!(p.url, format!("{HOST}?sslmode=require"));
        assert!(p.required);
        assert_eq!(p.verify, Some(Some("/opt/ca.pem".into())));
        let p = policy(HOST, Some("/opt/ca.pem")).unwrap();
        assert!(p.required, "no sslmode plus a CA file is still TLS only");
    }

    #[test]
    fn require_without_a_ca_encrypts_without_verifying() {
        let p = policy(&format!("{HOST}?sslmode=require"), None).unwrap();
        assert!(p.required);
        assert_eq!(p.verify, None);
        let p = policy(HOST, None).unwrap();
        assert!(!p.required);
        assert_eq!(p.url, HOST);
    }

    #[test]
    fn disable_with_a_ca_file_or_an_unknown_mode_is_a_configuration_error() {
        assert!(policy(&format!("{HOST}?sslmode=disable"), Some("/ca.pem")).is_err());
        assert!(policy(&format!("{HOST}?sslmode=verify"), None).is_err());
    }

    #[test]
    fn verify_ca_is_checked_as_strictly_as_verify_full() {
        let p = policy(&format!("{HOST}?sslmode=verify-ca"), None).unwrap();
        assert_eq!(p.verify, Some(None));
    }
}
