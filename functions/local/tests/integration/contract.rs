//! The ports' contracts (`flashflow::testing::contract`) on the real adapters: the same checks
//! the in-memory adapters pass in the unit tests.

use crate::helpers::*;
use flashflow::adapters::sqs::SqsPublisher;
use flashflow::testing::contract;

#[tokio::test]
async fn redis_keeps_the_reservation_outbox_and_sale_contract() {
    contract::reservations(&store().await, &fresh_sale_id()).await;
}

#[tokio::test]
async fn postgres_keeps_the_ledger_contract() {
    contract::ledger(&fresh_db().await, &fresh_sale_id()).await;
}

#[tokio::test]
async fn dynamodb_keeps_the_status_contract() {
    contract::status(&fresh_status_store().await, &fresh_sale_id()).await;
}

#[tokio::test]
async fn sqs_keeps_the_publisher_contract() {
    let sqs = sqs().await;
    let queue = fresh_queue(&sqs).await;
    contract::publisher(&SqsPublisher::new(sqs.clone(), &queue, signer())).await;
    // 1 + 12 now, and the 2 sent for later once their delay is over.
    wait_for_depth(&sqs, &queue, 15, std::time::Duration::from_secs(15)).await;
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
    let e = flashflow::adapters::postgres::Db::new(&url)
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
    flashflow::adapters::postgres::Db::new(&fresh)
        .unwrap()
        .migrate()
        .await
        .unwrap();
}
