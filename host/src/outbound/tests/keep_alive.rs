//! Connection reuse: when it happens, when it must not, and recovery when a
//! pooled connection turns out dead.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::support::{
    client, client_with, get, http_server, ok, raw_server, read_request, request,
};
use crate::outbound::{ClientConfig, FetchError};

#[tokio::test]
async fn sequential_fetches_share_one_connection() {
    let server = http_server(|_| ok("hi")).await;
    let client = client();
    for _ in 0..3 {
        let response = client.fetch(get(&server.url("/"))).await.unwrap();
        assert_eq!(response.body, b"hi");
    }
    assert_eq!(server.accepts(), 1);
    assert_eq!(client.connections_opened(), 1);
}

#[tokio::test]
async fn clones_share_the_pool() {
    let server = http_server(|_| ok("hi")).await;
    let first = client();
    let second = first.clone();
    first.fetch(get(&server.url("/"))).await.unwrap();
    second.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(server.accepts(), 1);
    assert_eq!(first.connections_opened(), 1);
}

#[tokio::test]
async fn connection_close_is_honoured() {
    let server = http_server(|_| {
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec()
    })
    .await;
    let client = client();
    client.fetch(get(&server.url("/"))).await.unwrap();
    client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(server.accepts(), 2);
}

#[tokio::test]
async fn extra_bytes_after_a_response_prevent_reuse() {
    let server = http_server(|_| {
        let mut reply = ok("hi");
        reply.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        reply
    })
    .await;
    let client = client();
    assert_eq!(
        client.fetch(get(&server.url("/"))).await.unwrap().body,
        b"hi"
    );
    assert_eq!(
        client.fetch(get(&server.url("/"))).await.unwrap().body,
        b"hi"
    );
    assert_eq!(server.accepts(), 2);
}

#[tokio::test]
async fn idle_connections_expire() {
    let server = http_server(|_| ok("")).await;
    let client = client_with(ClientConfig {
        idle_timeout: Duration::from_millis(50),
        ..ClientConfig::default()
    });
    client.fetch(get(&server.url("/"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(server.accepts(), 2);
}

#[tokio::test]
async fn zero_idle_connections_disables_reuse() {
    let server = http_server(|_| ok("")).await;
    let client = client_with(ClientConfig {
        max_idle_per_host: 0,
        ..ClientConfig::default()
    });
    client.fetch(get(&server.url("/"))).await.unwrap();
    client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(server.accepts(), 2);
}

#[tokio::test]
async fn the_idle_limit_per_host_holds() {
    let server = http_server(|_| ok("")).await;
    let client = client_with(ClientConfig {
        max_idle_per_host: 2,
        ..ClientConfig::default()
    });
    let fetches: Vec<_> = (0..5)
        .map(|_| {
            let client = client.clone();
            let url = server.url("/");
            tokio::spawn(async move { client.fetch(get(&url)).await })
        })
        .collect();
    for fetch in fetches {
        fetch.await.unwrap().unwrap();
    }
    let opened = client.connections_opened();
    // Two stayed idle, so of three concurrent fetches exactly one connects.
    let (a, b, c) = (client.clone(), client.clone(), client.clone());
    let url = server.url("/");
    let (ra, rb, rc) = tokio::join!(a.fetch(get(&url)), b.fetch(get(&url)), c.fetch(get(&url)));
    for result in [ra, rb, rc] {
        result.unwrap();
    }
    assert_eq!(client.connections_opened(), opened + 1);
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced() {
    let server = raw_server(|mut stream| async move {
        let mut buf = Vec::new();
        read_request(&mut stream, &mut buf).await;
        let _ = stream.write_all(&ok("once")).await;
        // Closes without announcing it, as servers do on their idle timeout.
    })
    .await;
    let client = client();
    client.fetch(get(&server.url("/"))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // POST is never retried once sent, so only the idle check can save it.
    let response = client
        .fetch(request("POST", &server.url("/"), b"x"))
        .await
        .unwrap();
    assert_eq!(response.body, b"once");
    assert_eq!(server.accepts(), 2);
}

/// A server that answers the first request on each connection and drops
/// the connection on reading the second: the race between a pooled
/// connection being picked and the server closing it.
async fn closes_on_second_request() -> super::support::TestServer {
    raw_server(|mut stream| async move {
        let mut buf = Vec::new();
        if read_request(&mut stream, &mut buf).await.is_some() {
            let _ = stream.write_all(&ok("first")).await;
        }
        read_request(&mut stream, &mut buf).await;
    })
    .await
}

#[tokio::test]
async fn idempotent_requests_are_retried_once_on_a_fresh_connection() {
    let server = closes_on_second_request().await;
    let client = client();
    client.fetch(get(&server.url("/"))).await.unwrap();
    let response = client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(response.body, b"first");
    assert_eq!(server.accepts(), 2);
}

#[tokio::test]
async fn non_idempotent_requests_are_not_retried_once_sent() {
    let server = closes_on_second_request().await;
    let client = client();
    client.fetch(get(&server.url("/"))).await.unwrap();
    let err = client
        .fetch(request("POST", &server.url("/"), b"once only"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Protocol(_)), "{err:?}");
    assert_eq!(server.accepts(), 1);
}
