//! Every way a fetch fails, and that each maps to the right error kind.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::support::{client, client_with, get, raw_server, read_request, TestServer};
use crate::outbound::{ClientConfig, FetchError};

/// A server that reads one request and answers with `reply`, then closes.
async fn replies_then_closes(reply: &'static [u8]) -> TestServer {
    raw_server(move |mut stream| async move {
        let mut buf = Vec::new();
        read_request(&mut stream, &mut buf).await;
        let _ = stream.write_all(reply).await;
    })
    .await
}

async fn fetch_error(url: &str) -> FetchError {
    client().fetch(get(url)).await.unwrap_err()
}

#[tokio::test]
async fn a_stalled_upstream_times_out() {
    let server = raw_server(|mut stream| async move {
        let mut buf = Vec::new();
        read_request(&mut stream, &mut buf).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let mut req = get(&server.url("/"));
    req.timeout = Some(Duration::from_millis(200));
    let start = Instant::now();
    let err = client().fetch(req).await.unwrap_err();
    assert_eq!(err, FetchError::Timeout);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn the_configured_timeout_applies_without_one_in_the_request() {
    let server = raw_server(|stream| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(stream);
    })
    .await;
    let client = client_with(ClientConfig {
        response_timeout: Duration::from_millis(200),
        ..ClientConfig::default()
    });
    let mut req = get(&server.url("/"));
    req.timeout = None;
    let start = Instant::now();
    assert_eq!(client.fetch(req).await.unwrap_err(), FetchError::Timeout);
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_close_mid_body_is_a_protocol_error() {
    let server = replies_then_closes(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello").await;
    assert!(matches!(
        fetch_error(&server.url("/")).await,
        FetchError::Protocol(_)
    ));

    let server =
        replies_then_closes(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel").await;
    assert!(matches!(
        fetch_error(&server.url("/")).await,
        FetchError::Protocol(_)
    ));
}

#[tokio::test]
async fn a_close_before_or_mid_head_is_a_protocol_error() {
    let server = replies_then_closes(b"").await;
    assert!(matches!(
        fetch_error(&server.url("/")).await,
        FetchError::Protocol(_)
    ));
    let server = replies_then_closes(b"HTTP/1.1 200 OK\r\nContent-").await;
    assert!(matches!(
        fetch_error(&server.url("/")).await,
        FetchError::Protocol(_)
    ));
}

#[tokio::test]
async fn garbage_is_a_protocol_error() {
    for reply in [
        &b"this is not HTTP at all\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    ] {
        let server = replies_then_closes(reply).await;
        let err = fetch_error(&server.url("/")).await;
        assert!(matches!(err, FetchError::Protocol(_)), "{err:?}");
    }
}

fn small_limit() -> ClientConfig {
    ClientConfig {
        max_response_size: 1024,
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn a_declared_length_over_the_limit_fails_before_the_body() {
    // The body never comes: only the declared length can trigger the error.
    let server = raw_server(|mut stream| async move {
        let mut buf = Vec::new();
        read_request(&mut stream, &mut buf).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_secs(60)).await;
    })
    .await;
    let err = client_with(small_limit())
        .fetch(get(&server.url("/")))
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::TooLarge);
}

#[tokio::test]
async fn an_endless_body_stops_at_the_limit() {
    for head in [
        &b"HTTP/1.1 200 OK\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let server = raw_server(move |mut stream| async move {
            let mut buf = Vec::new();
            read_request(&mut stream, &mut buf).await;
            let _ = stream.write_all(head).await;
            let chunk = if head.len() > 20 {
                &b"4\r\nxxxx\r\n"[..]
            } else {
                b"xxxx"
            };
            while stream.write_all(chunk).await.is_ok() {}
        })
        .await;
        let err = client_with(small_limit())
            .fetch(get(&server.url("/")))
            .await
            .unwrap_err();
        assert_eq!(err, FetchError::TooLarge);
    }
}

#[tokio::test]
async fn an_endless_head_stops_at_the_limit() {
    let server = raw_server(|mut stream| async move {
        let mut buf = Vec::new();
        read_request(&mut stream, &mut buf).await;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n").await;
        while stream.write_all(b"X-Filler: 0123456789\r\n").await.is_ok() {}
    })
    .await;
    let err = client().fetch(get(&server.url("/"))).await.unwrap_err();
    assert_eq!(err, FetchError::TooLarge);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = fetch_error(&format!("http://{addr}/")).await;
    assert!(matches!(err, FetchError::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn an_unknown_host_is_a_dns_error() {
    let err = fetch_error("http://no-such-host.invalid/").await;
    assert!(matches!(err, FetchError::Dns(_)), "{err:?}");
}

#[tokio::test]
async fn unusable_requests_are_invalid_before_connecting() {
    let client = client();
    for url in ["not a url", "ftp://127.0.0.1/", "http://user:pw@127.0.0.1/"] {
        let err = client.fetch(get(url)).await.unwrap_err();
        assert!(matches!(err, FetchError::Invalid(_)), "{url}: {err:?}");
    }
    let mut req = get("http://127.0.0.1:9/");
    req.headers
        .push(("X-Evil".into(), b"a\r\nX-Injected: b".to_vec()));
    assert!(matches!(
        client.fetch(req).await,
        Err(FetchError::Invalid(_))
    ));
    let mut req = get("http://127.0.0.1:9/");
    req.method = "GET /x HTTP/1.1\r\n".into();
    assert!(matches!(
        client.fetch(req).await,
        Err(FetchError::Invalid(_))
    ));
    assert_eq!(client.connections_opened(), 0);
}
