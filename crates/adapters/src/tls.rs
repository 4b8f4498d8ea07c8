//! TLS client settings shared by the Redis and Postgres adapters (rustls with the aws-lc-rs
//! provider the AWS SDK already uses).
//!
//! Trust comes from a PEM file when one is given (`REDIS_CA_FILE`, `DATABASE_CA_FILE`: a private
//! CA, or RDS's `global-bundle.pem`), else from the system's roots (AL2023's bundle on Lambda,
//! which is what ElastiCache's and RDS Proxy's Amazon-issued certificates need).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::sync::Arc;

/// The crypto provider of every TLS connection we make. Installed as the process default too, so
/// a library that asks for the default (fred's URL parser does) never finds two or none.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // Fails only when a default is already installed, which is just as good.
    let _ = rustls::crypto::CryptoProvider::install_default((*provider).clone());
    provider
}

/// Root certificates from `ca_file` (PEM), or the system's when `None`.
///
/// # Errors
/// A message naming `var` when the file cannot be read, holds no certificate, or (system roots)
/// none can be loaded.
pub(crate) fn roots(var: &str, ca_file: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs =
                CertificateDer::pem_file_iter(path).map_err(|e| format!("{var} {path}: {e}"))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("{var} {path}: {e}"))?;
                roots.add(cert).map_err(|e| format!("{var} {path}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("{var} {path} holds no certificate"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(format!(
                    "no system root certificates found ({:?}); set {var} to a PEM bundle",
                    found.errors.first()
                ));
            }
        }
    }
    Ok(roots)
}

/// A client configuration that verifies the server's chain and host name against `roots`.
///
/// # Errors
/// When the provider refuses the protocol versions (never with the defaults).
pub(crate) fn verifying(roots: RootCertStore) -> Result<ClientConfig, String> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
