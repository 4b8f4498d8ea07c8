//! Checkout's rules on the in-memory adapters: holds, the reservation store, the status read
//! model and the payment provider, each switchable off. The same flows run against Postgres,
//! Redis, DynamoDB Local and localstripe in `flashflow-local`'s integration tests.

use super::*;
use flashflow::domain::sale::Checkout as Terms;
use flashflow::domain::EpochMs;
use flashflow::domain::{OrderMessage, OrderStatus, Quantity, Reservation, ReserveRequest, SaleId};
use flashflow::ports::prelude::*;
use flashflow_adapters::memory::{MemoryHolds, MemoryPayments, MemoryStatus, MemoryStore};

const PRICE: u64 = 12_900;
const HOLD_MS: i64 = 60_000;

struct Shop {
    checkout: Checkout<MemoryHolds, MemoryStore, MemoryStatus, MemoryPayments>,
    sale: SaleId,
}

fn shop() -> Shop {
    let sale = SaleId::parse("shop").unwrap();
    let mut def = flashflow_adapters::contract::sale(&sale, 3);
    def.per_user_limit = 2;
    def.checkout = Some(Terms {
        hold_seconds: (HOLD_MS / 1000) as u32,
        price: PRICE,
        currency: "eur".into(),
    });
    let store = MemoryStore::default();
    store.load_sale_now(&def, 3);
    Shop {
        checkout: Checkout {
            holds: MemoryHolds::default(),
            store,
            status: MemoryStatus::default(),
            payments: MemoryPayments::default(),
            metrics: Metrics::new("checkout"),
        },
        sale,
    }
}

fn buyer(name: &str) -> BuyerId {
    BuyerId::parse(name).unwrap()
}

impl Shop {
    /// A unit reserved by `who` and recorded as held until `HOLD_MS` from now.
    async fn held(&self, who: &str) -> Uuid {
        let req = ReserveRequest {
            admission: None,
            order_id: Uuid::now_v7(),
            sale: self.sale.clone(),
            buyer: buyer(who),
            quantity: Quantity::default(),
            idempotency_key: None,
            signature: None,
        };
        let Ok(Reservation::Reserved { message, .. }) = self.checkout.store.reserve(&req).await
        else {
            panic!("not reserved");
        };
        let mut order = OrderMessage::parse(&message).unwrap();
        order.pay_by_ms = Some(EpochMs::now().get() + HOLD_MS);
        self.checkout
            .holds
            .hold_now(OrderStatus::of(&order, OrderState::Held), PRICE, "eur");
        order.order_id
    }

    fn state(&self, order: Uuid) -> OrderState {
        self.checkout.holds.get(order).unwrap().status.status
    }

    fn remaining(&self) -> i64 {
        self.checkout.store.remaining(&self.sale).unwrap()
    }

    async fn shown(&self, order: Uuid) -> Option<OrderState> {
        self.checkout
            .status
            .get(order)
            .await
            .unwrap()
            .map(|s| s.status)
    }

    /// The payment provider's event that `intent` succeeded, as its webhook delivers it.
    fn succeeded(&self, intent: &str) -> PaymentEvent {
        let now = EpochMs::now().get() / 1000;
        let (body, sig) = self.checkout.payments.signed_success(intent, now);
        self.checkout
            .payments
            .verify_event(&body, Some(&sig), now)
            .unwrap()
    }
}

/// Past every hold of these tests.
fn later() -> i64 {
    EpochMs::now().get() + HOLD_MS + 1_000
}

#[tokio::test]
async fn paying_twice_answers_the_one_intent_created_once_for_the_price_of_the_order() {
    let s = shop();
    let order = s.held("ann").await;
    let first = s.checkout.pay(order, &buyer("ann")).await.unwrap();
    let again = s.checkout.pay(order, &buyer("ann")).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        (first.amount, first.currency.as_str()),
        (PRICE as i64, "eur")
    );
    assert_eq!(s.checkout.payments.intents().len(), 1);
}

