//! The local HTTP server: real sockets, the same handlers.

mod common;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_local_server_serves_the_buy_handler_and_refuses_oversized_bodies() {
    let (store, sqs) = (store().await, sqs().await);
    let def = loaded_sale(&store, 5, 1).await;
    let handler = std::sync::Arc::new(buy_handler(store.clone(), sqs, "http://127.0.0.1:9/unused"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(flashflow::local::serve(listener, move |req| {
        let h = std::sync::Arc::clone(&handler);
        async move { h.handle(req).await }
    }));

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
