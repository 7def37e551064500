//! The proxy against a scripted upstream, over real sockets: what it
//! relays, and the answer it gives to what it does not serve.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that answers every request head it reads with `answer`,
/// then hangs up when `close_after` is set.
async fn upstream(answer: &'static [u8], close_after: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0; 1024];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if conn.write_all(answer).await.is_err() || close_after {
                            return;
                        }
                    }
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// The proxy in front of `upstream`; its address.
async fn proxy(upstream: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address").to_string();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let _ = super::serve(conn, &upstream).await;
            });
        }
    });
    addr
}

/// Sends `bytes` and reads until the proxy closes or goes quiet.
async fn exchange(proxy: &str, bytes: &[u8]) -> String {
    let mut conn = TcpStream::connect(proxy).await.expect("connect");
    conn.write_all(bytes).await.expect("send");
    let mut got = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(500), conn.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => return String::from_utf8_lossy(&got).into_owned(),
        }
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nhome";

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_upstream_connection() {
    let proxy = proxy(upstream(OK, false).await).await;
    let two = b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nhost: x\r\n\r\n";
    let got = exchange(&proxy, two).await;
    assert_eq!(got, format!("{0}{0}", String::from_utf8_lossy(OK)));
}

#[tokio::test]
async fn hostile_requests_are_refused_with_a_status() {
    let proxy = proxy(upstream(OK, false).await).await;
    let cases: [(&[u8], &str); 5] = [
        (b"GARBAGE\r\n\r\n", "400 "),
        (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", "400 "),
        (b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc", "501 "),
        (
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
            "501 ",
        ),
        // A method that never ends fills the head buffer.
        (&[b'a'; 20_000], "431 "),
    ];
    for (request, status) in cases {
        let got = exchange(&proxy, request).await;
        assert!(
            got.starts_with(&format!("HTTP/1.1 {status}")),
            "{request:?}: {got:?}"
        );
        assert!(got.contains("connection: close"), "{got:?}");
    }
    let mut long = b"GET / HTTP/1.1\r\nx: ".to_vec();
    long.resize(super::HEAD_LIMIT + 100, b'a');
    let got = exchange(&proxy, &long).await;
    assert!(got.starts_with("HTTP/1.1 431 "), "{got:?}");
}

#[tokio::test]
async fn upstream_answers_it_cannot_frame_are_502() {
    let answers: [&'static [u8]; 3] = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: lots\r\n\r\n",
        b"NOT HTTP\r\n\r\n",
    ];
    for answer in answers {
        let proxy = proxy(upstream(answer, false).await).await;
        let got = exchange(&proxy, b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 502 "), "{answer:?}: {got:?}");
    }
    // Closed before any answer, and nothing listening at all.
    let proxy_to_closing = proxy(upstream(b"", true).await).await;
    let got = exchange(&proxy_to_closing, b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(got.starts_with("HTTP/1.1 502 "), "{got:?}");
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = gone.local_addr().expect("address").to_string();
    drop(gone);
    let got = exchange(&proxy(addr).await, b"GET / HTTP/1.1\r\n\r\n").await;
    assert!(got.starts_with("HTTP/1.1 502 "), "{got:?}");
}

#[tokio::test]
async fn a_body_cut_short_closes_the_client_connection() {
    let cut: &'static [u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this";
    let proxy = proxy(upstream(cut, true).await).await;
    let got = exchange(&proxy, b"GET / HTTP/1.1\r\n\r\n").await;
    // The head and what came of the body went out; then the close tells
    // the client the body is short.
    assert_eq!(got, String::from_utf8_lossy(cut));
}
