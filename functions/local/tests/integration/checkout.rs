//! Checkout against the real parts: Postgres (holds), Redis (returns), DynamoDB (statuses) and
//! localstripe (PaymentIntents, refunds). Webhooks are signed here as Stripe signs them and posted
//! to the checkout router; the buyer's card payment is made at localstripe as Stripe.js would.
//!
//! After every scenario the books are checked: Postgres `confirmed + held <= stock`, and Redis
//! remaining == stock − confirmed − held − pending.

use crate::helpers::*;
use crate::stripe::{base as stripe_base, pay_at_stripe, stripe_at, WHSEC};
use axum::Router;
use flashflow::domain::sale::Checkout as Terms;
use flashflow::domain::EpochMs;
use flashflow::domain::{OrderState, SaleDefinition};
use flashflow::ports::HoldRecord;
use flashflow::ports::{CreateIntent, IntentState, NewIntent, ReadIntent};
use flashflow_adapters::stripe::signature::sign;
use flashflow_app::checkout::{Checkout, Payment};
use flashflow_http::checkout::{CheckoutState, ROUTES};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const PRICE: u64 = 12_900;

type Shop = CheckoutState<
    flashflow_adapters::postgres::Db,
    flashflow_adapters::redis::RedisStore,
    flashflow_adapters::dynamodb::DynamoStatusStore,
    flashflow_adapters::stripe::Stripe,
>;

/// One test's shop: its own world (schema, queue, table) and checkout on localstripe.
struct World {
    app: TestApp,
    shop: Arc<Shop>,
    router: Router,
}

impl World {
    async fn new() -> Self {
        Self::with_stripe(&stripe_base()).await
    }

    async fn with_stripe(base: &str) -> Self {
        Self::on(TestApp::new().await, base).await
    }

    /// A world on `app` (e.g. with its own Redis).
    async fn on(app: TestApp, base: &str) -> Self {
        let shop = Arc::new(CheckoutState {
            checkout: Checkout {
                holds: db_at(&app.db_url).await,
                store: app.store.clone(),
                status: app.status.clone(),
                payments: stripe_at(base),
                metrics: flashflow_app::metrics::Metrics::new("checkout"),
            },
            trust_user_header: true,
        });
        let router = flashflow_http::app(flashflow_http::checkout::routes(Arc::clone(&shop)));
        Self { app, shop, router }
    }

    /// A checkout sale (60 s holds, 129.00 EUR) in Postgres and Redis.
    async fn sale(&self, stock: u32, limit: u32) -> SaleDefinition {
        let mut def = sale(&fresh_sale_id(), stock, limit);
        def.checkout = Some(Terms {
            hold_seconds: 60,
            price: PRICE,
            currency: "eur".into(),
        });
        self.app.db.create_sale(&def).await.unwrap();
        self.app.store.load_sale(&def, stock).await.unwrap();
        def
    }

    /// Buy one unit: the order id and the answer's `pay_by`.
    async fn buy(&self, def: &SaleDefinition, buyer: &str) -> (Uuid, String) {
        let a = self.app.buy(def, buyer).await;
        assert_eq!(a.status, 202, "{:?}", a.body);
        let pay_by = a.body["pay_by"].as_str().expect("a pay_by").to_owned();
        (
            a.body["order_id"].as_str().unwrap().parse().unwrap(),
            pay_by,
        )
    }

    /// Settle what the sale's outbox holds, as settle does from the queue.
    async fn settle(&self, def: &SaleDefinition) {
        let bodies: Vec<String> = self
            .app
            .store
            .entries(&def.id)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        let report = self
            .app
            .settler()
            .await
            .settle_event(sqs_event(&bodies).0)
            .await;
        assert!(report.failed.is_empty(), "{report:?}");
    }

    async fn post(&self, path: &str, buyer: &str) -> Answer {
        call(
            &self.router,
            request("POST", path, &[("x-user-id", buyer)], None),
        )
        .await
    }

    async fn payment(&self, order: Uuid, buyer: &str) -> Answer {
        self.post(&format!("/orders/{order}/payment"), buyer).await
    }

    async fn cancel(&self, order: Uuid, buyer: &str) -> Answer {
        self.post(&format!("/orders/{order}/cancel"), buyer).await
    }

