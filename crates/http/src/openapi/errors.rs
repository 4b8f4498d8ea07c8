//! Every error the API answers, as the document states it: one table of codes, each with its
//! status, and per status one named response (`Error400`, …) whose body's `error` is one of that
//! status' codes. A unit test keeps the table equal to the codes the sources answer.

use std::collections::BTreeMap;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{Content, RefOr, Schema};

/// One error code: the status it comes with and when.
pub struct ErrorCode {
    pub code: &'static str,
    pub status: u16,
    pub when: &'static str,
}

const fn e(code: &'static str, status: u16, when: &'static str) -> ErrorCode {
    ErrorCode { code, status, when }
}

/// Every `error` the API answers. A `4xx` changed nothing; a `503` changed nothing, except
/// `outcome_unknown`, which names the order whose outcome is not known, and `reset_incomplete`,
/// which says the reset began and how to finish it.
#[rustfmt::skip]
pub const ERROR_CODES: &[ErrorCode] = &[
    e("invalid_body", 400, "malformed JSON, not an object, an unknown field or a wrong type"),
    e("invalid_quantity", 400, "quantity not an integer in 1..=100"),
    e("invalid_idempotency_key", 400, "Idempotency-Key empty, too long, not printable, or sent twice"),
    e("invalid_sale_id", 400, "a sale id not 1-64 of [A-Za-z0-9_-]"),
    e("invalid_order_id", 400, "an order id that is not a UUID"),
    e("invalid_buyer", 400, "a buyer identity empty, too long or not printable"),
    e("invalid_authorization", 400, "Authorization sent twice or not ASCII"),
    e("invalid_file", 400, "a page file name that cannot be decoded"),
    e("invalid_name", 400, "a sale name empty, too long or with control characters"),
    e("invalid_stock", 400, "stock not an integer in 0..=10,000,000"),
    e("invalid_per_user_limit", 400, "per_user_limit not an integer in 1..=100"),
    e("invalid_opens_at", 400, "opens_at not an RFC 3339 time"),
    e("invalid_closes_at", 400, "closes_at not an RFC 3339 time"),
    e("invalid_window", 400, "opens_at not before closes_at"),
    e("invalid_attempts_per_minute", 400, "attempts_per_minute not an integer in 1..=10,000"),
    e("invalid_waiting_room", 400, "a waiting room for a sale without an opens_at"),
    e("invalid_queue_opens_at", 400, "waiting_room.opens_at not an RFC 3339 time before the sale opens"),
    e("invalid_admission_seconds", 400, "waiting_room.admission_seconds not in 60..=1800"),
    e("invalid_admit_per_second", 400, "admit_per_second not in 1..=100,000"),
    e("invalid_pow_bits", 400, "waiting_room.pow_bits not in 0..=19"),
    e("invalid_entry", 400, "waiting_room.entry: a claim name or required value malformed, or more than 8 claims"),
    e("invalid_hold_seconds", 400, "checkout.hold_seconds not in 60..=3600"),
    e("invalid_price", 400, "checkout.price no charge in its currency can have"),
    e("invalid_currency", 400, "checkout.currency not one Stripe charges in"),
    e("invalid_signature", 400, "a webhook whose Stripe-Signature does not check out"),
    e("invalid_event", 400, "a signed webhook body that is not a Stripe event"),
    e("invalid_admission_token", 400, "Admission-Token sent twice or not ASCII"),
    e("invalid_proof", 400, "a proof of work missing, wrong, expired, reused or another buyer's"),
    e("unauthenticated", 401, "no buyer identity, or no operator credentials"),
    e("forbidden", 403, "credentials that may not do this (a wrong operator token, resets off)"),
    e("sale_not_open", 403, "a buy before the sale opens"),
    e("sale_closed", 403, "a buy, or a join of its waiting room, after the sale closed"),
    e("limit_reached", 403, "over the sale's per-buyer limit"),
    e("not_admitted", 403, "a buy of a sale with a waiting room without a valid admission token"),
    e("entry_not_allowed", 403, "a join whose identity lacks a claim the sale's entry policy requires"),
    e("admission_used", 403, "a new order on an admission an earlier order spent (join again to buy again)"),
    e("sale_not_found", 404, "no such sale"),
    e("order_not_found", 404, "no such order for this caller (someone else's looks the same)"),
    e("file_not_found", 404, "no such page file"),
    e("queue_not_found", 404, "the sale has no waiting room"),
    e("ticket_not_found", 404, "no such ticket for this caller (someone else's looks the same)"),
    e("route_not_found", 404, "no such path"),
    e("method_not_allowed", 405, "a known path with another method (Allow lists the accepted ones)"),
    e("request_timeout", 408, "the body did not arrive whole in time (local server)"),
    e("sold_out", 409, "no stock left"),
    e("insufficient_stock", 409, "less stock left than asked for"),
    e("sale_exists", 409, "another sale already has this id"),
    e("sale_has_pending_orders", 409, "a reset while orders are reserved and not settled"),
    e("sale_has_held_orders", 409, "a reset while orders are held for payment"),
    e("sale_has_waiting_room", 409, "a reset of a sale whose waiting room drew its queue"),
    e("queue_not_drained", 409, "a rebuild of a sale a failover paused while the orders queue holds messages (unless force)"),
    e("order_pending", 409, "the order is not recorded yet (Retry-After)"),
    e("already_paid", 409, "the order is paid"),
    e("hold_expired", 409, "the hold ended before payment"),
    e("order_cancelled", 409, "the order was cancelled"),
    e("order_not_accepted", 409, "the order was not accepted (sold out, over the limit, a duplicate)"),
    e("payment_processing", 409, "a payment for the order is being made (Retry-After)"),
    e("queue_not_open", 409, "joining before the queue opens"),
    e("already_entered", 409, "a join by a second identity with a one_per claim value that holds a place"),
    e("body_too_large", 413, "a body over the route's limit"),
    e("unsupported_media_type", 415, "a body declared as something other than JSON"),
    e("idempotency_key_reused", 422, "the buyer's Idempotency-Key was used for another request"),
    e("too_many_requests", 429, "the buyer tried (or joined) more often this minute than allowed (Retry-After)"),
    e("internal_error", 500, "a bug; nothing the client sent (logged, never detailed)"),
    e("service_unavailable", 503, "a dependency is down; nothing changed (Retry-After)"),
    e("reset_incomplete", 503, "a reset began and waits for orders in play: the sale is paused until it is run again"),
    e("outcome_unknown", 503, "the reservation may have happened: order_id names it (Retry-After)"),
];

