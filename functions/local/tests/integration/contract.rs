//! The ports' contracts (`flashflow_adapters::contract`) on the real adapters: the same
//! behaviours the in-memory adapters keep in the unit tests, one test each.

use crate::helpers::*;
use flashflow::domain::sale::Checkout as Terms;
use flashflow::domain::{BuyerId, OrderMessage, Quantity, SaleDefinition, ORDER_MESSAGE_VERSION};
use flashflow_adapters::contract::holds::{HeldOrders, MakeHeld};
use flashflow_adapters::contract::ledger::Books;
use flashflow_adapters::contract::payments::{Provided, Provider};
use flashflow_adapters::contract::publisher::Queue;
use flashflow_adapters::contract::status::Statuses;
use flashflow_adapters::contract::store::Store;
use flashflow_adapters::contract::waiting_room::Rooms;
use flashflow_adapters::postgres::Db;
use flashflow_adapters::sqs::SqsPublisher;
use uuid::Uuid;

mod on_redis {
    use super::*;
    flashflow_adapters::store_contract!(async {
        Store {
            store: store().await,
            id: fresh_sale_id(),
        }
    });
}

mod waiting_room_on_redis {
    use super::*;
    flashflow_adapters::waiting_room_contract!(async {
        Rooms {
            store: store().await,
        }
    });
}

mod on_postgres {
    use super::*;
    flashflow_adapters::ledger_contract!(async {
        Books {
            ledger: fresh_db().await,
            id: fresh_sale_id(),
        }
    });
}

/// Held orders made as settlement makes them: a checkout sale's reservations settled.
struct Settled {
    db: Db,
    sale: SaleDefinition,
}

/// The hold of [`Settled`]'s sale.
const HOLD_MS: i64 = 60_000;

impl MakeHeld for Settled {
    async fn held(&self, pay_by_ms: i64) -> Uuid {
        let order = OrderMessage {
            v: ORDER_MESSAGE_VERSION,
            order_id: Uuid::now_v7(),
            sale_id: self.sale.id.clone(),
            buyer: BuyerId::parse(&format!("b-{}", Uuid::new_v4().simple())).unwrap(),
            quantity: Quantity::default(),
            reserved_at_ms: pay_by_ms - HOLD_MS,
            idempotency_key: None,
            round: 1,
            pay_by_ms: Some(pay_by_ms),
            sig: None,
        };
        self.db
            .settle_orders(std::slice::from_ref(&order))
            .await
            .unwrap();
        order.order_id
    }
}

mod on_postgres_holds {
    use super::*;
    flashflow_adapters::holds_contract!(async {
        let url = fresh_schema_url().await;
        let mut def = sale(&fresh_sale_id(), 100, 1);
        def.checkout = Some(Terms {
            hold_seconds: (HOLD_MS / 1000) as u32,
            price: 100,
            currency: "eur".into(),
        });
        let db = db_at(&url).await;
        db.create_sale(&def).await.unwrap();
        HeldOrders {
            holds: db_at(&url).await,
            make: Settled { db, sale: def },
        }
    });
}

mod on_dynamodb {
    use super::*;
    flashflow_adapters::status_contract!(async {
        Statuses {
            store: fresh_status_store().await,
            id: fresh_sale_id(),
        }
    });
}

mod on_sqs {
    use super::*;
    flashflow_adapters::publisher_contract!(async {
        let sqs = sqs().await;
        let queue = fresh_queue(&sqs).await;
        Queue {
            queue: SqsPublisher::new(sqs, &queue),
        }
    });
}

#[tokio::test]
async fn sqs_holds_what_was_sent_now_and_what_was_sent_for_later_once_due() {
    use flashflow_adapters::contract::publisher::*;
    let sqs = sqs().await;
    let queue = fresh_queue(&sqs).await;
    let t = Queue {
        queue: SqsPublisher::new(sqs.clone(), &queue),
    };
    a_message_is_taken_now(&t).await;
    many_messages_are_taken_at_once_past_a_batch_of_ten(&t).await;
    messages_are_taken_for_later(&t).await;
    // 1 + 12 now, and the 2 sent for later once their delay is over.
    wait_for_depth(&sqs, &queue, 15, std::time::Duration::from_secs(15)).await;
}

/// localstripe as the buyer's browser and Stripe's webhooks see it.
struct Localstripe;

impl Provider for Localstripe {
    async fn pay(&self, intent: &str) {
        let intent = intent.to_owned();
        let status = tokio::task::spawn_blocking(move || {
            crate::stripe::pay_at_stripe(&intent, "4242424242424242")
        })
        .await
        .unwrap();
        assert_eq!(status, "succeeded");
    }

    /// Stripe's event as its webhook sends it: the intent in `data.object`, its metadata with
    /// it, signed with the endpoint's secret (`Stripe-Signature`).
    fn signed_success(&self, intent: &flashflow::ports::Intent, now_s: i64) -> (Vec<u8>, String) {
        let body = serde_json::json!({
            "id": "evt_contract",
            "type": "payment_intent.succeeded",
            "data": {"object": {
                "id": intent.id,
                "metadata": {"order_id": intent.order_id, "sale_id": "contract"},
            }},
        })
        .to_string();
        let sig = flashflow_adapters::stripe::signature::sign(
            body.as_bytes(),
            crate::stripe::WHSEC,
            now_s,
        );
        (body.into_bytes(), sig)
    }
}

mod on_localstripe {
    use super::*;
    flashflow_adapters::payments_contract!(async {
        Provided {
            payments: crate::stripe::stripe_at(&crate::stripe::base()),
            provider: Localstripe,
        }
    });
}

#[tokio::test]
async fn an_applied_migration_that_was_edited_is_refused_at_start() {
    let url = fresh_schema_url().await;
    let db = db_at(&url).await;
    db.client()
        .await
        .unwrap()
        .execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE version = '0001_sales_and_orders'",
            &[],
        )
        .await
        .unwrap();
    let e = flashflow_adapters::postgres::Db::new(&url)
        .unwrap()
        .migrate()
        .await
        .expect_err("an edited migration is refused");
    assert!(
        e.to_string().contains("0001_sales_and_orders was edited"),
        "{e}"
    );
    // An unedited history migrates again without complaint.
    let fresh = fresh_schema_url().await;
    db_at(&fresh).await;
    flashflow_adapters::postgres::Db::new(&fresh)
        .unwrap()
        .migrate()
        .await
        .unwrap();
}
