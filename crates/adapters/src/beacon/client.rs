//! A drand chain over its HTTP API (`GET {BEACON_URL}/public/{round}`), every round checked
//! against the chain's key as configured here, never as the server says: a relay (or whoever
//! stands between) cannot hand over a round the chain did not sign.
//!
//! Written on hyper-util and hyper-rustls, as the Stripe client is: one GET of a small JSON body
//! needs no more (drand's own Rust client crates pull in a second HTTP stack).

use super::{
    BadRound, Chain, QUICKNET_GENESIS, QUICKNET_HASH, QUICKNET_PERIOD, QUICKNET_PUBLIC_KEY,
};
use bytes::Bytes;
use flashflow::domain::waiting_room::draw::BeaconRound;
use flashflow::ports::{Beacon, BeaconError};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use std::time::Duration;

/// The chain a draw mixes in and where to read it: `BEACON_URL` (drand's quicknet on
/// api.drand.sh), `BEACON_CHAIN` (its hash), `BEACON_PUBLIC_KEY` (hex, G2), `BEACON_GENESIS`
/// (round 1's time, seconds), `BEACON_PERIOD` (seconds), `BEACON_TIMEOUT_MS` (2000). The local
/// stack points them at its stand-in (`flashflow-local beacon`), whose genesis and period are read
/// from the same two variables.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DrandSettings {
    pub beacon_url: String,
    pub beacon_chain: String,
    pub beacon_public_key: String,
    pub beacon_genesis: u64,
    pub beacon_period: u64,
    #[serde(rename = "beacon_timeout_ms")]
    pub timeout: flashflow_settings::Millis,
}

impl Default for DrandSettings {
    fn default() -> Self {
        Self {
            beacon_url: format!("https://api.drand.sh/{QUICKNET_HASH}"),
            beacon_chain: QUICKNET_HASH.into(),
            beacon_public_key: QUICKNET_PUBLIC_KEY.into(),
            beacon_genesis: QUICKNET_GENESIS,
            beacon_period: QUICKNET_PERIOD,
            timeout: Duration::from_secs(2).into(),
        }
    }
}

impl flashflow_settings::FromEnv for DrandSettings {
    fn check(&self) -> Result<(), flashflow_settings::ConfigError> {
        let key = hex::decode(&self.beacon_public_key).unwrap_or_default();
        if blst::min_sig::PublicKey::key_validate(&key).is_err() {
            return Err(flashflow_settings::invalid(
                "BEACON_PUBLIC_KEY",
                "the chain's public key: a compressed BLS12-381 G2 point, in hex",
            ));
        }
        if self.beacon_period == 0 {
            return Err(flashflow_settings::invalid(
                "BEACON_PERIOD",
                "at least 1 second",
            ));
        }
        Ok(())
    }
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// A drand chain's rounds, checked; one client per process (it keeps connections).
#[derive(Clone)]
pub struct Drand {
    chain: Chain,
    base: String,
    http: Client<Https, Empty<Bytes>>,
    timeout: Duration,
}

/// `/public/{round}`'s answer.
#[derive(Deserialize)]
struct Answer {
    round: u64,
    signature: String,
}

impl Drand {
    /// A client for `settings`: TLS verified against the system roots (or `BEACON_CA_FILE`'s);
    /// plain HTTP only when `BEACON_URL` says `http://` (the local stand-in).
    ///
    /// # Errors
    /// The roots cannot be loaded.
    pub fn new(settings: &DrandSettings) -> Result<Self, String> {
        let tls = crate::tls::verifying(crate::tls::roots("BEACON_CA_FILE", None)?)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            chain: Chain {
                hash: settings.beacon_chain.clone(),
                public_key: hex::decode(&settings.beacon_public_key).unwrap_or_default(),
                genesis_time: settings.beacon_genesis,
                period: settings.beacon_period,
            },
            base: settings.beacon_url.trim_end_matches('/').to_owned(),
            http: Client::builder(TokioExecutor::new()).build(https),
            timeout: settings.timeout.get(),
        })
    }

    /// One GET: the status and the body.
    async fn get(&self, url: &str) -> Result<(StatusCode, Bytes), BeaconError> {
        let req = Request::get(url)
            .body(Empty::new())
            .map_err(|e| BeaconError::Unavailable(Box::new(e)))?;
        let answer = async {
            let resp = self.http.request(req).await?;
            let status = resp.status();
            let bytes = resp.into_body().collect().await?.to_bytes();
            Ok::<_, flashflow::ports::BoxError>((status, bytes))
        };
        tokio::time::timeout(self.timeout, answer)
            .await
            .map_err(|_| BeaconError::Unavailable("the beacon did not answer in time".into()))?
            .map_err(BeaconError::Unavailable)
    }
}

impl Beacon for Drand {
    fn chain(&self) -> &str {
        &self.chain.hash
    }

    fn round_at(&self, ms: i64) -> u64 {
        self.chain.round_at((ms.max(0) as u64).div_ceil(1000))
    }

    fn round_url(&self, round: u64) -> String {
        format!("{}/public/{round}", self.base)
    }

    async fn round(&self, round: u64) -> Result<Option<BeaconRound>, BeaconError> {
        let (status, body) = self.get(&self.round_url(round)).await?;
        // drand's relays answer a round not out yet with 425 Too Early (some with 404).
        if matches!(status, StatusCode::TOO_EARLY | StatusCode::NOT_FOUND) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(BeaconError::Unavailable(
                format!("the beacon answered {status}").into(),
            ));
        }
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|e| BeaconError::Unavailable(Box::new(e)))?;
        let signature =
            hex::decode(&answer.signature).map_err(|_| BeaconError::Forged { round })?;
        if answer.round != round {
            return Err(BeaconError::Forged { round });
        }
        match self.chain.check(round, &signature) {
            Ok(r) => Ok(Some(BeaconRound {
                round,
                randomness: r.randomness,
                signature: r.signature,
            })),
            Err(BadRound::BadKey | BadRound::BadSignature | BadRound::NotSigned) => {
                Err(BeaconError::Forged { round })
            }
        }
    }
}
