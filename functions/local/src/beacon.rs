//! A stand-in for a drand beacon on the local stack (there is no internet here), as localstripe
//! stands in for Stripe: drand's HTTP API (`GET /info`, `/public/latest`, `/public/{round}`),
//! rounds every `BEACON_PERIOD` seconds from `BEACON_GENESIS`, each BLS-signed under the
//! stand-in's own key in quicknet's scheme (`bls-unchained-g1-rfc9380`), so a client checks them
//! exactly as it checks the real chain's (`flashflow_adapters::beacon`). A round is
//! signed when asked for, never before its time: a future round is `425 Too Early`, as drand's
//! relays answer.
//!
//! # Layout
//! - [`BeaconSettings`]: the key's seed, the chain's genesis and period, the listen address.
//! - [`LocalBeacon`]: the chain's info and its rounds.
//! - [`routes`]: drand's HTTP API over it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use flashflow_adapters::beacon::{Chain, Signer, QUICKNET_GENESIS, SCHEME};
use flashflow_http::json;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The local beacon: `BEACON_SEED` (its key's seed, a local-only value of at least 32 bytes),
/// `BEACON_GENESIS` (round 1's time, seconds: quicknet's, 1692803367), `BEACON_PERIOD` (3),
/// `BEACON_LISTEN_ADDR` (127.0.0.1:8431).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BeaconSettings {
    pub beacon_seed: String,
    pub beacon_genesis: u64,
    pub beacon_period: u64,
    pub beacon_listen_addr: String,
}

impl Default for BeaconSettings {
    fn default() -> Self {
        Self {
            beacon_seed: "local-beacon-seed-not-a-secret-000000001".into(),
            beacon_genesis: QUICKNET_GENESIS,
            beacon_period: 3,
            beacon_listen_addr: "127.0.0.1:8431".into(),
        }
    }
}

impl flashflow_settings::FromEnv for BeaconSettings {
    fn check(&self) -> Result<(), flashflow_settings::ConfigError> {
        if self.beacon_seed.len() < 32 {
            return Err(flashflow_settings::invalid(
                "BEACON_SEED",
                "at least 32 bytes",
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

/// The local chain: its info and its signer.
pub struct LocalBeacon {
    signer: Signer,
    chain: Chain,
}

impl LocalBeacon {
    /// `None` for a seed shorter than 32 bytes.
    pub fn new(settings: &BeaconSettings) -> Option<Self> {
        let signer = Signer::from_seed(settings.beacon_seed.as_bytes())?;
        let public_key = signer.public_key();
        // A chain's hash names it; the local one's covers its key and its clock.
        let mut h = Sha256::new();
        h.update(&public_key);
        h.update(settings.beacon_period.to_be_bytes());
        h.update(settings.beacon_genesis.to_be_bytes());
        h.update(b"flashflow-local-beacon");
        let chain = Chain {
            hash: hex::encode(h.finalize()),
            public_key,
            genesis_time: settings.beacon_genesis,
            period: settings.beacon_period,
        };
        Some(Self { signer, chain })
    }

    /// The chain a client checks this beacon's rounds against.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The last round emitted by `now_s`.
    pub fn latest(&self, now_s: u64) -> u64 {
        now_s.saturating_sub(self.chain.genesis_time) / self.chain.period + 1
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// drand's HTTP API over `beacon`.
pub fn routes(beacon: Arc<LocalBeacon>) -> Router {
    Router::new()
        .route("/info", get(info))
        .route("/public/latest", get(latest))
        .route("/public/{round}", get(round))
        .with_state(beacon)
}

async fn info(State(b): State<Arc<LocalBeacon>>) -> Response {
    let c = b.chain();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "public_key": hex::encode(&c.public_key),
            "period": c.period,
            "genesis_time": c.genesis_time,
            "hash": c.hash,
            "groupHash": c.hash,
            "schemeID": SCHEME,
            "metadata": {"beaconID": "flashflow-local"},
        }),
    )
}

fn answer(b: &LocalBeacon, round: u64) -> Response {
    let signature = b.signer.sign(round);
    json(
        StatusCode::OK,
        &serde_json::json!({
            "round": round,
            "randomness": hex::encode(Sha256::digest(&signature)),
            "signature": hex::encode(&signature),
        }),
    )
}

async fn latest(State(b): State<Arc<LocalBeacon>>) -> Response {
    answer(&b, b.latest(now_s()))
}

async fn round(State(b): State<Arc<LocalBeacon>>, Path(round): Path<String>) -> Response {
    match round.parse::<u64>() {
        Ok(r) if r >= 1 && r <= b.latest(now_s()) => answer(&b, r),
        Ok(r) if r >= 1 => (
            StatusCode::TOO_EARLY,
            format!(
                "round {r} is not out yet: it comes at {}",
                b.chain().time_of(r)
            ),
        )
            .into_response(),
        _ => (StatusCode::BAD_REQUEST, "a round is a number from 1").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(app: &Router, path: &str) -> (StatusCode, serde_json::Value) {
        let resp = app
            .clone()
            .oneshot(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    fn beacon() -> Arc<LocalBeacon> {
        Arc::new(LocalBeacon::new(&BeaconSettings::default()).unwrap())
    }

    #[tokio::test]
    async fn a_round_it_serves_checks_out_against_the_key_its_info_publishes() {
        let app = routes(beacon());
        let (_, info) = get(&app, "/info").await;
        let chain = Chain {
            hash: info["hash"].as_str().unwrap().into(),
            public_key: hex::decode(info["public_key"].as_str().unwrap()).unwrap(),
            genesis_time: info["genesis_time"].as_u64().unwrap(),
            period: info["period"].as_u64().unwrap(),
        };
        assert_eq!(info["schemeID"], SCHEME);
        let (status, latest) = get(&app, "/public/latest").await;
        assert_eq!(status, StatusCode::OK);
        let r = latest["round"].as_u64().unwrap();
        let (_, earlier) = get(&app, &format!("/public/{}", r - 10)).await;
        let sig = hex::decode(earlier["signature"].as_str().unwrap()).unwrap();
        let checked = chain.check(r - 10, &sig).unwrap();
        assert_eq!(
            hex::encode(checked.randomness),
            earlier["randomness"].as_str().unwrap()
        );
    }

    #[tokio::test]
    async fn a_round_not_out_yet_is_too_early_and_never_signed() {
        let b = beacon();
        let next = b.latest(now_s()) + 2;
        let (status, _) = get(&routes(b), &format!("/public/{next}")).await;
        assert_eq!(status, StatusCode::TOO_EARLY);
    }

    /// The local stack's clients check the stand-in's rounds under the chain infra/local/env.sh
    /// names: it must be the default seed's.
    #[test]
    fn the_local_stacks_settings_name_the_stand_ins_chain_and_key() {
        let env = include_str!("../../../infra/local/env.sh");
        let c = beacon().chain().clone();
        assert!(
            env.contains(&format!("BEACON_CHAIN:-{}}}", c.hash)),
            "BEACON_CHAIN"
        );
        assert!(
            env.contains(&format!(
                "BEACON_PUBLIC_KEY:-{}}}",
                hex::encode(&c.public_key)
            )),
            "BEACON_PUBLIC_KEY"
        );
    }

    #[test]
    fn the_latest_round_is_the_one_emitted_last() {
        let b = beacon();
        let g = b.chain().genesis_time;
        assert_eq!(b.latest(g), 1);
        assert_eq!(b.latest(g + 2), 1);
        assert_eq!(b.latest(g + 3), 2);
    }
}