#[tokio::test]
async fn a_payment_while_held_confirms_the_order_and_shows_it_confirmed() {
    let s = shop();
    let order = s.held("ann").await;
    let pi = s
        .checkout
        .pay(order, &buyer("ann"))
        .await
        .unwrap()
        .payment_intent;
    s.checkout.payments.pay(&pi);
    s.checkout.on_event(&s.succeeded(&pi)).await.unwrap();
    assert_eq!(s.state(order), OrderState::Confirmed);
    assert_eq!(s.shown(order).await, Some(OrderState::Confirmed));
    assert_eq!(s.checkout.payments.refunds_of(&pi), 0);
}

#[tokio::test]
async fn the_same_payment_event_twice_changes_nothing_more() {
    let s = shop();
    let order = s.held("ann").await;
    let pi = s
        .checkout
        .pay(order, &buyer("ann"))
        .await
        .unwrap()
        .payment_intent;
    s.checkout.payments.pay(&pi);
    let event = s.succeeded(&pi);
    s.checkout.on_event(&event).await.unwrap();
    s.checkout.on_event(&event).await.unwrap();
    assert_eq!(s.state(order), OrderState::Confirmed);
    assert_eq!(s.checkout.payments.refunds_of(&pi), 0);
}

#[tokio::test]
async fn a_cancel_cancels_the_intent_first_and_gives_the_unit_back_once() {
    let s = shop();
    let order = s.held("ann").await;
    let pi = s
        .checkout
        .pay(order, &buyer("ann"))
        .await
        .unwrap()
        .payment_intent;
    let before = s.remaining();
    let cancelled = s.checkout.cancel(order, &buyer("ann")).await.unwrap();
    assert_eq!(cancelled.status.status, OrderState::Cancelled);
    s.checkout.cancel(order, &buyer("ann")).await.unwrap();
    assert_eq!(s.remaining(), before + 1, "one unit back, once");
    let at_provider = s.checkout.payments.intents();
    assert_eq!(at_provider[0].id, pi);
    assert_eq!(at_provider[0].state, IntentState::Canceled);
    assert_eq!(s.shown(order).await, Some(OrderState::Cancelled));
}

#[tokio::test]
async fn a_cancel_of_an_order_paid_at_the_provider_confirms_it_and_is_refused() {
    let s = shop();
    let order = s.held("ann").await;
    let pi = s
        .checkout
        .pay(order, &buyer("ann"))
        .await
        .unwrap()
        .payment_intent;
    s.checkout.payments.pay(&pi);
    let before = s.remaining();
    assert!(matches!(
        s.checkout.cancel(order, &buyer("ann")).await,
        Err(CheckoutError::Refused(HoldRefusal::AlreadyPaid))
    ));
    assert_eq!(s.state(order), OrderState::Confirmed);
    assert_eq!(s.remaining(), before, "a paid unit stays sold");
}

#[tokio::test]
async fn expiry_ends_an_unpaid_hold_and_gives_its_unit_back() {
    let s = shop();
    let order = s.held("ann").await;
    s.checkout.pay(order, &buyer("ann")).await.unwrap();
    let before = s.remaining();
    let report = s.checkout.expire_due(EpochMs(later())).await.unwrap();
    assert_eq!(report.expired, 1);
    assert_eq!(s.state(order), OrderState::Expired);
    assert_eq!(s.remaining(), before + 1);
    assert_eq!(
        s.checkout.payments.intents()[0].state,
        IntentState::Canceled
    );
}

#[tokio::test]
async fn expiry_confirms_a_hold_paid_at_the_provider_whose_event_never_came() {
    let s = shop();
    let order = s.held("ann").await;
    let pi = s
        .checkout
        .pay(order, &buyer("ann"))
        .await
        .unwrap()
        .payment_intent;
    s.checkout.payments.pay(&pi);
    let report = s.checkout.expire_due(EpochMs(later())).await.unwrap();
    assert_eq!((report.expired, report.confirmed), (0, 1));
    assert_eq!(s.state(order), OrderState::Confirmed);
}