    /// Post `event` to the webhook route, signed with `secret` at `t`.
    async fn webhook_signed(&self, event: &serde_json::Value, secret: &str, t: i64) -> Answer {
        let body = serde_json::to_vec(event).unwrap();
        let sig = sign(&body, secret, t);
        let req = http::Request::builder()
            .method("POST")
            .uri("/webhooks/stripe")
            .header("stripe-signature", sig)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body))
            .unwrap();
        call(&self.router, req).await
    }

    async fn webhook(&self, event: &serde_json::Value) -> Answer {
        self.webhook_signed(event, WHSEC, now_s()).await
    }

    async fn hold(&self, order: Uuid) -> HoldRecord {
        self.shop.checkout.holds.hold(order).await.unwrap().unwrap()
    }

    async fn state(&self, order: Uuid) -> OrderState {
        self.hold(order).await.status.status
    }

    /// The order's status as `GET /orders` reads it (DynamoDB).
    async fn shown(&self, order: Uuid) -> Option<OrderState> {
        self.app.status.get(order).await.unwrap().map(|s| s.status)
    }

    /// (confirmed, held) in Postgres.
    async fn books(&self, def: &SaleDefinition) -> (i32, i32) {
        let row = self
            .app
            .db
            .client()
            .await
            .unwrap()
            .query_one(
                "SELECT confirmed, held FROM sales WHERE id = $1",
                &[&def.id.as_str()],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    }

    /// Every unit accounted for: Postgres within the stock, and Redis remaining == stock −
    /// confirmed − held − pending. Returns Redis' remaining.
    async fn assert_books(&self, def: &SaleDefinition) -> i64 {
        let (confirmed, held) = self.books(def).await;
        assert!(confirmed + held <= def.stock as i32);
        let live = self.app.store.live_sale(&def.id).await.unwrap().unwrap();
        assert_eq!(
            live.remaining,
            i64::from(def.stock as i32 - confirmed - held) - live.pending,
            "Redis remaining == stock - confirmed - held - pending"
        );
        live.remaining
    }
}

fn now_s() -> i64 {
    flashflow::domain::EpochMs::now().get() / 1000
}

/// The event Stripe sends when `intent` was paid for `order`.
fn succeeded(intent: &str, order: Uuid) -> serde_json::Value {
    serde_json::json!({
        "id": format!("evt_{}", Uuid::new_v4().simple()),
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent, "object": "payment_intent", "status": "succeeded",
                             "metadata": {"order_id": order.to_string()}}}
    })
}

/// Past every 60 s hold taken now.
fn after_the_holds() -> i64 {
    flashflow::domain::EpochMs::now().get() + 61_000
}

async fn a_held_order(w: &World, def: &SaleDefinition, buyer: &str) -> Uuid {
    let (order, _) = w.buy(def, buyer).await;
    w.settle(def).await;
    assert_eq!(w.state(order).await, OrderState::Held);
    order
}

fn payment_of(a: &Answer) -> Payment {
    assert_eq!(a.status, 200, "{:?}", a.body);
    serde_json::from_value(a.body.clone()).unwrap()
}

#[tokio::test]
async fn a_held_order_paid_in_time_is_confirmed_once_and_its_payment_is_one_intent() {
    let w = World::new().await;
    let def = w.sale(3, 1).await;
    let (order, pay_by) = w.buy(&def, "ann").await;
    // Before settlement recorded the hold: ask again shortly.
    let early = w.payment(order, "ann").await;
    assert_eq!(
        (early.status, early.body["error"].as_str()),
        (409, Some("order_pending"))
    );
    w.settle(&def).await;
    assert_eq!(w.shown(order).await, Some(OrderState::Held));
    assert_eq!(w.books(&def).await, (0, 1));

    let first = payment_of(&w.payment(order, "ann").await);
    assert_eq!(
        (first.amount, first.currency.as_str()),
        (PRICE as i64, "eur")
    );
    assert_eq!(first.pay_by, pay_by, "the hold the buy answered");
    let again = payment_of(&w.payment(order, "ann").await);
    assert_eq!(
        again.payment_intent, first.payment_intent,
        "one intent per order"
    );
    // Someone else's order looks like none.
    assert_eq!(w.payment(order, "bob").await.status, 404);

    assert_eq!(
        pay_at_stripe(&first.payment_intent, "4242424242424242"),
        "succeeded"
    );
    let event = succeeded(&first.payment_intent, order);
    assert_eq!(w.webhook(&event).await.status, 200);
    assert_eq!(w.webhook(&event).await.status, 200, "delivered twice");
    assert_eq!(w.state(order).await, OrderState::Confirmed);
    assert_eq!(w.shown(order).await, Some(OrderState::Confirmed));
    assert_eq!(w.books(&def).await, (1, 0), "counted once");
    assert_eq!(w.assert_books(&def).await, 2);
    let paid = w.payment(order, "ann").await;
    assert_eq!(
        (paid.status, paid.body["error"].as_str()),
        (409, Some("already_paid"))
    );
    assert_eq!(w.cancel(order, "ann").await.body["error"], "already_paid");
}

