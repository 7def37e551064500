//! The plain-`http` path's own promises: a body streamed to its end gives
//! its connection back, one cut short or broken does not, an idle
//! connection that spoke out of turn is never reused, and idle connections
//! are closed after the idle timeout even when no fetch comes again.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::{client, client_with, get, http_server, ok, raw_server, read_request};
use crate::outbound::{AllowList, ClientConfig, FetchError, Fetched, UpstreamBody};

/// The head first whatever the body's size, as a streaming module asks.
async fn head_first(client: &crate::outbound::Client, url: &str) -> (u16, UpstreamBody) {
    match client
        .fetch_head_allowed(get(url), None, 0, None)
        .await
        .unwrap()
    {
        Fetched::Head(head, body) => (head.status, body),
        Fetched::Whole(whole) => panic!("came whole: {whole:?}"),
    }
}

fn chunked(body: &str) -> Vec<u8> {
    let mut reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.as_bytes().chunks(3) {
        reply.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        reply.extend_from_slice(piece);
        reply.extend_from_slice(b"\r\n");
    }
    reply.extend_from_slice(b"0\r\nx-trailer: t\r\n\r\n");
    reply
}

#[tokio::test]
async fn a_streamed_body_read_to_its_end_gives_the_connection_back() {
    let server = http_server(|seen| match seen.path.as_str() {
        "/chunked" => chunked("a body in pieces"),
        _ => ok("a body with a length"),
    })
    .await;
    let client = client();
    for path in ["/chunked", "/length", "/chunked"] {
        let (status, body) = head_first(&client, &server.url(path)).await;
        assert_eq!(status, 200);
        let expected: &[u8] = match path {
            "/chunked" => b"a body in pieces",
            _ => b"a body with a length",
        };
        assert_eq!(body.read_whole().await.unwrap(), expected, "{path}");
    }
    assert_eq!(server.accepts(), 1);
}

#[tokio::test]
async fn a_streamed_body_dropped_early_takes_its_connection_with_it() {
    let server = http_server(|_| ok(&"x".repeat(100_000))).await;
    let client = client();
    let (_, body) = head_first(&client, &server.url("/")).await;
    drop(body);
    let response = client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(response.body.len(), 100_000);
    assert_eq!(server.accepts(), 2);
}

#[tokio::test]
async fn a_broken_chunked_body_is_an_error_and_its_connection_is_dropped() {
    let server = http_server(|seen| match seen.path.as_str() {
        "/bad" => {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec()
        }
        _ => ok("fine"),
    })
    .await;
    let client = client();
    let (_, body) = head_first(&client, &server.url("/bad")).await;
    let err = body.read_whole().await.unwrap_err();
    assert!(matches!(err, FetchError::Protocol(_)), "{err:?}");
    let err = client.fetch(get(&server.url("/bad"))).await.unwrap_err();
    assert!(matches!(err, FetchError::Protocol(_)), "{err:?}");
    assert_eq!(
        client.fetch(get(&server.url("/"))).await.unwrap().body,
        b"fine"
    );
    assert_eq!(server.accepts(), 3);
}

#[tokio::test]
async fn an_idle_connection_that_spoke_out_of_turn_is_not_reused() {
    let server = raw_server(|mut stream| async move {
        let mut buf = Vec::new();
        if read_request(&mut stream, &mut buf).await.is_some() {
            let _ = stream.write_all(&ok("first")).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            // A response to a request never sent: were the connection
            // reused, it would pass for the next request's answer.
            let _ = stream.write_all(&ok("forged")).await;
        }
        while read_request(&mut stream, &mut buf).await.is_some() {
            let _ = stream.write_all(&ok("again")).await;
        }
    })
    .await;
    let client = client();
    assert_eq!(
        client.fetch(get(&server.url("/"))).await.unwrap().body,
        b"first"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        client.fetch(get(&server.url("/"))).await.unwrap().body,
        b"first"
    );
    assert_eq!(server.accepts(), 2);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_timeout_without_another_fetch() {
    let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = raw_server(move |mut stream| {
        let closed = closed_tx.clone();
        async move {
            let mut buf = Vec::new();
            read_request(&mut stream, &mut buf).await;
            let _ = stream.write_all(&ok("once")).await;
            let mut rest = [0; 16];
            let _ = closed.send(stream.read(&mut rest).await.ok());
        }
    })
    .await;
    let client = client_with(ClientConfig {
        idle_timeout: Duration::from_millis(100),
        ..ClientConfig::default()
    });
    client.fetch(get(&server.url("/"))).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), closed_rx.recv())
        .await
        .expect("the idle connection was closed");
    assert_eq!(closed, Some(Some(0)), "closed without another byte");
}

#[tokio::test]
async fn pools_are_kept_apart_by_allow_list() {
    let server = http_server(|_| ok("hi")).await;
    let client = client();
    let origin = format!("http://{}", server.addr);
    let one = AllowList::parse(std::slice::from_ref(&origin)).unwrap();
    let two = AllowList::parse(&[origin.clone(), "http://example.com".into()]).unwrap();
    for allow in [&one, &two, &one, &two] {
        let response = client
            .fetch_allowed(get(&server.url("/")), Some(allow))
            .await;
        assert_eq!(response.unwrap().body, b"hi");
    }
    assert_eq!(server.accepts(), 2, "one connection per allow-list");
}

#[tokio::test]
async fn endless_interim_responses_end_the_fetch() {
    let server = http_server(|_| {
        let mut reply = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n".repeat(1000);
        reply.extend_from_slice(&ok("late"));
        reply
    })
    .await;
    let err = client().fetch(get(&server.url("/"))).await.unwrap_err();
    assert!(matches!(err, FetchError::Protocol(_)), "{err:?}");
}
