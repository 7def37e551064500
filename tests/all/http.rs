//! HTTP/1.1 behaviour of `snow serve`, over real sockets, with the default app.

use crate::common;

use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use common::{parse_all, read_response, Server};

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    for _ in 0..3 {
        stream
            .write_all(b"GET /home/ HTTP/1.1\r\nHost: t\r\n\r\n")
            .expect("write");
        let resp = read_response(&mut reader, false).expect("response");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), "home");
        assert!(resp.header("date").is_some(), "every response has a Date");
        assert_eq!(resp.header("connection"), None);
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&[]);
    // The first request parks on a timer; the ones behind it must wait.
    let raw = server.raw(
        b"GET /async/?ms=200 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /home/ HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /echo/ HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
          GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let all = parse_all(&raw);
    let got: Vec<(u16, String)> = all.iter().map(|r| (r.status, r.text())).collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0], (200, "done".into()));
    assert_eq!(got[1], (200, "home".into()));
    assert_eq!(got[2], (200, "hello".into()));
    assert_eq!(got[3].0, 404);
    assert_eq!(all[3].header("connection"), Some("close"));
}

#[test]
fn chunked_body_with_extensions_and_trailers_is_echoed() {
    let server = Server::start(&[]);
    let raw = server.raw(
        b"POST /echo/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5;name=value\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\nx-trailer: yes\r\n\r\n",
    );
    let all = parse_all(&raw);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, 200);
    assert_eq!(all[0].text(), "hello world!");
}

#[test]
fn echo_is_byte_exact() {
    let server = Server::start(&[]);
    let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let resp = server.request("POST", "/echo/", &body);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, body);
}

#[test]
fn expect_continue_gets_100_before_the_body() {
    let server = Server::start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"POST /echo/ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .expect("write head");
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).expect("100 continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"abc").expect("write body");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("read");
    let all = parse_all(&rest);
    assert_eq!(all[0].status, 200);
    assert_eq!(all[0].text(), "abc");
}

#[test]
fn head_has_length_but_no_body() {
    let server = Server::start(&[]);
    let raw = server.raw(b"HEAD /home/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("content-length: 4\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n\r\n"),
        "no body after the head: {text:?}"
    );
}

#[test]
fn http10_closes_unless_keep_alive() {
    let server = Server::start(&[]);
    let raw = server.raw(b"GET /home/ HTTP/1.0\r\n\r\n");
    let all = parse_all(&raw);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].text(), "home");

    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    for _ in 0..2 {
        stream
            .write_all(b"GET /home/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .expect("write");
        let resp = read_response(&mut reader, false).expect("response");
        assert_eq!(resp.text(), "home");
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
}

/// Each malformed request gets its status and a closed connection, and the
/// server goes on serving.
#[test]
fn bad_requests_get_their_status_and_the_server_keeps_serving() {
    let server = Server::start(&["--max-body", "1KiB"]);
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(10_000));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nx-big: {}\r\n\r\n",
        "b".repeat(70_000)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
        (0..200)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage", b"\x16\x03\x01 hello there\r\n\r\n".to_vec(), 400),
        ("no host", b"GET /home/ HTTP/1.1\r\n\r\n".to_vec(), 400),
        (
            "length and chunked",
            b"POST /echo/ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two lengths",
            b"POST /echo/ HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            400,
        ),
        (
            "bad chunk size",
            b"POST /echo/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        ("long uri", long_uri.into_bytes(), 414),
        ("big header", big_header.into_bytes(), 431),
        ("many headers", many_headers.into_bytes(), 431),
        (
            "body too large",
            b"POST /echo/ HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n".to_vec(),
            413,
        ),
        (
            "gzip coding",
            b"POST /echo/ HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(),
            501,
        ),
        ("http/2.0", b"GET /home/ HTTP/2.0\r\nHost: t\r\n\r\n".to_vec(), 505),
    ];
    for (name, bytes, status) in cases {
        let raw = server.raw(&bytes);
        let all = parse_all(&raw);
        assert_eq!(all.len(), 1, "{name}: {:?}", String::from_utf8_lossy(&raw));
        assert_eq!(all[0].status, status, "{name}");
        assert_eq!(all[0].header("connection"), Some("close"), "{name}");
        let after = server.get("/home/");
        assert_eq!(
            (after.status, after.text()),
            (200, "home".into()),
            "after {name}"
        );
    }
}

#[test]
fn a_stalled_request_gets_408_and_is_closed() {
    let server = Server::start(&["--header-timeout", "300ms"]);
    let started = Instant::now();
    let raw = server.raw(b"GET /home/ HTTP/1.1\r\nHost: t\r\n");
    let all = parse_all(&raw);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, 408);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(server.get("/home/").status, 200);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let server = Server::start(&["--idle-timeout", "300ms"]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /home/ HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("write");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    assert_eq!(
        read_response(&mut reader, false).expect("response").status,
        200
    );
    let started = Instant::now();
    let mut rest = Vec::new();
    let n = reader.read_to_end(&mut rest).expect("closed cleanly");
    assert_eq!(n, 0, "nothing more is sent before the close");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// RFC 9112 §3.2.2: an absolute-form target's authority wins over the Host
/// header, and the module sees it as the request's host.
#[test]
fn an_absolute_form_target_names_the_host_the_module_sees() {
    let server = Server::testkit(&[]);
    let raw = server.raw(
        b"GET http://a.example/echo-headers/?x=1 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
    );
    let responses = parse_all(&raw);
    let [resp] = responses.as_slice() else {
        panic!("one response: {}", String::from_utf8_lossy(&raw));
    };
    assert_eq!(resp.status, 200, "{}", resp.text());
    let seen: serde_json::Value = serde_json::from_slice(&resp.body).expect("json");
    assert_eq!(seen["headers"]["host"], "a.example", "{seen}");
    assert_eq!(seen["path"], "/echo-headers/", "{seen}");
    assert_eq!(seen["query"], "x=1", "{seen}");
}
