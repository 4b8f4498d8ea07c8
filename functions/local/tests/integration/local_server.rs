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
        flashflow::api::buy::routes(flashflow::api::buy::BuyState {
            store: store.clone(),
            publisher: flashflow::adapters::sqs::SqsPublisher::new(
                sqs,
                "http://127.0.0.1:9/q",
                signer(),
            ),
            settings: Default::default(),
        }),
        flashflow::api::orders::routes(flashflow::api::orders::OrdersState {
            status: fresh_status_store().await,
            store: store.clone(),
            trust_user_header: false,
            operator_token: None,
        }),
        flashflow::api::operator::routes(flashflow::api::operator::OperatorState {
            db: fresh_db().await,
            store,
            status: fresh_status_store().await,
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
