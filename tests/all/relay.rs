//! `outbound.relay`: a request answered with an upstream's response by the
//! host alone, over real sockets: what the client gets (status, fields
//! without the upstream's connection fields, body, HEAD), the deadline and
//! a client leaving while the upstream thinks, a trap of the instance the
//! relay came from, and modules that relay and then break the contract.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{read_response, Server, PATIENCE};
use snow_testing::{Response, Upstream};

/// `/fields` answers 203 with fields a relay must drop or replace,
/// `/slow` after 700 ms, `/stall` after 5 s, `/echo` with the method and
/// body it got; anything else 200 `ok`.
fn upstream() -> Upstream {
    Upstream::start(|req| {
        let text = |status: u16, body: String| Response {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: body.into_bytes(),
        };
        match req.target.as_str() {
            "/fields" => Response {
                status: 203,
                headers: [
                    ("content-type", "text/csv"),
                    ("connection", "x-secret"),
                    ("x-secret", "for the proxy only"),
                    ("keep-alive", "timeout=9"),
                    ("x-relayed", "upstream"),
                    ("set-cookie", "a=1"),
                    ("set-cookie", "b=2"),
                ]
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
                body: b"a,b\n".to_vec(),
            },
            "/slow" => {
                std::thread::sleep(Duration::from_millis(700));
                text(200, "slow".into())
            }
            "/stall" => {
                std::thread::sleep(Duration::from_secs(5));
                text(200, "too late".into())
            }
            "/echo" => text(
                200,
                format!("{} {}", req.method, String::from_utf8_lossy(&req.body)),
            ),
            _ => text(200, "ok".into()),
        }
    })
    .expect("start the upstream")
}

fn testkit(upstream: &Upstream, extra: &[&str]) -> Server {
    let rule = upstream.allow_rule();
    let mut args = vec!["--workers", "1", "--allow-outbound", &rule];
    args.extend_from_slice(extra);
    Server::testkit(&args)
}

fn stats(server: &Server) -> serde_json::Value {
    let resp = server.get("/stats/");
    assert_eq!(resp.status, 200, "{}", resp.text());
    serde_json::from_slice(&resp.body).expect("stats json")
}

#[test]
fn a_relay_answers_with_the_upstreams_status_fields_and_body() {
    let upstream = upstream();
    let server = testkit(&upstream, &[]);
    let resp = server.get(&format!("/relay/?url={}", upstream.url("/fields")));
    assert_eq!((resp.status, resp.text().as_str()), (203, "a,b\n"));
    assert_eq!(resp.header("content-type"), Some("text/csv"));
    // The module's field replaces the upstream's of that name.
    let relayed: Vec<_> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-relayed"))
        .collect();
    assert_eq!(relayed.len(), 1, "{:?}", resp.headers);
    assert_eq!(resp.header("x-relayed"), Some("testkit"));
    let cookies = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .count();
    assert_eq!(cookies, 2, "{:?}", resp.headers);
    // What described the upstream's connection stays there.
    assert_eq!(resp.header("x-secret"), None);
    assert_eq!(resp.header("keep-alive"), None);
    // The method and body go along.
    let echoed = server.request(
        "POST",
        &format!("/relay/?url={}", upstream.url("/echo")),
        b"payload",
    );
    assert_eq!(echoed.text(), "POST payload");
    let sent = upstream.requests();
    assert_eq!(sent.last().map(|r| r.method.as_str()), Some("POST"));
    // Relayed from a `resume` as well as from `handle`.
    let later = server.get(&format!(
        "/relay/after-wait/?url={}",
        upstream.url("/fields")
    ));
    assert_eq!((later.status, later.text().as_str()), (203, "a,b\n"));
    // The module kept nothing of either.
    assert_eq!(stats(&server)["live_tasks"], 0);
}

#[test]
fn a_relayed_head_announces_the_length_and_sends_no_body() {
    let upstream = upstream();
    let server = testkit(&upstream, &[]);
    let path = format!("/relay/?url={}", upstream.url("/fields"));
    let mut stream = server.connect();
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let pipelined =
        format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\nGET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
    stream.write_all(pipelined.as_bytes()).expect("write");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let head = read_response(&mut reader, true).expect("the HEAD's answer");
    assert_eq!(head.status, 203);
    assert_eq!(head.header("content-length"), Some("4"));
    assert!(head.body.is_empty());
    // Had the HEAD carried a body, this would read it as the next answer.
    let get = read_response(&mut reader, false).expect("the GET's answer");
    assert_eq!((get.status, get.text().as_str()), (203, "a,b\n"));
    assert_eq!(upstream.requests()[0].method, "HEAD");
}

