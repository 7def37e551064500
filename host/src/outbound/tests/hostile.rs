//! Upstreams that lie, flood or break the protocol: each gets a typed
//! error, and none takes more than the limits allow.

use tokio::io::AsyncWriteExt;

use super::support::{
    client, client_with, get, http_server, ok, raw_server, read_request, TestServer,
};
use crate::outbound::{AllowList, ClientConfig, FetchError};

/// A server that reads one request and answers with `reply`, then closes.
async fn replies(reply: Vec<u8>) -> TestServer {
    let reply: &'static [u8] = reply.leak();
    raw_server(move |mut stream| async move {
        let mut buf = Vec::new();
        read_request(&mut stream, &mut buf).await;
        let _ = stream.write_all(reply).await;
    })
    .await
}

async fn fetch_error(reply: Vec<u8>) -> FetchError {
    let server = replies(reply).await;
    client().fetch(get(&server.url("/"))).await.unwrap_err()
}

#[tokio::test]
async fn malformed_status_lines_are_protocol_errors() {
    for line in [
        "HTTP/1.1 2000 OK",
        "HTTP/1.1 20 OK",
        "HTTP/1.1 abc OK",
        "HTTP/1.1200 OK",
        "HTTP/2 200",
        "HTTP/1.1 099 Low",
        "ICY 200 OK",
        "HTTP/1.1 200 OK\0",
    ] {
        let err = fetch_error(format!("{line}\r\nContent-Length: 0\r\n\r\n").into_bytes()).await;
        assert!(matches!(err, FetchError::Protocol(_)), "{line:?}: {err:?}");
    }
}

#[tokio::test]
async fn malformed_fields_are_protocol_errors() {
    for field in [
        "Bad Header: x",
        "X-A: a\rb",
        "X-A: a\0b",
        ": empty name",
        "Content-Length: 3\r\nContent-Length: 4",
        "Content-Length: -1",
        "Content-Length: 99999999999999999999",
        "Transfer-Encoding: chunked\r\nContent-Length: 3",
        "Transfer-Encoding: gzip",
        "Transfer-Encoding: gzip, chunked",
    ] {
        let err = fetch_error(format!("HTTP/1.1 200 OK\r\n{field}\r\n\r\nabc").into_bytes()).await;
        assert!(matches!(err, FetchError::Protocol(_)), "{field:?}: {err:?}");
    }
}

#[tokio::test]
async fn an_oversized_field_is_too_large() {
    let big = "v".repeat(70 * 1024);
    let err = fetch_error(
        format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 0\r\n\r\n").into_bytes(),
    )
    .await;
    assert_eq!(err, FetchError::TooLarge);
}

#[tokio::test]
async fn too_many_fields_are_too_large() {
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    for i in 0..=128 {
        head.push_str(&format!("X-{i}: v\r\n"));
    }
    head.push_str("Content-Length: 0\r\n\r\n");
    assert_eq!(fetch_error(head.into_bytes()).await, FetchError::TooLarge);
}

#[tokio::test]
async fn the_limit_counts_head_and_body() {
    let limit = 1024;
    let client = client_with(ClientConfig {
        max_response_size: limit,
        ..ClientConfig::default()
    });
    // Both sizes tried have three digits, as the head counted here does.
    let head_len = "HTTP/1.1 200 \r\ncontent-length: 985\r\n\r\n".len() as u64;
    let fits = (limit - head_len) as usize;
    for (size, fails) in [(fits, false), (fits + 1, true)] {
        let server = http_server(move |_| ok(&"x".repeat(size))).await;
        let result = client.fetch(get(&server.url("/"))).await;
        assert_eq!(result.is_err(), fails, "{size}: {result:?}");
        if fails {
            assert_eq!(result.unwrap_err(), FetchError::TooLarge);
        }
    }
    // A chunked body says nothing in advance: counted as it arrives.
    let server = http_server(|_| {
        let mut reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            reply.extend_from_slice(b"64\r\n");
            reply.extend_from_slice(&[b'x'; 100]);
            reply.extend_from_slice(b"\r\n");
        }
        reply.extend_from_slice(b"0\r\n\r\n");
        reply
    })
    .await;
    let err = client.fetch(get(&server.url("/"))).await.unwrap_err();
    assert_eq!(err, FetchError::TooLarge);
}

#[tokio::test]
async fn a_body_longer_than_its_length_is_cut_and_the_connection_dropped() {
    let server =
        http_server(|_| b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA".to_vec()).await;
    let client = client();
    for _ in 0..2 {
        let response = client.fetch(get(&server.url("/"))).await.unwrap();
        assert_eq!(response.body, b"ok");
    }
    assert_eq!(server.accepts(), 2);
}

#[tokio::test]
async fn redirects_to_another_host_or_scheme_are_denied() {
    let target = http_server(|_| ok("elsewhere")).await;
    let port = target.addr.port();
    for location in [
        format!("http://localhost:{port}/"),
        format!("https://127.0.0.1:{port}/"),
        format!("http://127.0.0.1:{}/", port.wrapping_add(1).max(1)),
        "http://[::1]/".to_owned(),
    ] {
        let origin = http_server(move |_| {
            format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
                .into_bytes()
        })
        .await;
        // The origin itself is allowed, the place it sends the client is not.
        let allow = AllowList::parse(&[
            format!("http://{}", origin.addr),
            format!("http://127.0.0.1:{port}"),
        ])
        .unwrap();
        let mut req = get(&origin.url("/"));
        req.follow_redirects = true;
        let err = client().fetch_allowed(req, Some(&allow)).await.unwrap_err();
        assert_eq!(err, FetchError::Denied);
    }
    assert_eq!(target.accepts(), 0);
}

#[tokio::test]
async fn unusable_locations_end_the_fetch() {
    for location in [
        "http://[bad",
        "ftp://127.0.0.1/",
        "http://user:pw@127.0.0.1/",
        "\u{1}",
    ] {
        let server = http_server(move |_| {
            format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
                .into_bytes()
        })
        .await;
        let mut req = get(&server.url("/"));
        req.follow_redirects = true;
        let err = client().fetch(req).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Protocol(_) | FetchError::Invalid(_)),
            "{location:?}: {err:?}"
        );
    }
}