#[tokio::test]
async fn a_cancelled_hold_gives_its_unit_back_once_and_the_buyer_may_buy_again() {
    let w = World::new().await;
    let def = w.sale(1, 1).await;
    let order = a_held_order(&w, &def, "cat").await;
    let intent = payment_of(&w.payment(order, "cat").await).payment_intent;
    assert_eq!(w.app.buy(&def, "dan").await.body["error"], "sold_out");

    let c = w.cancel(order, "cat").await;
    assert_eq!(
        (c.status, c.body["status"].as_str()),
        (200, Some("CANCELLED"))
    );
    assert_eq!(
        w.cancel(order, "cat").await.body["status"],
        "CANCELLED",
        "again: the same"
    );
    assert_eq!(w.assert_books(&def).await, 1, "one unit back, once");
    assert_eq!(w.shown(order).await, Some(OrderState::Cancelled));
    let at_stripe = w.shop.checkout.payments.intent(&intent).await.unwrap();
    assert_eq!(
        at_stripe.state,
        IntentState::Canceled,
        "nothing can be paid any more"
    );
    // The buyer's allowance came back too: the same buyer takes the unit again.
    let (again, _) = w.buy(&def, "cat").await;
    w.settle(&def).await;
    assert_eq!(w.state(again).await, OrderState::Held);
    assert_eq!(w.assert_books(&def).await, 0);
    assert_eq!(
        w.payment(order, "cat").await.body["error"],
        "order_cancelled"
    );
}

#[tokio::test]
async fn a_cancelled_unit_wakes_a_sale_answered_sold_out_from_memory_for_the_next_buyer() {
    let mut app = TestApp::new().await;
    app.store = store_with_fast_path(true, Duration::from_secs(1)).await;
    let w = World::on(app, &stripe_base()).await;
    let def = w.sale(1, 1).await;
    let order = a_held_order(&w, &def, "cat").await;
    assert_eq!(w.app.buy(&def, "dan").await.body["error"], "sold_out");
    learn_young(&w.app, &def).await;
    let cache = w.app.store.sold_out_cache().unwrap();
    let answered = cache.answered();
    assert_eq!(w.app.buy(&def, "eve").await.body["error"], "sold_out");
    assert_eq!(cache.answered(), answered + 1, "from memory");

    let age = learn_young(&w.app, &def).await;
    let news = std::time::Instant::now();
    assert_eq!(w.cancel(order, "cat").await.body["status"], "CANCELLED");
    assert_forgotten_by_news(&w.app.store, &def.id, age, news).await;
    let (next, _) = w.buy(&def, "dan").await;
    w.settle(&def).await;
    assert_eq!(w.state(next).await, OrderState::Held);
    assert_eq!(w.assert_books(&def).await, 0);
}

