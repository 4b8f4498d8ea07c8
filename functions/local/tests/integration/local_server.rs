//! The local HTTP server: real sockets, the same routers.

use crate::helpers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_local_server_serves_the_buy_router_and_refuses_oversized_bodies() {
    let (store, sqs) = (store().await, sqs().await);
    let def = loaded_sale(&store, 5, 1).await;
    let app = buy_app(store.clone(), sqs, "http://127.0.0.1:9/unused");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(flashflow_local::server::serve(listener, app));

    let ok = raw_http(
        addr,
        format!("POST /sales/{}/buy HTTP/1.1\r\nhost: x\r\nx-user-id: w\r\ncontent-length: 0\r\nconnection: close\r\n\r\n", def.id).as_bytes(),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 202"), "{ok}");
    assert!(ok.contains("\"status\":\"PENDING\""), "{ok}");

    let big = "x".repeat(100_000);
    let too_big = raw_http(
        addr,
        format!("POST /sales/{}/buy HTTP/1.1\r\nhost: x\r\nx-user-id: v\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{big}", def.id, big.len()).as_bytes(),
    )
    .await;
    assert!(too_big.starts_with("HTTP/1.1 413"), "{too_big}");
    assert!(too_big.contains("body_too_large"));
    assert_eq!(
        store.live_sale(&def.id).await.unwrap().unwrap().remaining,
        4
    );
}

#[tokio::test]
async fn the_merged_local_app_answers_404_for_an_unknown_path_and_405_with_allow() {
    let (store, sqs) = (store().await, sqs().await);
    let app = flashflow_local::server::app(
        flashflow_http::buy::routes(flashflow_http::buy::BuyState {
            buy: std::sync::Arc::new(flashflow_app::buy::Buy::new(
                store.clone(),
                flashflow_adapters::sqs::SqsPublisher::new(sqs, "http://127.0.0.1:9/q"),
                signer(),
                Default::default(),
                flashflow_app::metrics::Metrics::new("buy"),
            )),
            callers: Default::default(),
        }),
        flashflow_http::orders::routes(flashflow_http::orders::OrdersState {
            status: fresh_status_store().await,
            store: store.clone(),
            trust_user_header: false,
            operator_token: None,
        }),
        flashflow_http::operator::routes(flashflow_http::operator::OperatorState {
            db: fresh_db().await,
            store,
            status: fresh_status_store().await,
            queues: flashflow_adapters::memory::MemoryQueue::default(),
            token: None,
            allow_reset: false,
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(flashflow_local::server::serve(listener, app));
    let root = raw_http(
        addr,
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(root.starts_with("HTTP/1.1 404"), "{root}");
    assert!(root.contains("route_not_found"), "{root}");
    let wrong = raw_http(
        addr,
        b"GET /admin/sales HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(wrong.starts_with("HTTP/1.1 405"), "{wrong}");
    assert!(
        wrong.to_ascii_lowercase().contains("allow: post"),
        "{wrong}"
    );
    assert!(wrong.contains("method_not_allowed"), "{wrong}");
}

/// One buy on a fresh connection; its status line and how long the answer took.
async fn timed_buy(
    addr: std::net::SocketAddr,
    sale: &flashflow::domain::SaleId,
    buyer: &str,
) -> (String, std::time::Duration) {
    let started = std::time::Instant::now();
    let answer = raw_http(
        addr,
        format!("POST /sales/{sale}/buy HTTP/1.1\r\nhost: x\r\nx-user-id: {buyer}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    (
        answer.lines().next().unwrap_or_default().to_owned(),
        started.elapsed(),
    )
}

/// Read until the server closes the connection (or `within` passes): whatever it sent.
async fn until_closed(mut s: tokio::net::TcpStream, within: std::time::Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn slowloris_idle_and_half_sent_connections_cannot_take_the_server_down() {
    use flashflow_local::server::{serve_with, Limits, ServerStats};
    use std::time::Duration;
    let (store, sqs) = (store().await, sqs().await);
    let queue = fresh_queue(&sqs).await;
    let def = loaded_sale(&store, 100, 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = Limits {
        header_read: Duration::from_secs(2),
        request: Duration::from_secs(3),
        max_connections: 10_000,
        max_per_peer: 10_000,
        ..Limits::default()
    };
    let stats = std::sync::Arc::new(ServerStats::default());
    tokio::spawn(serve_with(
        listener,
        buy_app(store.clone(), sqs, &queue),
        limits,
        stats.clone(),
    ));

    // 2,000 connections that send nothing, 1,000 that send half a request head, and 200 that
    // send a head and then trickle a body that never completes.
    let mut idle = Vec::new();
    for _ in 0..2_000 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut half = Vec::new();
    for _ in 0..1_000 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!(
                "POST /sales/{}/buy HTTP/1.1\r\nhost: x\r\nx-user-id: slow\r\n",
                def.id
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        half.push(s);
    }
    let mut trickle = Vec::new();
    for i in 0..200 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("POST /sales/{}/buy HTTP/1.1\r\nhost: x\r\nx-user-id: t{i}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{", def.id).as_bytes())
            .await
            .unwrap();
        trickle.push(s);
    }

    // A normal buyer is answered promptly all the same.
    let mut took = Vec::new();
    for i in 0..10 {
        let (status, t) = timed_buy(addr, &def.id, &format!("normal{i}")).await;
        assert!(status.starts_with("HTTP/1.1 202"), "{status}");
        took.push(t);
    }
    took.sort();
    println!(
        "slowloris | 3,200 hostile connections open | normal buys p50 {:?}, max {:?}",
        took[5], took[9]
    );
    assert!(
        took[5] < Duration::from_millis(100),
        "p50 {:?} with 3,200 hostile connections open",
        took[5]
    );
    assert!(took[9] < Duration::from_secs(1), "max {:?}", took[9]);

    // The server closes them: silent and half-sent ones at the header deadline, trickling
    // bodies at the request deadline with a 408. None of them bought anything.
    let within = Duration::from_secs(6);
    let closed = futures_closed(idle.into_iter().chain(half).collect(), within).await;
    assert_eq!(
        closed, 3_000,
        "idle and half-sent connections are closed by the server"
    );
    for s in trickle {
        let answer = until_closed(s, within)
            .await
            .expect("trickling body closed");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
    let live = store.live_sale(&def.id).await.unwrap().unwrap();
    assert_eq!(live.remaining, 90, "only the 10 normal buys took stock");

    // Still up, and no accept ever failed.
    let (status, _) = timed_buy(addr, &def.id, "after").await;
    assert!(status.starts_with("HTTP/1.1 202"), "{status}");
    assert_eq!(
        stats
            .accept_errors
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

/// How many of `conns` the server closes within `within`.
async fn futures_closed(conns: Vec<tokio::net::TcpStream>, within: std::time::Duration) -> usize {
    let mut set = tokio::task::JoinSet::new();
    for s in conns {
        set.spawn(until_closed(s, within));
    }
    let mut closed = 0;
    while let Some(r) = set.join_next().await {
        if r.unwrap().is_some() {
            closed += 1;
        }
    }
    closed
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_at_once_and_the_server_recovers() {
    use flashflow_local::server::Limits;
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let (addr, sale, stats) = sold_out_server(Limits {
        header_read: Duration::from_secs(1),
        request: Duration::from_secs(2),
        max_connections: 50,
        ..Limits::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..50 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    wait_until("50 accepted", Duration::from_secs(5), || async {
        stats.accepted.load(Ordering::Relaxed) == 50
    })
    .await;
    let (status, _) = timed_buy(addr, &sale, "over").await;
    assert_eq!(status, "", "closed without an answer while 50 are open");
    assert!(stats.over_capacity.load(Ordering::Relaxed) >= 1);
    // The held connections time out; then buyers are served again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, _) = timed_buy(addr, &sale, "later").await;
    assert!(
        status.starts_with("HTTP/1.1 409"),
        "sold out, answered: {status}"
    );
    drop(held);
}

/// A connection from `ip` (any address of the loopback range) to `addr`.
async fn connect_from(ip: &str, addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(addr).await.unwrap()
}

#[tokio::test]
async fn one_address_holding_its_share_of_connections_does_not_lock_out_the_others() {
    use flashflow_local::server::Limits;
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let (addr, sale, stats) = sold_out_server(Limits {
        header_read: Duration::from_secs(30),
        max_connections: 100,
        max_per_peer: 20,
        ..Limits::default()
    })
    .await;
    // One client (127.0.0.2) opens 60 connections and keeps them: it gets 20.
    let mut held = Vec::new();
    for _ in 0..60 {
        held.push(connect_from("127.0.0.2", addr).await);
    }
    wait_until(
        "the hog's extra connections refused",
        Duration::from_secs(5),
        || async { stats.over_peer_capacity.load(Ordering::Relaxed) == 40 },
    )
    .await;
    assert_eq!(stats.accepted.load(Ordering::Relaxed), 20);
    // Everyone else is still served.
    let (status, _) = timed_buy(addr, &sale, "someone-else").await;
    assert!(
        status.starts_with("HTTP/1.1 409"),
        "sold out, answered: {status}"
    );
    drop(held);
}

#[tokio::test]
async fn a_connection_is_closed_after_its_last_allowed_request() {
    use flashflow_local::server::Limits;
    use std::sync::atomic::Ordering;
    let (addr, sale, stats) = sold_out_server(Limits {
        requests_per_connection: 3,
        ..Limits::default()
    })
    .await;
    // Five keep-alive requests pipelined on one connection: three answers, then the server closes.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let one = format!(
        "POST /sales/{}/buy HTTP/1.1\r\nhost: x\r\nx-user-id: k\r\ncontent-length: 0\r\n\r\n",
        sale
    );
    s.write_all(one.repeat(5).as_bytes()).await.unwrap();
    let answer = until_closed(s, std::time::Duration::from_secs(5))
        .await
        .expect("closed by the server");
    assert_eq!(answer.matches("HTTP/1.1 409").count(), 3, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert_eq!(stats.recycled.load(Ordering::Relaxed), 1);
}

/// A local server within `limits` serving buys of a sold-out sale: every buy answers `409`, so a
/// test can count answers and connections without settling anything.
async fn sold_out_server(
    limits: flashflow_local::server::Limits,
) -> (
    std::net::SocketAddr,
    flashflow::domain::SaleId,
    std::sync::Arc<flashflow_local::server::ServerStats>,
) {
    let (store, sqs) = (store().await, sqs().await);
    let def = loaded_sale(&store, 0, 1).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = std::sync::Arc::new(flashflow_local::server::ServerStats::default());
    tokio::spawn(flashflow_local::server::serve_with(
        listener,
        buy_app(store, sqs, "http://127.0.0.1:9/unused"),
        limits,
        stats.clone(),
    ));
    (addr, def.id, stats)
}