/// The statuses an operation answers besides its successes, as `IntoResponses` for
/// `#[utoipa::path(responses(...))]`.
macro_rules! error_responses {
    ($($(#[$doc:meta])* $name:ident: [$($status:literal),+];)+) => {$(
        $(#[$doc])*
        pub struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                refs(&[$($status),+])
            }
        }
    )+};
}

error_responses! {
    /// `POST /sales/{sale_id}/buy`.
    BuyErrors: [400, 401, 403, 404, 408, 409, 413, 415, 422, 429, 500, 503];
    /// Reading an order: a buyer's own, or any for an operator.
    OrderErrors: [400, 401, 403, 404, 500, 503];
    /// `GET /sales/{sale_id}`.
    PublicSaleErrors: [400, 404, 500, 503];
    /// Paying or cancelling a held order.
    CheckoutErrors: [400, 401, 404, 409, 500, 503];
    /// Stripe's webhook.
    WebhookErrors: [400, 413, 500, 503];
    /// Operator routes that take a JSON body.
    OperatorBodyErrors: [400, 401, 403, 404, 408, 409, 413, 415, 500, 503];
    /// Operator routes without a body.
    OperatorErrors: [400, 401, 403, 404, 409, 500, 503];
    /// The pages.
    PageErrors: [400, 404];
    /// Joining a sale's queue.
    JoinErrors: [400, 401, 403, 404, 408, 409, 413, 415, 500, 503];
    /// Polling one's place.
    TicketErrors: [400, 401, 404, 500, 503];
    /// The draw's record.
    PublicQueueErrors: [400, 404, 500, 503];
    /// A proof-of-work challenge.
    ChallengeErrors: [400, 401, 404, 500, 503];
}

/// `$ref`s to the named error responses of `statuses`.
fn refs(statuses: &[u16]) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|s| {
            let r = utoipa::openapi::Ref::new(format!("#/components/responses/Error{s}"));
            (s.to_string(), RefOr::Ref(r))
        })
        .collect()
}

/// The named error responses, one per status in [`ERROR_CODES`]: a body whose `error` is one of
/// the status' codes, and the headers the status comes with.
pub fn responses() -> Vec<(String, RefOr<Response>)> {
    let mut statuses: Vec<u16> = ERROR_CODES.iter().map(|c| c.status).collect();
    statuses.dedup();
    statuses.sort_unstable();
    statuses.dedup();
    statuses
        .into_iter()
        .map(|status| (format!("Error{status}"), RefOr::T(response(status))))
        .collect()
}

fn response(status: u16) -> Response {
    let codes: Vec<&ErrorCode> = ERROR_CODES.iter().filter(|c| c.status == status).collect();
    let description = codes
        .iter()
        .map(|c| format!("`{}`: {}", c.code, c.when))
        .collect::<Vec<_>>()
        .join("; ");
    let mut properties = serde_json::json!({
        "error": {"type": "string", "enum": codes.iter().map(|c| c.code).collect::<Vec<_>>()},
        "message": {"type": "string", "description": "for people; not stable"},
    });
    if codes.iter().any(|c| c.code == "outcome_unknown") {
        properties["order_id"] = serde_json::json!({
            "type": "string", "format": "uuid",
            "description": "outcome_unknown: the order to look up at GET /orders/{order_id}"
        });
    }
    let body: Schema = super::schemas::from_json(serde_json::json!({
        "type": "object",
        "required": ["error", "message"],
        "properties": properties,
    }));
    let mut builder = ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(body)));
    let retry_after = |required: bool| {
        let what = if required {
            "seconds to wait before asking again"
        } else {
            "seconds to wait before asking again (order_pending, payment_processing)"
        };
        HeaderBuilder::new()
            .schema(Some(super::schemas::from_json(
                serde_json::json!({"type": "integer", "minimum": 0}),
            )))
            .description(Some(what))
            .build()
    };
    builder = match status {
        429 | 503 => builder.header("Retry-After", retry_after(true)),
        409 => builder.header("Retry-After", retry_after(false)),
        408 => builder.header(
            "Connection",
            HeaderBuilder::new()
                .schema(Some(super::schemas::from_json(
                    serde_json::json!({"type": "string", "const": "close"}),
                )))
                .build(),
        ),
        405 => builder.header(
            "Allow",
            HeaderBuilder::new()
                .schema(Some(super::schemas::from_json(
                    serde_json::json!({"type": "string"}),
                )))
                .description(Some("the methods this path accepts"))
                .build(),
        ),
        _ => builder,
    };
    builder.build()
}