#[tokio::test]
async fn expiry_ends_unpaid_holds_and_confirms_one_paid_at_stripe_whose_webhook_never_came() {
    let w = World::new().await;
    let def = w.sale(3, 1).await;
    let no_intent = a_held_order(&w, &def, "eve").await;
    let unpaid = a_held_order(&w, &def, "fay").await;
    let paid = a_held_order(&w, &def, "gus").await;
    let unpaid_pi = payment_of(&w.payment(unpaid, "fay").await).payment_intent;
    let paid_pi = payment_of(&w.payment(paid, "gus").await).payment_intent;
    assert_eq!(pay_at_stripe(&paid_pi, "4242424242424242"), "succeeded");
    // Nothing is due before pay_by.
    let now = flashflow::domain::EpochMs::now().get();
    assert_eq!(
        w.shop
            .checkout
            .expire_due(EpochMs(now))
            .await
            .unwrap()
            .expired,
        0
    );

    let report = w
        .shop
        .checkout
        .expire_due(EpochMs(after_the_holds()))
        .await
        .unwrap();
    assert_eq!((report.expired, report.confirmed), (2, 1), "{report:?}");
    assert_eq!(w.state(no_intent).await, OrderState::Expired);
    assert_eq!(w.state(unpaid).await, OrderState::Expired);
    assert_eq!(
        w.state(paid).await,
        OrderState::Confirmed,
        "paid at Stripe: not expired"
    );
    let pi = w.shop.checkout.payments.intent(&unpaid_pi).await.unwrap();
    assert_eq!(
        pi.state,
        IntentState::Canceled,
        "cancelled before the order expired"
    );
    assert_eq!(w.books(&def).await, (1, 0));
    assert_eq!(w.assert_books(&def).await, 2, "two units back");
    // A second run finds nothing to do.
    let again = w
        .shop
        .checkout
        .expire_due(EpochMs(after_the_holds()))
        .await
        .unwrap();
    assert_eq!((again.expired, again.confirmed), (0, 0));
    assert_eq!(w.assert_books(&def).await, 2);
    assert_eq!(w.payment(unpaid, "fay").await.body["error"], "hold_expired");
    assert_eq!(w.shown(unpaid).await, Some(OrderState::Expired));
    // The operator sees where the holds stand.
    let shown = call(
        &w.app.operator().await,
        admin("GET", &format!("/admin/sales/{}", def.id), None),
    )
    .await;
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(shown.body["checkout"]["price"], PRICE);
    assert_eq!(shown.body["settled"]["confirmed_orders"], 1);
    let holds = &shown.body["holds"];
    assert_eq!(
        (
            &holds["held_orders"],
            &holds["expired_orders"],
            &holds["cancelled_orders"],
            &holds["refunded_orders"]
        ),
        (&0.into(), &2.into(), &0.into(), &0.into()),
        "{holds}"
    );
}

#[tokio::test]
async fn a_payment_after_the_hold_ended_is_refunded_and_the_stock_is_not_touched_again() {
    let w = World::new().await;
    let def = w.sale(2, 1).await;
    let order = a_held_order(&w, &def, "hal").await;
    w.shop
        .checkout
        .expire_due(EpochMs(after_the_holds()))
        .await
        .unwrap();
    assert_eq!(w.state(order).await, OrderState::Expired);
    let before = w.assert_books(&def).await;
    // A payment made for the order anyway (an intent it never attached, paid late).
    let stray = w
        .shop
        .checkout
        .payments
        .create_intent(
            &NewIntent {
                amount: PRICE as i64,
                currency: "eur",
                order_id: order,
                sale: &def.id,
            },
            &format!("late-{order}"),
        )
        .await
        .unwrap();
    assert_eq!(pay_at_stripe(&stray.id, "4242424242424242"), "succeeded");
    let event = succeeded(&stray.id, order);
    assert_eq!(w.webhook(&event).await.status, 200);
    assert_eq!(w.webhook(&event).await.status, 200, "twice: refunded once");
    assert_eq!(w.state(order).await, OrderState::Refunded);
    assert_eq!(w.shown(order).await, Some(OrderState::Refunded));
    assert_eq!(
        w.assert_books(&def).await,
        before,
        "the stock is not touched again"
    );
    assert_eq!(w.books(&def).await, (0, 0));
}

#[tokio::test]
async fn forged_altered_or_stale_webhooks_are_refused_and_change_nothing() {
    let w = World::new().await;
    let def = w.sale(1, 1).await;
    let order = a_held_order(&w, &def, "ida").await;
    let intent = payment_of(&w.payment(order, "ida").await).payment_intent;
    let event = succeeded(&intent, order);
    let forged = w
        .webhook_signed(&event, "whsec_someone_else", now_s())
        .await;
    assert_eq!(
        (forged.status, forged.body["error"].as_str()),
        (400, Some("invalid_signature"))
    );
    let stale = w.webhook_signed(&event, WHSEC, now_s() - 301).await;
    assert_eq!(stale.status, 400);
    // Signed, then altered on the way.
    let body = serde_json::to_vec(&event).unwrap();
    let sig = sign(&body, WHSEC, now_s());
    let altered = serde_json::to_vec(&succeeded(&intent, Uuid::now_v7())).unwrap();
    let req = http::Request::builder()
        .method("POST")
        .uri("/webhooks/stripe")
        .header("stripe-signature", sig)
        .body(axum::body::Body::from(altered))
        .unwrap();
    assert_eq!(call(&w.router, req).await.status, 400);
    let unsigned = http::Request::builder()
        .method("POST")
        .uri("/webhooks/stripe")
        .body(axum::body::Body::from(body))
        .unwrap();
    assert_eq!(call(&w.router, unsigned).await.status, 400);
    assert_eq!(w.state(order).await, OrderState::Held, "nothing changed");
    assert_eq!(w.books(&def).await, (0, 1));
    // The route is declared for the template check.
    assert!(ROUTES.iter().any(|r| r.path == "/webhooks/stripe"));
}