#[tokio::test]
async fn expiry_leaves_a_hold_whose_payment_is_processing_and_counts_it_deferred() {
    let s = shop();
    let order = s.held("ann").await;
    let pi = s
        .checkout
        .pay(order, &buyer("ann"))
        .await
        .unwrap()
        .payment_intent;
    s.checkout.payments.set_processing(&pi);
    let report = s.checkout.expire_due(EpochMs(later())).await.unwrap();
    assert_eq!(report.deferred, 1);
    assert_eq!(s.state(order), OrderState::Held, "its payment decides");
}

#[tokio::test]
async fn a_payment_after_the_hold_ended_is_refunded_once_and_the_unit_not_taken_again() {
    let s = shop();
    let order = s.held("ann").await;
    let pi = s
        .checkout
        .pay(order, &buyer("ann"))
        .await
        .unwrap()
        .payment_intent;
    s.checkout.expire_due(EpochMs(later())).await.unwrap();
    let after_expiry = s.remaining();
    // The intent was cancelled; a payment that completed anyway (a race at the provider).
    s.checkout.payments.set_processing(&pi);
    s.checkout.payments.pay(&pi);
    let event = s.succeeded(&pi);
    s.checkout.on_event(&event).await.unwrap();
    s.checkout.on_event(&event).await.unwrap();
    assert_eq!(s.state(order), OrderState::Refunded);
    assert_eq!(s.checkout.payments.refunds_of(&pi), 1);
    assert_eq!(s.remaining(), after_expiry);
}

#[tokio::test]
async fn a_held_order_past_its_pay_by_cannot_be_paid() {
    let s = shop();
    let order = s.held("ann").await;
    s.checkout.expire_due(EpochMs(later())).await.unwrap();
    assert!(matches!(
        s.checkout.pay(order, &buyer("ann")).await,
        Err(CheckoutError::Refused(HoldRefusal::HoldExpired))
    ));
    assert!(s.checkout.payments.intents().is_empty(), "no intent made");
}

#[tokio::test]
async fn someone_elses_order_looks_like_no_order() {
    let s = shop();
    let order = s.held("ann").await;
    assert!(matches!(
        s.checkout.pay(order, &buyer("bob")).await,
        Err(CheckoutError::NotFound)
    ));
    assert!(matches!(
        s.checkout.cancel(order, &buyer("bob")).await,
        Err(CheckoutError::NotFound)
    ));
    assert_eq!(s.state(order), OrderState::Held);
}

#[tokio::test]
async fn an_order_reserved_but_not_recorded_yet_is_pending() {
    let s = shop();
    let req = ReserveRequest {
        admission: None,
        order_id: Uuid::now_v7(),
        sale: s.sale.clone(),
        buyer: buyer("ann"),
        quantity: Quantity::default(),
        idempotency_key: None,
        signature: None,
    };
    s.checkout.store.reserve(&req).await.unwrap();
    assert!(matches!(
        s.checkout.pay(req.order_id, &buyer("ann")).await,
        Err(CheckoutError::Pending)
    ));
}

#[tokio::test]
async fn with_the_provider_unreachable_a_cancel_ends_nothing_and_says_unavailable() {
    let s = shop();
    let order = s.held("ann").await;
    s.checkout.pay(order, &buyer("ann")).await.unwrap();
    s.checkout.payments.set_unavailable(true);
    let before = s.remaining();
    assert!(matches!(
        s.checkout.cancel(order, &buyer("ann")).await,
        Err(CheckoutError::Payment(PaymentError::Unavailable(_)))
    ));
    let report = s.checkout.expire_due(EpochMs(later())).await.unwrap();
    assert_eq!(report.deferred, 1);
    assert_eq!(s.state(order), OrderState::Held);
    assert_eq!(s.remaining(), before, "the unit stays held");
}