#[test]
fn a_failed_relay_answers_502_or_504_with_the_reason() {
    let upstream = upstream();
    let server = testkit(&upstream, &["--request-timeout", "300ms"]);
    // Not on the allow-list: nothing is sent.
    let denied = server.get("/relay/?url=http://127.0.0.1:9/");
    assert_eq!(denied.status, 502);
    assert!(denied.text().contains("allow-list"), "{}", denied.text());
    server.wait_log("outbound request denied");
    // The request's deadline covers the wait for the upstream's head.
    let started = Instant::now();
    let slow = server.get(&format!("/relay/?url={}", upstream.url("/stall")));
    assert_eq!(slow.status, 504, "{}", slow.text());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "not the upstream's 5 s"
    );
    assert_eq!(
        stats(&server)["cancelled"],
        0,
        "a relayed request is not cancelled"
    );
    assert_eq!(server.get("/relay/?url=").status, 502);
}

/// The relay runs in the client's connection: a client that leaves takes
/// the upstream exchange down with it, and the module is never told.
#[test]
fn a_client_leaving_mid_relay_abandons_the_upstream_exchange() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hang = listener.local_addr().expect("addr");
    let (asked, was_asked) = mpsc::channel();
    let upstream = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("the request line");
        common::read_header_lines(&mut reader).expect("the relayed request's fields");
        asked.send(()).expect("signal");
        // Never answered: the next read sees snow close the exchange.
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).map(|_| rest.len())
    });
    let rule = format!("http://{hang}");
    let server = Server::testkit(&["--workers", "1", "--allow-outbound", &rule]);
    server.wait_metric("snow_open_connections", 0.0);
    let mut client = server.connect();
    let req = format!("GET /relay/?url=http://{hang}/ HTTP/1.1\r\nHost: t\r\n\r\n");
    client.write_all(req.as_bytes()).expect("write");
    was_asked
        .recv_timeout(PATIENCE)
        .expect("the upstream was asked");
    server.wait_metric("snow_open_connections", 1.0);
    drop(client);
    server.wait_metric("snow_open_connections", 0.0);
    let left = upstream.join().expect("upstream thread");
    assert!(
        matches!(left, Ok(0)),
        "the upstream saw {left:?}, not its exchange closed"
    );
    let stats = stats(&server);
    assert_eq!(stats["live_tasks"], 0, "{stats}");
    assert_eq!(
        stats["cancelled"], 0,
        "a relayed request is not the module's: {stats}"
    );
}

/// A trap takes down the requests parked in the instance, but a relayed
/// one no longer needs it.
#[test]
fn a_relay_outlives_a_trap_of_its_instance() {
    let upstream = upstream();
    let server = testkit(&upstream, &[]);
    let addr = server.addr;
    let slow = upstream.url("/slow");
    let relayed = std::thread::spawn(move || {
        common::request_at(addr, "GET", &format!("/relay/?url={slow}"), b"")
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(server.get("/panic/").status, 500);
    let resp = relayed.join().expect("relay thread");
    assert_eq!((resp.status, resp.text().as_str()), (200, "slow"));
    server.wait_log("parked_lost=0");
}

#[test]
fn a_module_that_relays_and_answers_otherwise_gets_500() {
    let upstream = upstream();
    let server = testkit(&upstream, &[]);
    let url = upstream.url("/ok");
    for route in ["twice", "and-answer", "and-wait", "bad-headers"] {
        let resp = server.get(&format!("/relay/{route}/?url={url}"));
        assert_eq!(resp.status, 500, "{route}: {}", resp.text());
    }
    assert!(upstream.requests().is_empty(), "no relay went out");
    server.wait_log("relayed more than once");
    server.wait_log("relayed, and then answered as well");
    // Refused in the module, before it reaches the host.
    server.wait_log("invalid relayed response");
    // A relay after a streamed head cuts the stream off.
    let raw = server
        .raw(format!("GET /relay/mid-stream/?url={url} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("the head is out"), "{text}");
    assert!(!text.ends_with("0\r\n\r\n"), "{text}");
    server.wait_log("relayed after a streamed head");
    // The module was told to drop whatever task it still held.
    assert_eq!(stats(&server)["live_tasks"], 0);
    let fine = server.get(&format!("/relay/?url={url}"));
    assert_eq!((fine.status, fine.text().as_str()), (200, "ok"));
}

/// With an instance per request, the relayed request's instance goes when
/// the call that relayed returns, and the exchange goes on without it.
#[test]
fn a_relay_needs_no_instance_of_its_own() {
    let upstream = upstream();
    let server = testkit(&upstream, &["--isolation", "request"]);
    for _ in 0..3 {
        let resp = server.get(&format!("/relay/?url={}", upstream.url("/fields")));
        assert_eq!((resp.status, resp.text().as_str()), (203, "a,b\n"));
    }
    // A port nobody listens on: the client is told why.
    let closed = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let rule = format!("http://{closed}");
    let server = Server::testkit(&["--workers", "1", "--allow-outbound", &rule]);
    let refused = server.get(&format!("/relay/?url=http://{closed}/"));
    assert_eq!(refused.status, 502);
    assert!(
        refused.text().contains("connection failed"),
        "{}",
        refused.text()
    );
}