#[tokio::test]
async fn with_stripe_unreachable_paying_answers_503_and_expiry_waits_with_the_stock_held() {
    let w = World::with_stripe("http://127.0.0.1:9").await;
    let def = w.sale(1, 1).await;
    let order = a_held_order(&w, &def, "jon").await;
    let a = w.payment(order, "jon").await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (503, Some("service_unavailable"))
    );
    assert_eq!(w.hold(order).await.payment_intent, None, "nothing changed");

    // An order whose intent exists (attached while Stripe was there) must not expire unseen.
    w.shop
        .checkout
        .holds
        .attach_intent(order, "pi_unreachable")
        .await
        .unwrap();
    let report = w
        .shop
        .checkout
        .expire_due(EpochMs(after_the_holds()))
        .await
        .unwrap();
    assert_eq!((report.expired, report.deferred), (0, 1));
    assert_eq!(w.state(order).await, OrderState::Held);
    assert_eq!(w.books(&def).await, (0, 1), "the stock is not returned");
    assert_eq!(w.assert_books(&def).await, 0);
}

#[tokio::test]
async fn two_expiry_runs_at_once_return_each_unit_once() {
    let w = World::new().await;
    let def = w.sale(4, 1).await;
    for b in ["k1", "k2", "k3", "k4"] {
        a_held_order(&w, &def, b).await;
    }
    let at = after_the_holds();
    let (a, b) = tokio::join!(
        w.shop.checkout.expire_due(EpochMs(at)),
        w.shop.checkout.expire_due(EpochMs(at))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.expired + b.expired, 4, "{a:?} {b:?}");
    assert_eq!(w.books(&def).await, (0, 0));
    assert_eq!(w.assert_books(&def).await, 4, "each unit back once");
}

#[tokio::test]
async fn a_return_interrupted_between_postgres_and_redis_is_finished_once_by_the_next_run() {
    let w = World::new().await;
    let def = w.sale(2, 1).await;
    let order = a_held_order(&w, &def, "lee").await;
    // The Postgres half only, as a process that died right after its commit.
    let moved = w
        .shop
        .checkout
        .holds
        .move_order(order, OrderState::Held, OrderState::Expired, None, None)
        .await
        .unwrap()
        .unwrap();
    assert!(!moved.stock_returned);
    let live = w.app.store.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!(live.remaining, 1, "not back in Redis yet");
    let r1 = w
        .shop
        .checkout
        .finish_unfinished(EpochMs(now_ms()))
        .await
        .unwrap();
    let r2 = w
        .shop
        .checkout
        .finish_unfinished(EpochMs(now_ms()))
        .await
        .unwrap();
    assert_eq!((r1, r2), (1, 0));
    // And a repeat of the Redis half (a re-sent script) gives nothing more.
    w.shop.checkout.finish(&moved).await;
    assert_eq!(w.assert_books(&def).await, 2);
    assert_eq!(w.shown(order).await, Some(OrderState::Expired));
}

#[tokio::test]
async fn the_payment_fixture_as_is_asks_for_an_order_no_sale_has() {
    // `cargo lambda invoke checkout --data-file events/apigw-checkout-payment.json`: the buyer
    // comes from the JWT authorizer's claim; the order does not exist.
    let w = World::new().await;
    let req = lambda_http::request::from_str(include_str!(
        "../../../../events/apigw-checkout-payment.json"
    ))
    .unwrap();
    let a = call(&w.router, req).await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (404, Some("order_not_found"))
    );
}

/// Pay for `order` as its buyer does: the payment route, the card at Stripe, Stripe's webhook.
async fn pay_for(w: &World, order: Uuid, buyer: &str) {
    let intent = payment_of(&w.payment(order, buyer).await).payment_intent;
    assert_eq!(pay_at_stripe(&intent, "4242424242424242"), "succeeded");
    assert_eq!(w.webhook(&succeeded(&intent, order)).await.status, 200);
}