#[tokio::test]
async fn a_payment_event_for_an_order_not_here_changes_nothing_and_refunds_nothing() {
    let s = shop();
    let intent = s
        .checkout
        .payments
        .create_intent(
            &NewIntent {
                amount: 100,
                currency: "eur",
                order_id: Uuid::now_v7(),
                sale: &s.sale,
            },
            "elsewhere",
        )
        .await
        .unwrap();
    s.checkout.payments.pay(&intent.id);
    s.checkout.on_event(&s.succeeded(&intent.id)).await.unwrap();
    assert_eq!(s.checkout.payments.refunds_of(&intent.id), 0);
}

#[tokio::test]
async fn a_status_the_read_model_did_not_take_is_written_by_the_next_expiry_run() {
    let s = shop();
    let order = s.held("ann").await;
    s.checkout.status.set_unavailable(true);
    s.checkout.cancel(order, &buyer("ann")).await.unwrap();
    s.checkout.status.set_unavailable(false);
    assert_eq!(s.shown(order).await, None);
    let within_the_wait = s.checkout.expire_due(EpochMs::now()).await.unwrap();
    assert_eq!(
        within_the_wait.finished, 0,
        "a failed follow-up waits its turn"
    );
    let next_run = EpochMs::now().get() + RETRY_AFTER_MS + 1;
    let report = s.checkout.expire_due(EpochMs(next_run)).await.unwrap();
    assert_eq!(report.finished, 1);
    assert_eq!(s.shown(order).await, Some(OrderState::Cancelled));
}

#[tokio::test]
async fn holds_stuck_at_the_provider_do_not_stop_later_holds_from_ending_and_are_counted() {
    let s = shop();
    // More stuck holds (payments processing) than one expiry read takes, all due first.
    let mut stuck = Vec::new();
    for i in 0..PAGE + 5 {
        let order = Uuid::now_v7();
        let status = OrderStatus {
            order_id: order,
            sale_id: s.sale.clone(),
            buyer: buyer(&format!("stuck-{i}")),
            quantity: 1,
            status: OrderState::Held,
            duplicate_of: None,
            pay_by_ms: Some(EpochMs::now().get() - 10 * 60_000 + i as i64),
        };
        s.checkout.holds.hold_now(status, PRICE, "eur");
        let intent = NewIntent {
            amount: PRICE as i64,
            currency: "eur",
            order_id: order,
            sale: &s.sale,
        };
        let pi = s
            .checkout
            .payments
            .create_intent(&intent, &format!("k-{i}"))
            .await;
        let pi = pi.unwrap().id;
        s.checkout.holds.attach_intent(order, &pi).await.unwrap();
        s.checkout.payments.set_processing(&pi);
        stuck.push(order);
    }
    // A hold due after all of them, unpaid.
    let order = s.held("zoe").await;
    let report = s.checkout.expire_due(EpochMs(later())).await.unwrap();
    assert_eq!(
        s.state(order),
        OrderState::Expired,
        "not blocked: {report:?}"
    );
    assert_eq!(report.deferred, PAGE + 5, "each stuck hold counted");
    assert_eq!(
        report.overdue,
        (PAGE + 5) as u64,
        "and overdue: the alarm's count"
    );
    // The next run within the wait leaves them alone; after it, they are tried again.
    let again = s.checkout.expire_due(EpochMs(later())).await.unwrap();
    assert_eq!(again.deferred, 0);
    let after = s
        .checkout
        .expire_due(EpochMs(later() + RETRY_AFTER_MS + 1))
        .await
        .unwrap();
    assert_eq!(after.deferred, PAGE + 5);
    assert!(stuck.iter().all(|o| s.state(*o) == OrderState::Held));
}

#[tokio::test]
async fn a_payment_asked_for_while_another_creates_the_intent_gets_that_same_intent() {
    let s = shop();
    let order = s.held("ann").await;
    // The provider is still working on the other request with this order's key.
    s.checkout.payments.busy_once(&format!("ff-intent-{order}"));
    let first = s.checkout.pay(order, &buyer("ann")).await.unwrap();
    let again = s.checkout.pay(order, &buyer("ann")).await.unwrap();
    assert_eq!(first.payment_intent, again.payment_intent);
    assert_eq!(s.checkout.payments.intents().len(), 1);
}
