//! Snow modules built with the SDK's `wasi-http` feature: standard
//! `wasi:http/proxy` components that any WASI 0.2 host serves. Served by
//! `snow` here, they must answer as their native builds do.

use std::time::{Duration, Instant};

use crate::common::{Response, Server};

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