#[tokio::test]
async fn two_thousand_buyers_on_a_hundred_units_with_thirty_percent_abandoning_end_with_every_unit_paid(
) {
    let w = World::new().await;
    let def = w.sale(100, 1).await;
    let buy_app = w.app.buy_app();
    let mut next_buyer = 0usize;
    let (mut paid, mut abandoned, mut waves) = (0usize, 0usize, 0usize);
    while paid < 100 {
        waves += 1;
        assert!(
            waves <= 20,
            "the sale does not end: {paid} paid after {waves} waves"
        );
        // The next 500 buyers arrive at once; those who get a hold are the wave's holders.
        let arrivals: Vec<String> = (next_buyer..next_buyer + 500)
            .map(|i| format!("buyer-{i}"))
            .collect();
        next_buyer += 500;
        assert!(next_buyer <= 2_000, "more than 2,000 buyers needed");
        let answers = futures_join_all(arrivals.iter().map(|b| {
            let app = buy_app.clone();
            let req = flashflow_http::testing::local_buy(&def.id, b, None);
            async move { call(&app, req).await }
        }))
        .await;
        let mut holders = Vec::new();
        for (b, a) in arrivals.iter().zip(&answers) {
            match a.status {
                202 => holders.push((
                    b.clone(),
                    a.body["order_id"]
                        .as_str()
                        .unwrap()
                        .parse::<Uuid>()
                        .unwrap(),
                )),
                409 => assert_eq!(a.body["error"], "sold_out"),
                other => panic!("{other} {:?}", a.body),
            }
        }
        w.settle(&def).await;
        // Seven in ten pay; the others walk away and their holds run out.
        for (i, (b, order)) in holders.iter().enumerate() {
            if i % 10 < 7 {
                pay_for(&w, *order, b).await;
                paid += 1;
            } else {
                abandoned += 1;
            }
        }
        let report = w
            .shop
            .checkout
            .expire_due(EpochMs(after_the_holds()))
            .await
            .unwrap();
        assert_eq!(report.confirmed, 0);
        w.assert_books(&def).await;
        println!(
            "wave {waves}: {} holds, {} paid so far, {} expired this wave, redis remaining {}",
            holders.len(),
            paid,
            report.expired,
            w.app
                .store
                .live_sale(&def.id)
                .await
                .unwrap()
                .unwrap()
                .remaining
        );
    }
    assert_eq!(w.books(&def).await, (100, 0), "every unit paid, none held");
    assert_eq!(w.assert_books(&def).await, 0);
    assert!(
        abandoned >= 30,
        "{abandoned} holds abandoned and sold again"
    );
    println!(
        "| 2,000 buyers (arriving 500 at a time) on 100 units, 30% of holds abandoned | {next_buyer} buyers, {waves} waves | {paid} paid | {abandoned} expired and sold again |"
    );
}

/// Every future, all at once (no extra crate for it).
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn redis_losing_its_data_between_the_two_halves_of_a_return_loses_no_unit_and_gives_none_twice(
) {
    // Its own Redis, without persistence: a restart loses everything.
    let mut redis = PrivateRedis::start(&[]);
    let mut app = TestApp::new().await;
    app.store =
        flashflow_adapters::redis::RedisStore::connect(&flashflow_adapters::redis::RedisSettings {
            url: redis.url(),
            command_timeout: Duration::from_secs(2).into(),
            ..Default::default()
        })
        .unwrap();
    let w = World::on(app, &stripe_base()).await;
    let def = w.sale(3, 1).await;
    let gone = a_held_order(&w, &def, "mo").await;
    let kept = a_held_order(&w, &def, "ned").await;
    // The Postgres half of one return, then Redis restarts empty before the Redis half.
    w.shop
        .checkout
        .holds
        .move_order(gone, OrderState::Held, OrderState::Expired, None, None)
        .await
        .unwrap()
        .unwrap();
    redis.kill_and_restart();
    // While Redis holds no sale, the return waits (it cannot be done, and must not be lost).
    w.shop
        .checkout
        .finish_unfinished(EpochMs(now_ms()))
        .await
        .unwrap();
    assert!(!w.hold(gone).await.stock_returned);
    // The operator rebuilds the sale from Postgres, anew: the ended hold's unit counts as back at
    // once (the Redis that would have remembered a return is gone, whatever the ledger's flag)...
    let rebuilt = call(
        &w.app.operator().await,
        admin("POST", &format!("/admin/sales/{}/rehydrate", def.id), None),
    )
    .await;
    assert_eq!(rebuilt.status, 200, "{:?}", rebuilt.body);
    assert_eq!(rebuilt.body["remaining"], 2, "stock 3, one held");
    assert_eq!(rebuilt.body["rehydrated"]["remaining"], 2);
    // ...and the deferred return, carried by the next run (once its wait is over), gives
    // nothing twice.
    let next_run = now_ms() + flashflow_app::checkout::RETRY_AFTER_MS + 1;
    w.shop
        .checkout
        .finish_unfinished(EpochMs(next_run))
        .await
        .unwrap();
    w.shop
        .checkout
        .finish_unfinished(EpochMs(next_run))
        .await
        .unwrap();
    assert!(w.hold(gone).await.stock_returned);
    assert_eq!(w.assert_books(&def).await, 2);
    // The buyer whose hold expired may buy again; the one still holding may not.
    assert_eq!(w.app.buy(&def, "mo").await.status, 202);
    assert_eq!(w.app.buy(&def, "ned").await.body["error"], "limit_reached");
    assert_eq!(w.state(kept).await, OrderState::Held);
}

