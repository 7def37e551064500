//! Snow modules built with the SDK's `wasi-http` feature: standard
//! `wasi:http/proxy` components that any WASI 0.2 host serves. Served by
//! `snow` here, they must answer as their native builds do.

use std::time::{Duration, Instant};

use crate::common::{Response, Server};
use crate::standard_streams::{next_chunk, open, Chunk};

fn essentials(resp: &Response) -> (u16, Vec<u8>, Option<String>, Option<String>) {
    (
        resp.status,
        resp.body.clone(),
        resp.header("content-type").map(str::to_owned),
        resp.header("allow").map(str::to_owned),
    )
}

/// Method, path, extra headers, body.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a [u8])], &'a [u8]);

#[test]
fn the_default_app_answers_as_its_native_build() {
    let native = Server::start(&["--workers", "1"]);
    let standard =
        Server::start_module(Some(snow_test_guests::HELLO_WASI_HTTP), &["--workers", "1"]);
    let modules = standard.admin_request("GET", "/modules", b"");
    assert!(
        modules.text().contains("wasi:http/proxy"),
        "{}",
        modules.text()
    );
    let body: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
    let cases: [Case; 9] = [
        ("GET", "/home/", &[], b""),
        ("GET", "/async/?ms=200", &[], b""),
        ("GET", "/async/?ms=soon", &[], b""),
        ("POST", "/echo/", &[("content-type", b"text/x-test")], &body),
        ("POST", "/echo/", &[], b"no type"),
        ("PUT", "/echo/", &[], b""),
        ("GET", "/nowhere/", &[], b""),
        // Streamed: the first writes come in the call that answers the head.
        ("GET", "/bytes/200000", &[], b""),
        ("GET", "/events/?ms=10&count=3", &[], b""),
    ];
    for (method, path, headers, body) in cases {
        let started = Instant::now();
        let want = native.request_with(method, path, headers, body);
        let native_took = started.elapsed();
        let started = Instant::now();
        let got = standard.request_with(method, path, headers, body);
        let took = started.elapsed();
        assert_eq!(essentials(&got), essentials(&want), "{method} {path}");
        if path.starts_with("/async/?ms=200") {
            assert!(native_took >= Duration::from_millis(200), "{native_took:?}");
            assert!(
                took >= Duration::from_millis(200),
                "the timer was not waited: {took:?}"
            );
        }
    }
}

/// Fetches run through `wasi:http/outgoing-handler` and wait together on
/// `wasi:io/poll`: two 400 ms upstream answers take about 400 ms, not 800.
#[test]
fn fanout_fetches_concurrently_through_the_standard_interfaces() {
    let upstream = Server::start(&["--workers", "1"]);
    let base = format!("http://{}", upstream.addr);
    let fanout = Server::start_module(
        Some(snow_test_guests::FANOUT_WASI_HTTP),
        &["--workers", "1", "--allow-outbound", &base],
    );
    let slow = format!("{base}/async/?ms=400");
    let started = Instant::now();
    let report = fanout.get(&format!("/fanout/?url={slow}&url={slow}"));
    let took = started.elapsed();
    assert_eq!(report.status, 200, "{}", report.text());
    let json: serde_json::Value = serde_json::from_slice(&report.body).expect("a JSON report");
    let results = json["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{json}");
    for result in results {
        assert_eq!(result["status"], 200, "{json}");
        assert_eq!(result["bytes"], 4, "\"done\": {json}");
    }
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(
        took < Duration::from_millis(790),
        "the fetches ran one after the other: {took:?}"
    );

    let proxied = fanout.get(&format!("/proxy/?url={base}/home/"));
    assert_eq!((proxied.status, proxied.text().as_str()), (200, "home"));

    let denied = fanout.get("/fanout/?url=http://127.0.0.1:9/");
    let json: serde_json::Value = serde_json::from_slice(&denied.body).expect("a JSON report");
    assert_eq!(json["results"][0]["error"], "denied", "{json}");
}

/// `/proxy/` built for `wasi:http` pipes the upstream's body through its
/// streams: 32 MiB pass through a component held to 16 MiB of memory, and
/// events arrive as the upstream sends them.
#[test]
fn fanout_streams_what_it_proxies_through_the_standard_interfaces() {
    let upstream = Server::start(&["--workers", "1"]);
    let base = format!("http://{}", upstream.addr);
    let fanout = Server::start_module(
        Some(snow_test_guests::FANOUT_WASI_HTTP),
        &[
            "--workers",
            "1",
            "--allow-outbound",
            &base,
            "--max-memory",
            "16MiB",
        ],
    );
    let total = 32usize << 20;
    let big = fanout.get(&format!("/proxy/?url={base}/bytes/{total}"));
    assert_eq!(
        (big.status, big.body.len()),
        (200, total),
        "{:?}",
        big.headers
    );
    assert!(
        big.body
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 251) as u8),
        "the bytes differ from the upstream's"
    );

    // Events arrive as the upstream sends them, not all at the end.
    let started = Instant::now();
    let path = format!("/proxy/?url={base}/events/%3Fms%3D400%26count%3D3");
    let (_stream, mut reader, head) = open(&fanout, &path);
    assert!(
        head.iter()
            .any(|(n, v)| n == "content-type" && v == "text/event-stream"),
        "{head:?}"
    );
    let (mut text, mut first_at) = (String::new(), None);
    while let Chunk::Data(chunk) = next_chunk(&mut reader) {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if first_at.is_none() && text.contains("data: tick 1\n") {
            first_at = Some(started.elapsed());
        }
    }
    let first_at = first_at.unwrap_or_else(|| panic!("no first event in {text:?}"));
    assert!(text.contains("data: tick 3\n"), "{text:?}");
    assert!(
        started.elapsed() - first_at >= Duration::from_millis(600),
        "the first event came at {first_at:?}, the end at {:?}",
        started.elapsed()
    );
}
