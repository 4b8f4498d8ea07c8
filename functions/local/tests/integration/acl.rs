//! Each function's Redis ACL user (`infra/redis/acl-users.txt`, the same rules as the template's
//! ElastiCache users) on the real Redis: it can do its function's work, and no user but buy's can
//! take stock.

use crate::helpers::*;
use flashflow::domain::{BuyerId, OrderState, OrderStatus, Quantity, Reservation, ReserveRequest};
use flashflow::ports::{HoldRecord, Returned, StoreError};
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use flashflow_adapters::secrets::Credentials;
use std::time::Duration;
use uuid::Uuid;

const USERS: &str = include_str!("../../../../infra/redis/acl-users.txt");

/// The ACL rules of `function`.
fn rules(function: &str) -> &'static str {
    USERS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(function)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no ACL user for {function}"))
}

/// A store logged in as a fresh Redis user with `function`'s rules.
async fn store_as(function: &str) -> (RedisStore, RedisSettings) {
    store_with_rules(function, rules(function)).await
}

/// A store logged in as a fresh Redis user (named after `hint`) with `rules`.
async fn store_with_rules(hint: &str, rules: &str) -> (RedisStore, RedisSettings) {
    use fred::interfaces::ClientLike;
    let name = format!("t-{hint}-{}", Uuid::new_v4().simple());
    let password = format!("pw-{}", Uuid::new_v4().simple());
    let mut args: Vec<String> = vec!["SETUSER".into(), name.clone(), "reset".into()];
    args.extend(rules.split_whitespace().map(str::to_owned));
    args.push(format!(">{password}"));
    let admin = store().await;
    let _: String = admin
        .client()
        .custom(fred::cmd!("ACL"), args)
        .await
        .expect("ACL SETUSER");
    let settings = RedisSettings {
        auth: Some(Credentials {
            username: Some(name),
            password: password.into(),
        }),
        ..redis_settings()
    };
    let store = RedisStore::connect(&settings).unwrap();
    tokio::time::timeout(Duration::from_secs(5), store.client().wait_for_connect())
        .await
        .expect("connected in time")
        .expect("logged in");
    (store, settings)
}

fn buy_of(def: &flashflow::domain::SaleDefinition, buyer: &str) -> ReserveRequest {
    ReserveRequest {
        admission: None,
        order_id: Uuid::now_v7(),
        sale: def.id.clone(),
        buyer: BuyerId::parse(buyer).unwrap(),
        quantity: Quantity::default(),
        idempotency_key: None,
        signature: None,
    }
    .signed(&signer())
}

/// Whether `e` is Redis refusing a command this user may not run (`NOPERM` for the script
/// itself; inside a script, Redis refuses the first command the user may not run).
fn no_permission(e: &StoreError) -> bool {
    let text = e.to_string();
    text.contains("NOPERM") || text.contains("can't run this command")
}