#[tokio::test]
async fn a_cancel_racing_the_payment_ends_paid_or_cancelled_never_both() {
    let w = World::new().await;
    let def = w.sale(1, 1).await;
    let order = a_held_order(&w, &def, "ola").await;
    let intent = payment_of(&w.payment(order, "ola").await).payment_intent;
    assert_eq!(pay_at_stripe(&intent, "4242424242424242"), "succeeded");
    let event = succeeded(&intent, order);
    let (cancel, hook) = tokio::join!(w.cancel(order, "ola"), w.webhook(&event));
    assert_eq!(hook.status, 200);
    // Stripe will not cancel a paid intent: the cancel cannot win.
    assert_eq!(
        (cancel.status, cancel.body["error"].as_str()),
        (409, Some("already_paid"))
    );
    assert_eq!(w.state(order).await, OrderState::Confirmed);
    assert_eq!(w.books(&def).await, (1, 0));
    assert_eq!(w.assert_books(&def).await, 0);
}

#[tokio::test]
async fn a_sale_with_held_orders_is_not_reset_even_when_forced() {
    let w = World::new().await;
    let def = w.sale(2, 1).await;
    let order = a_held_order(&w, &def, "pat").await;
    let operator = w.app.operator().await;
    let reset = |body: &'static str| {
        call(
            &operator,
            admin(
                "POST",
                &format!("/admin/sales/{}/reset", def.id),
                Some(body),
            ),
        )
    };
    let refused = reset(r#"{"force":true}"#).await;
    assert_eq!(
        (refused.status, refused.body["error"].as_str()),
        (409, Some("sale_has_held_orders")),
        "{:?}",
        refused.body
    );
    assert_eq!(w.state(order).await, OrderState::Held, "nothing changed");
    assert_eq!(
        w.app.buy(&def, "quinn").await.status,
        202,
        "the sale still sells"
    );
    // Once the hold ended, the reset goes ahead.
    w.settle(&def).await;
    w.shop
        .checkout
        .expire_due(EpochMs(after_the_holds()))
        .await
        .unwrap();
    let done = reset("{}").await;
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["round"], 2);
}

/// Now, in epoch milliseconds (the expiry job's clock).
fn now_ms() -> i64 {
    flashflow::domain::EpochMs::now().get()
}

/// Make localstripe hold the first request with idempotency key `key` for `ms` (the launcher's
/// test hook), so a second request with the key arrives while Stripe is still on the first.
fn slow_key(key: &str, ms: u64) {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("{}/_flashflow/slow_key", stripe_base()),
        ])
        .args(["-d", &format!("key={key}"), "-d", &format!("ms={ms}")])
        .output()
        .expect("curl");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("slow"),
        "{out:?}"
    );
}

#[tokio::test]
async fn two_payments_asked_for_at_once_get_the_one_intent_not_a_500() {
    let w = World::new().await;
    let def = w.sale(2, 1).await;
    let order = a_held_order(&w, &def, "pia").await;
    slow_key(&format!("ff-intent-{order}"), 400);
    let (a, b) = tokio::join!(w.payment(order, "pia"), w.payment(order, "pia"));
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "{:?} / {:?}",
        a.body,
        b.body
    );
    assert_eq!(a.body["payment_intent"], b.body["payment_intent"]);
}
