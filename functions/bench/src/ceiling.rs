//! The ceiling server of the benchmarks: what this machine can do on the buy path at best. The
//! same hyper server and limits as `flashflow-local api`, the same route, one `EVALSHA` of a
//! trivial script per request (one Redis round trip, as a buy's reservation), and a constant `202`.
//! FlashFlow's own figures are judged against it, measured in the same run.
//!
//! The HTTP limit (`http_limit`): the same server answering every buy with a constant `409`, the
//! sold-out answer's body, without Redis: the most a sold-out answer from memory can be.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use fred::prelude::*;
use fred::types::scripts::Script;

/// The ceiling's router on a connected `client`: the buy route, and a GET of the same cost for
/// the waiting room's polls (`make bench-waiting-room`).
pub fn router(client: Client) -> Router {
    let script = Script::from_lua("return 1");
    let answer = |status, body| Answer {
        client: client.clone(),
        script: script.clone(),
        status,
        body,
    };
    Router::new()
        .route(
            "/sales/{sale_id}/queue/{ticket}",
            axum::routing::get(one_round_trip)
                .with_state(answer(StatusCode::OK, r#"{"state":"waiting"}"#)),
        )
        .route(
            "/sales/{sale_id}/buy",
            post(one_round_trip)
                .with_state(answer(StatusCode::ACCEPTED, r#"{"status":"PENDING"}"#)),
        )
}

/// The HTTP limit's router: the buy route answering FlashFlow's sold-out answer, as is, at once.
pub fn http_limit_router() -> Router {
    Router::new().route(
        "/sales/{sale_id}/buy",
        post(|| async {
            (
                StatusCode::CONFLICT,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                r#"{"error":"sold_out","message":"the sale is sold out"}"#,
            )
        }),
    )
}

/// What a route of the ceiling answers after its one Redis round trip.
#[derive(Clone)]
struct Answer {
    client: Client,
    script: Script,
    status: StatusCode,
    body: &'static str,
}

/// One Redis round trip (the script), then the route's answer; 503 when Redis does not answer.
async fn one_round_trip(axum::extract::State(a): axum::extract::State<Answer>) -> Response {
    match a
        .script
        .evalsha_with_reload::<i64, _, _>(&a.client, Vec::<String>::new(), Vec::<String>::new())
        .await
    {
        Ok(_) => (a.status, a.body).into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// A connected client for `url`, as the API builds its own (one multiplexed connection).
///
/// # Errors
/// When the URL is invalid or Redis cannot be reached.
pub async fn client(url: &str) -> Result<Client, fred::error::Error> {
    let client = Builder::from_config(Config::from_url(url)?)
        .with_connection_config(|c| c.tcp.nodelay = Some(true))
        .build()?;
    client.init().await?;
    Ok(client)
}