#[tokio::test]
async fn buys_user_reserves_marks_what_it_sent_and_learns_a_sale_sold_out() {
    // Loaded before buy's store listens for news: the load's own news (its wake key) would void
    // a snapshot being read when it arrives (the fast path forgets a sale it hears of).
    let def = loaded_sale(&store_admin().await, 1, 1).await;
    let (store, settings) = store_as("buy").await;
    store.ready(Duration::from_secs(5)).await.unwrap();
    let fast = flashflow_adapters::redis::FastPathSettings::default();
    let store = store.with_fast_path(&fast, &settings).unwrap();
    // Ready once its tracking connection listens (its first connection forgets what came before).
    store.ready(Duration::from_secs(5)).await.unwrap();
    let Reservation::Reserved { order_id, .. } = store.reserve(&buy_of(&def, "a")).await.unwrap()
    else {
        panic!("not reserved")
    };
    let until = flashflow::domain::EpochMs::now().plus(Duration::from_secs(60));
    store.mark_sent(&def.id, &[order_id], until).await.unwrap();
    let sold_out = store.reserve(&buy_of(&def, "b")).await.unwrap();
    assert_eq!(
        sold_out,
        Reservation::Refused(flashflow::domain::Refusal::SoldOut)
    );
    let cache = store.sold_out_cache().unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while !cache.has_fresh(&def.id) {
        assert!(
            std::time::Instant::now() < until,
            "the snapshot was not read"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_orders_user_reads_orders_and_sales_but_cannot_run_the_reservation_script() {
    let admin = store_admin().await;
    let def = loaded_sale(&admin, 2, 1).await;
    let Reservation::Reserved { order_id, .. } = admin.reserve(&buy_of(&def, "a")).await.unwrap()
    else {
        panic!("not reserved")
    };
    let (orders, _) = store_as("orders").await;
    assert!(orders.find_pending(order_id).await.unwrap().is_some());
    assert_eq!(
        orders.live_sale(&def.id).await.unwrap().unwrap().remaining,
        1
    );
    assert!(orders.sales().await.unwrap().contains(&def.id));
    let refused = orders.reserve(&buy_of(&def, "b")).await.unwrap_err();
    assert!(no_permission(&refused), "{refused}");
    assert_eq!(
        admin.live_sale(&def.id).await.unwrap().unwrap().remaining,
        1
    );
}

#[tokio::test]
async fn no_user_but_buys_can_take_stock() {
    let admin = store_admin().await;
    let def = loaded_sale(&admin, 5, 5).await;
    for function in ["settle", "reconcile", "operator", "checkout", "queue"] {
        let (store, _) = store_as(function).await;
        store.ready(Duration::from_secs(5)).await.unwrap();
        let refused = store.reserve(&buy_of(&def, "x")).await.unwrap_err();
        assert!(no_permission(&refused), "{function}: {refused}");
    }
    let live = admin.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!((live.remaining, live.pending), (5, 0), "nothing taken");
}

#[tokio::test]
async fn settles_user_takes_settled_orders_out_of_the_outbox() {
    let admin = store_admin().await;
    let def = loaded_sale(&admin, 2, 1).await;
    let Reservation::Reserved { order_id, .. } = admin.reserve(&buy_of(&def, "a")).await.unwrap()
    else {
        panic!("not reserved")
    };
    let (settle, _) = store_as("settle").await;
    settle.ready(Duration::from_secs(5)).await.unwrap();
    settle
        .remove_settled(&def.id, &[order_id], &[])
        .await
        .unwrap();
    assert_eq!(admin.live_sale(&def.id).await.unwrap().unwrap().pending, 0);
}

#[tokio::test]
async fn the_sweepers_user_finds_stale_entries_marks_them_and_retires_finished_sales() {
    let admin = store_admin().await;
    let def = loaded_sale(&admin, 1, 1).await;
    let Reservation::Reserved { order_id, .. } = admin.reserve(&buy_of(&def, "a")).await.unwrap()
    else {
        panic!("not reserved")
    };
    let (sweeper, _) = store_as("reconcile").await;
    sweeper.ready(Duration::from_secs(5)).await.unwrap();
    let soon = flashflow::domain::EpochMs::now().plus(Duration::from_secs(5));
    assert_eq!(sweeper.stale(&def.id, soon, 10).await.unwrap().len(), 1);
    let later = soon.plus(Duration::from_secs(3600));
    let resent = [order_id.to_string()];
    sweeper.touch(&def.id, &resent, &[], later).await.unwrap();
    assert!(sweeper.sales().await.unwrap().contains(&def.id));
    admin
        .remove_settled(&def.id, &[order_id], &[])
        .await
        .unwrap();
    let now = flashflow::domain::EpochMs::now();
    let ttl = Duration::from_secs(60);
    assert!(sweeper.retire_if_finished(&def.id, now, ttl).await.unwrap());
}

#[tokio::test]
async fn the_operators_user_loads_rebuilds_and_resets_a_sale() {
    let (operator, _) = store_as("operator").await;
    operator.ready(Duration::from_secs(5)).await.unwrap();
    let def = sale(&fresh_sale_id(), 3, 1);
    assert!(operator.load_sale(&def, 3).await.unwrap());
    assert!(
        !operator.load_sale(&def, 3).await.unwrap(),
        "a live sale stays"
    );
    assert!(operator.entries(&def.id).await.unwrap().is_empty());
    // A rebuild restores a checkout sale's open holds too.
    let rebuilt = flashflow::domain::rehydrate::Plan {
        remaining: 2,
        remaining_if_new: 2,
        returned: Vec::new(),
        round: 1,
        buyers: vec![("a".into(), 1)],
        keys: Vec::new(),
        holds: vec![(Uuid::now_v7(), flashflow::domain::EpochMs::now())],
        draw_seed: None,
    };
    assert!(!operator.rehydrate(&def, &rebuilt).await.unwrap());
    operator.reset_sale(&def, 2).await.unwrap();
    let live = operator.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!((live.remaining, live.pending), (3, 0));
}

#[tokio::test]
async fn a_load_that_dies_at_the_waiting_room_leaves_the_sale_unbuyable_not_ungated() {
    use flashflow::domain::waiting_room::WaitingRoom;
    use flashflow::ports::LiveSales;
    // The loader's rules without the waiting room's keys: its load fails there, as a process
    // killed between the two steps would stop.
    let without_room: Vec<&str> = rules("operator")
        .split_whitespace()
        .filter(|rule| !rule.contains(":wr"))
        .collect();
    let (loader, _) = store_with_rules("no-room", &without_room.join(" ")).await;
    loader.ready(Duration::from_secs(5)).await.unwrap();
    let now = flashflow::domain::EpochMs::now().get();
    let def = sale(&fresh_sale_id(), 3, 1).with_waiting_room(WaitingRoom {
        opens_at_ms: now - 1_000,
        admission_seconds: 60,
        admit_per_second: None,
        pow_bits: 0,
        entry: None,
    });
    let failed = loader.load_sale(&def, 3).await.unwrap_err();
    assert!(no_permission(&failed), "{failed}");
    let admin = store_admin().await;
    assert!(
        admin.live_sale(&def.id).await.unwrap().is_none(),
        "no stock in Redis: nothing can be bought without the gate"
    );
    let tried = admin.reserve(&buy_of(&def, "a")).await;
    assert!(
        !matches!(tried, Ok(Reservation::Reserved { .. })),
        "reserved a unit of a sale whose gate was never stored: {tried:?}"
    );
}

#[tokio::test]
async fn checkouts_user_gives_an_ended_holds_unit_back() {
    let admin = store_admin().await;
    let def = loaded_sale(&admin, 1, 1).await;
    let Reservation::Reserved { message, .. } = admin.reserve(&buy_of(&def, "a")).await.unwrap()
    else {
        panic!("not reserved")
    };
    let order = flashflow::domain::OrderMessage::parse(&message).unwrap();
    let (checkout, _) = store_as("checkout").await;
    checkout.ready(Duration::from_secs(5)).await.unwrap();
    assert!(checkout
        .find_pending(order.order_id)
        .await
        .unwrap()
        .is_some());
    let hold = HoldRecord {
        status: OrderStatus::of(&order, OrderState::Expired),
        payment_intent: None,
        price: 100,
        currency: "eur".into(),
        round: 1,
        stock_returned: false,
        status_written: false,
    };
    assert_eq!(checkout.return_stock(&hold).await.unwrap(), Returned::Now);
    assert_eq!(
        admin.live_sale(&def.id).await.unwrap().unwrap().remaining,
        1
    );
}

/// The test Redis as its default user (everything allowed): to set a sale up.
async fn store_admin() -> RedisStore {
    store().await
}

#[tokio::test]
async fn the_queue_user_runs_the_waiting_room_and_the_operator_user_loads_and_reads_it() {
    use flashflow::domain::waiting_room::WaitingRoom;
    use flashflow::ports::{JoinOutcome, QueueJoins, QueueSteps};
    let (operator, _) = store_as("operator").await;
    let (queue, _) = store_as("queue").await;
    operator.ready(Duration::from_secs(5)).await.unwrap();
    queue.ready(Duration::from_secs(5)).await.unwrap();
    let now = flashflow::domain::EpochMs::now().get();
    let mut def = sale(&fresh_sale_id(), 5, 1);
    def.opens_at_ms = Some(now + 3_600_000);
    def.waiting_room = Some(WaitingRoom {
        opens_at_ms: now - 1_000,
        admission_seconds: 60,
        admit_per_second: None,
        pow_bits: 0,
        entry: None,
    });
    operator.load_sale(&def, 5).await.unwrap();
    let buyer = flashflow::domain::BuyerId::parse("q").unwrap();
    assert_eq!(
        match queue
            .join(&def.id, &buyer, None, Some("c1"), None)
            .await
            .unwrap()
        {
            JoinOutcome::Joined(p) => p.index,
            other => panic!("{other:?}"),
        },
        0
    );
    assert_eq!(queue.step(&def.id).await.unwrap().unwrap().joined, 1);
    assert_eq!(operator.peek(&def.id).await.unwrap().unwrap().joined, 1);
    // The operator reads a queue; it may not step one (no TIME: nor run reserve.lua's writes).
    assert!(no_permission(&operator.step(&def.id).await.unwrap_err()));
    // At the opening the queue user makes the draw final: it reads the cohort (HSCAN) and
    // writes the join list.
    use flashflow::ports::JoinLists;
    def.opens_at_ms = Some(flashflow::domain::EpochMs::now().get() + 200);
    operator.load_sale(&def, 5).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = queue.step(&def.id).await.unwrap().unwrap();
    let (seed, cohort) = s.drawn.clone().expect("drawn at the opening");
    let buyers = queue.cohort(&def.id, s.epoch, cohort).await.unwrap();
    assert_eq!(buyers, Some(vec![Some(buyer.clone())]));
    let draw = flashflow::domain::waiting_room::draw::FinalDraw::new(&seed, [1; 32], None);
    assert!(queue
        .finalize(&def.id, s.epoch, &draw, &[[1; 32]])
        .await
        .unwrap());
    assert_eq!(
        queue.leaves(&def.id, s.epoch).await.unwrap(),
        Some(vec![[1; 32]])
    );
}

/// One raw command as `function`'s user: `Ok` when Redis ran it, the error text when not.
async fn raw(function: &str, cmd: &'static str, args: &[&str]) -> Result<(), String> {
    use fred::interfaces::ClientLike;
    let (store, _) = store_as(function).await;
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let r: Result<fred::types::Value, _> = store
        .client()
        .custom(
            fred::types::CustomCommand::new_static(cmd, None, false),
            args,
        )
        .await;
    r.map(|_| ()).map_err(|e| e.to_string())
}

fn refused(r: Result<(), String>) -> bool {
    matches!(r, Err(e) if e.contains("NOPERM") || e.contains("no permissions"))
}

#[tokio::test]
async fn the_queue_user_cannot_lift_a_sales_gate_nor_raise_its_stock() {
    let tag = format!("ff:{{{}}}", fresh_sale_id());
    let sale = format!("{tag}:sale");
    assert!(
        refused(raw("queue", "HDEL", &[&sale, "wr"]).await),
        "the gate"
    );
    assert!(
        refused(raw("queue", "HINCRBY", &[&sale, "remaining", "1"]).await),
        "the stock"
    );
    assert!(refused(
        raw("queue", "HSET", &[&sale, "remaining", "9"]).await
    ));
    assert!(
        !refused(raw("queue", "HGET", &[&sale, "remaining"]).await),
        "it reads it"
    );
}

#[tokio::test]
async fn only_the_queue_user_and_the_loader_read_the_draws_seed() {
    let seed = format!("ff:{{{}}}:wr:seed", fresh_sale_id());
    for function in ["buy", "orders", "settle", "reconcile", "checkout"] {
        assert!(
            refused(raw(function, "GET", &[&seed]).await),
            "{function} reads the seed"
        );
    }
    assert!(
        !refused(raw("operator", "SET", &[&seed, "00"]).await),
        "the loader writes it"
    );
    assert!(
        !refused(raw("queue", "GET", &[&seed]).await),
        "the draw reads it"
    );
}

#[tokio::test]
async fn checkout_touches_no_waiting_room_key_and_sets_no_stock() {
    let tag = format!("ff:{{{}}}", fresh_sale_id());
    for key in ["wr", "wr:places", "wr:spent", "wr:used", "wr:batches"] {
        let key = format!("{tag}:{key}");
        assert!(
            refused(raw("checkout", "HGET", &[&key, "x"]).await),
            "checkout reads {key}"
        );
    }
    let sale = format!("{tag}:sale");
    assert!(refused(
        raw("checkout", "HSET", &[&sale, "remaining", "9"]).await
    ));
}

#[tokio::test]
async fn buy_counts_admissions_but_cannot_touch_a_queues_places_or_controls() {
    let tag = format!("ff:{{{}}}", fresh_sale_id());
    assert!(!refused(
        raw("buy", "INCR", &[&format!("{tag}:wr:used")]).await
    ));
    for key in ["wr", "wr:places", "wr:batches"] {
        let key = format!("{tag}:{key}");
        assert!(
            refused(raw("buy", "HSET", &[&key, "paused", "1"]).await),
            "buy writes {key}"
        );
    }
}
