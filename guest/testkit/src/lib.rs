//! A module for the host's integration tests: every route provokes one
//! behaviour the host must survive or report (traps, runaway loops and
//! memory, parked and cancelled requests, bad responses, output, reuse,
//! streams cut off at either end).

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::map::Entry;
use serde_json::{json, Map, Value};
use snow_guest::{join, kv, race, sleep, stats, Either, Error, FetchRequest, Request, Response};

snow_guest::app!([
    (r"^/panic/$", panic),
    (r"^/unreachable/$", unreachable),
    (r"^/sleep/$", sleep_ms),
    (r"^/join/$", join_sleeps),
    (r"^/race/$", race_sleeps),
    (r"^/forever/$", forever),
    (r"^/loop/$", spin),
    (r"^/alloc/$", alloc),
    (r"^/alloc-small/$", alloc_small),
    (r"^/recurse/$", recurse),
    (r"^/deep/$", deep),
    (r"^/stats/$", report_stats),
    (r"^/print/$", print),
    (r"^/status/(\d+)/$", status),
    (r"^/bad-header/$", bad_header),
    (r"^/echo-headers/$", echo_headers),
    (r"^/captures/(\d+)/(?P<name>[a-z]+)/$", captures),
    (r"^/counter/$", counter),
    (r"^/echo/$", echo, ["POST", "PUT"]),
    (r"^/kv/incr/$", kv_incr),
    (r"^/kv/many/$", kv_many),
    (r"^/kv/open/$", kv_open),
    (r"^/kv/put/$", kv_put, "PUT"),
    (
        r"^/stream/upload/$",
        snow_guest::streaming(count_upload),
        ["POST", "PUT"]
    ),
    (r"^/stream/bytes/$", stream_bytes),
    (r"^/stream/lying/$", stream_lying),
    (r"^/stream/trap/$", stream_trap),
    (r"^/stream/gives-up/$", stream_gives_up),
    (r"^/stream/flood/$", stream_flood),
    (r"^/relay/$", relay, ["GET", "HEAD", "POST"]),
    (r"^/relay/after-wait/$", relay_after_wait),
    (r"^/relay/twice/$", relay_twice),
    (r"^/relay/and-answer/$", relay_and_answer),
    (r"^/relay/and-wait/$", relay_and_wait),
    (r"^/relay/mid-stream/$", relay_mid_stream),
    (r"^/relay/bad-headers/$", relay_bad_headers),
]);

/// The `/alloc/` default: a GiB, more than a sane memory limit allows.
const DEFAULT_ALLOC_MB: u64 = 1024;

fn panic(_: Request) -> Response {
    panic!("testkit panic");
}

#[cfg(target_arch = "wasm32")]
fn unreachable(_: Request) -> Response {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn unreachable(_: Request) -> Response {
    panic!("testkit unreachable");
}

/// A query number, `default` when absent; junk is the client's mistake.
fn number(req: &Request, name: &str, default: u64) -> Result<u64, Error> {
    match req.query_param(name) {
        None => Ok(default),
        Some(raw) => raw
            .parse()
            .map_err(|_| Error::bad_request(format!("{name} must be a whole number, got {raw:?}"))),
    }
}

fn millis(req: &Request, name: &str) -> Result<Duration, Error> {
    number(req, name, 0).map(Duration::from_millis)
}

async fn sleep_ms(req: Request) -> Result<&'static str, Error> {
    sleep(millis(&req, "ms")?).await;
    Ok("slept")
}

async fn join_sleeps(req: Request) -> Result<Response, Error> {
    let (a, b) = (number(&req, "a", 0)?, number(&req, "b", 0)?);
    let started = Instant::now();
    join(
        sleep(Duration::from_millis(a)),
        sleep(Duration::from_millis(b)),
    )
    .await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(Response::json(
        &json!({ "a": a, "b": b, "elapsed_ms": elapsed_ms }),
    ))
}

async fn race_sleeps(req: Request) -> Result<&'static str, Error> {
    let (a, b) = (millis(&req, "a")?, millis(&req, "b")?);
    Ok(match race(sleep(a), sleep(b)).await {
        Either::Left(()) => "a",
        Either::Right(()) => "b",
    })
}

async fn forever(_: Request) -> &'static str {
    std::future::pending::<()>().await;
    "unreachable"
}

/// Spins for ever, or `turns` times when given.
fn spin(req: Request) -> Result<String, Error> {
    let limit = number(&req, "turns", u64::MAX)?;
    let mut turns: u64 = 0;
    while turns < limit {
        turns = std::hint::black_box(turns.wrapping_add(1));
    }
    Ok(format!("{turns} turns"))
}

fn alloc(req: Request) -> Result<String, Error> {
    let mb = number(&req, "mb", DEFAULT_ALLOC_MB)?;
    let bytes = usize::try_from(mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    // Writing every page makes the memory real rather than reserved.
    let block = std::hint::black_box(vec![1u8; bytes]);
    let sum: u64 = block.iter().step_by(4096).map(|&b| u64::from(b)).sum();
    Ok(format!("allocated {mb} MiB ({sum} pages)"))
}

/// `mb` MiB in 48-byte blocks, each kept: the SDK allocator's small
/// classes rather than one large block from the standard allocator.
fn alloc_small(req: Request) -> Result<String, Error> {
    let mb = number(&req, "mb", DEFAULT_ALLOC_MB)?;
    let count = usize::try_from(mb.saturating_mul(1 << 20) / 48).unwrap_or(usize::MAX);
    let mut blocks: Vec<Box<[u8; 48]>> = Vec::new();
    for i in 0..count {
        blocks.push(Box::new([i as u8; 48]));
    }
    // The blocks are all there, each with its own bytes.
    let intact = blocks
        .iter()
        .enumerate()
        .all(|(i, block)| block.iter().all(|b| *b == i as u8));
    Ok(format!("{} blocks, intact: {intact}", blocks.len()))
}

fn recurse(_: Request) -> String {
    format!("depth {}", deeper(0, &[0; 16]))
}

/// Each call lends its frame to the next, which keeps every frame alive
/// (no tail call, no loop) so the stack really grows until it overflows.
fn deeper(depth: u64, parent: &[u64; 16]) -> u64 {
    let frame = std::hint::black_box([depth + parent[15]; 16]);
    if std::hint::black_box(depth) == u64::MAX {
        return frame[0];
    }
    deeper(depth + 1, &frame) + frame[1]
}

/// Recursion that lives on the wasm stack alone: nothing in a frame has its
/// address taken, so the module's own stack in linear memory is untouched
/// and only the host's `max_stack` bounds the depth.
fn deep(req: Request) -> Result<String, Error> {
    let depth = number(&req, "depth", 1000)?;
    Ok(format!("depth {depth}: {}", descend(depth)))
}

#[inline(never)]
fn descend(depth: u64) -> u64 {
    if depth == 0 {
        return 1;
    }
    // Two operations on the result keep the call from becoming a loop.
    descend(depth - 1).rotate_left(5) ^ depth
}

fn report_stats(_: Request) -> Response {
    Response::json(&stats())
}

fn print(req: Request) -> Result<&'static str, Error> {
    let lines = number(&req, "n", 1)?;
    let mut stdout = std::io::stdout().lock();
    for line in 0..lines {
        // Output is best effort: a closed stdout must not fail the request.
        let _ = writeln!(stdout, "testkit stdout {line}");
    }
    let _ = stdout.flush();
    eprintln!("testkit stderr");
    Ok("printed")
}

/// Digits too big for u16 saturate to 65535 so the host sees an invalid
/// status rather than a wrapped, valid-looking one.
fn status(req: Request) -> Response {
    let code = req
        .group(1)
        .map_or(u16::MAX, |digits| digits.parse().unwrap_or(u16::MAX));
    Response::text(format!("status {code}")).with_status(code)
}

fn bad_header(_: Request) -> Response {
    Response::text("bad header").with_header("x-bad", "ok\r\nx-injected: 1")
}

/// Headers under `headers` (names lowercased, values lossy UTF-8, repeats
/// joined with ", " as HTTP allows), next to what else the host passed.
fn echo_headers(req: Request) -> Response {
    let mut headers = Map::new();
    for header in req.headers() {
        let value = String::from_utf8_lossy(&header.value);
        match headers.entry(header.name.to_ascii_lowercase()) {
            Entry::Occupied(mut seen) => {
                if let Value::String(joined) = seen.get_mut() {
                    joined.push_str(", ");
                    joined.push_str(&value);
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(Value::String(value.into_owned()));
            }
        }
    }
    Response::json(&json!({
        "headers": headers,
        "method": req.method(),
        "path": req.path(),
        "query": req.query(),
        "body_len": req.body().len(),
    }))
}

fn captures(req: Request) -> String {
    format!(
        "{}:{}",
        req.group(1).unwrap_or_default(),
        req.named("name").unwrap_or_default()
    )
}

/// Per instance: a fresh instance starts again at 1.
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn counter(_: Request) -> String {
    (COUNTER.fetch_add(1, Ordering::Relaxed) + 1).to_string()
}

/// One increment of `hits` in the store named by `?store=` (`default`).
async fn kv_incr(req: Request) -> Result<String, Error> {
    let name = req.query_param("store").unwrap_or_else(|| "default".into());
    let store = kv::open(&name)?;
    Ok(store.increment("hits", 1).await?.to_string())
}

/// `?n=` increments one after another in one request.
async fn kv_many(req: Request) -> Result<String, Error> {
    let n: u32 = req
        .query_param("n")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::bad_request("n must be a whole number"))?;
    let store = kv::open("default")?;
    let mut last = 0;
    for _ in 0..n {
        last = store.increment("many", 1).await?;
    }
    Ok(last.to_string())
}

/// Whether `?name=` opens, and if not, the error as the module sees it.
fn kv_open(req: Request) -> Response {
    let name = req.query_param("name").unwrap_or_default();
    match kv::open(&name) {
        Ok(_) => Response::text("opened"),
        Err(err) => Response::text(format!("{err:?}")).with_status(403),
    }
}

/// Stores the body at `?key=`, answering the store's error as text.
async fn kv_put(req: Request) -> Response {
    let key = req.query_param("key").unwrap_or_default();
    let result = match kv::open("default") {
        Ok(store) => store.set(&key, req.into_body()).await,
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => Response::text("stored"),
        Err(err) => Response::text(format!("{err:?}")).with_status(400),
    }
}

fn echo(req: Request) -> Response {
    let content_type = req
        .header("content-type")
        .map_or_else(|| b"application/octet-stream".to_vec(), <[u8]>::to_vec);
    Response::bytes(req.into_body()).with_header("content-type", content_type)
}

// Native only: they run against the SDK's fake host.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use snow_guest::testing::{forgotten, handle, ready, resume_timer, timers};

    use super::*;

    fn get(path: &str, query: &str) -> Request {
        Request::new("GET", path).with_query(query)
    }

    fn body(response: &Response) -> String {
        String::from_utf8_lossy(response.body()).into_owned()
    }

    #[test]
    fn join_reports_both_waits() {
        let router = app();
        assert!(handle(router, 1, get("/join/", "a=30&b=40")).is_pending());
        assert_eq!(timers(), [(1, 30), (2, 40)]);
        assert!(resume_timer(1, 1).is_pending());
        let response = ready(resume_timer(1, 2));
        let value: Value = serde_json::from_slice(response.body()).expect("JSON body");
        assert_eq!(
            (value["a"].as_u64(), value["b"].as_u64()),
            (Some(30), Some(40))
        );
        assert!(value["elapsed_ms"].is_u64());
    }

    #[test]
    fn race_answers_the_winner_and_forgets_the_loser() {
        let router = app();
        assert!(handle(router, 1, get("/race/", "a=100&b=10")).is_pending());
        assert_eq!(body(&ready(resume_timer(1, 2))), "b");
        assert_eq!(forgotten(), [1]);
    }

    #[test]
    fn bad_numbers_are_400() {
        let router = app();
        let response = ready(handle(router, 1, get("/sleep/", "ms=-1")));
        assert_eq!(response.status_code(), 400);
    }

    #[test]
    fn status_saturates() {
        let router = app();
        let cases = [
            ("/status/204/", 204),
            ("/status/42/", 42),
            ("/status/99999999/", u16::MAX),
        ];
        for (id, (path, code)) in (1..).zip(cases) {
            let response = ready(handle(router, id, get(path, "")));
            assert_eq!(response.status_code(), code, "{path}");
        }
    }

    #[test]
    fn captures_and_headers_are_echoed() {
        let router = app();
        let response = ready(handle(router, 1, get("/captures/12/abc/", "")));
        assert_eq!(body(&response), "12:abc");
        let req = get("/echo-headers/", "x=1")
            .with_header("X-Token", vec![b'a', 0xff])
            .with_header("x-multi", "1")
            .with_header("X-Multi", "2")
            .with_body("four");
        let value: Value =
            serde_json::from_slice(ready(handle(router, 2, req)).body()).expect("JSON body");
        assert_eq!(value["headers"]["x-token"], "a\u{FFFD}");
        assert_eq!(value["headers"]["x-multi"], "1, 2");
        assert_eq!(
            (&value["method"], &value["query"], &value["body_len"]),
            (&json!("GET"), &json!("x=1"), &json!(4))
        );
    }

    #[test]
    fn stats_and_counter() {
        let router = app();
        assert!(handle(router, 1, get("/forever/", "")).is_pending());
        let response = ready(handle(router, 2, get("/stats/", "")));
        assert_eq!(
            body(&response),
            r#"{"live_tasks":1,"handled":2,"cancelled":0}"#
        );
        let first: u64 = body(&ready(handle(router, 3, get("/counter/", ""))))
            .parse()
            .expect("a number");
        let second: u64 = body(&ready(handle(router, 4, get("/counter/", ""))))
            .parse()
            .expect("a number");
        assert!(second > first);
    }

    #[test]
    fn echo_takes_post_and_put_only() {
        let router = app();
        let put = Request::new("PUT", "/echo/").with_body("x");
        assert_eq!(ready(handle(router, 1, put)).body(), b"x");
        let response = ready(handle(router, 2, get("/echo/", "")));
        assert_eq!(response.header("allow"), Some(&b"POST, PUT"[..]));
    }

    #[test]
    fn bad_header_is_passed_through() {
        let response = ready(handle(app(), 1, get("/bad-header/", "")));
        assert_eq!(response.header("x-bad"), Some(&b"ok\r\nx-injected: 1"[..]));
    }

    #[test]
    #[should_panic(expected = "testkit panic")]
    fn panic_panics() {
        let _ = handle(app(), 1, get("/panic/", ""));
    }
}

/// Counts an upload's bytes as they arrive; `?ms=` waits between reads, a
/// slow reader for a fast client.
async fn count_upload(mut req: Request) -> Result<String, Error> {
    let pause = number(&req, "ms", 0)?;
    let mut body = req.body_stream();
    let mut total = 0u64;
    while let Some(chunk) = body.next().await {
        total += chunk?.len() as u64;
        if pause > 0 {
            sleep(Duration::from_millis(pause)).await;
        }
    }
    Ok(total.to_string())
}

/// `?n=` bytes of `?byte=` (default `x`) in `?chunk=`-byte writes, with
/// no length announced: sent chunked; `?pause=` waits between writes.
fn stream_bytes(req: Request) -> Result<Response, Error> {
    let total = number(&req, "n", 0)?;
    let chunk = number(&req, "chunk", 65536)?.max(1);
    let pause = number(&req, "pause", 0)?;
    let byte = req
        .query_param("byte")
        .map_or(b'x', |b| b.bytes().next().unwrap_or(b'x'));
    Ok(Response::stream(move |mut body| async move {
        let mut sent = 0;
        while sent < total {
            let len = (total - sent).min(chunk);
            body.write(vec![byte; len as usize]).await?;
            sent += len;
            if pause > 0 && sent < total {
                sleep(Duration::from_millis(pause)).await;
            }
        }
        Ok(())
    }))
}

/// Announces `?announce=` bytes and sends `?send=`: a module that lies
/// about its length, which the host must not pass on as a whole body.
fn stream_lying(req: Request) -> Result<Response, Error> {
    let announce = number(&req, "announce", 10)?;
    let send = number(&req, "send", 5)?;
    let response = Response::stream(move |mut body| async move {
        body.write(vec![b'l'; send as usize]).await?;
        Ok(())
    });
    Ok(response.with_header("content-length", announce.to_string()))
}

/// Streams a first chunk, then panics mid-stream.
fn stream_trap(_: Request) -> Response {
    Response::stream(|mut body| async move {
        body.write("before the trap\n").await?;
        sleep(Duration::from_millis(50)).await;
        panic!("testkit panic mid-stream");
    })
}

/// A writer that fails mid-body, as one relaying a body that broke off
/// does: the response must not pass for complete.
fn stream_gives_up(_: Request) -> Response {
    Response::stream(|mut body| async move {
        body.write("before giving up\n").await?;
        sleep(Duration::from_millis(20)).await;
        Err(snow_guest::Closed)
    })
}

/// Starts `?n=` writes of `?kb=` KiB each in one call, without a stream
/// and without waiting: what a hostile module does to make the host hold
/// its memory many times over.
fn stream_flood(req: Request) -> Result<&'static str, Error> {
    let writes = number(&req, "n", 1)?;
    let chunk = vec![b'f'; (number(&req, "kb", 1)? * 1024) as usize];
    for _ in 0..writes {
        write_raw(&chunk);
    }
    Ok("the host took every write")
}

#[cfg(target_arch = "wasm32")]
fn write_raw(chunk: &[u8]) {
    snow_guest::bindings::snow::http::streams::write_body(chunk);
}

#[cfg(not(target_arch = "wasm32"))]
fn write_raw(_: &[u8]) {}

/// The `?url=` a relay route sends its request to.
fn relay_url(req: &Request) -> Result<String, Error> {
    req.query_param("url")
        .ok_or_else(|| Error::bad_request("give a url parameter"))
}

/// `/relay/?url=U`: U's answer, relayed by the host, with `x-relayed` set
/// over the upstream's fields; the request's method and body go along.
fn relay(req: Request) -> Result<Response, Error> {
    let upstream =
        FetchRequest::new(req.method().to_owned(), relay_url(&req)?).body(req.body().to_vec());
    Ok(Response::relay(upstream).with_header("x-relayed", "testkit"))
}

/// Relays from a `resume` rather than from `handle`.
async fn relay_after_wait(req: Request) -> Result<Response, Error> {
    let url = relay_url(&req)?;
    sleep(Duration::from_millis(10)).await;
    Ok(Response::relay(FetchRequest::get(url)))
}

/// Relays through the import, then once more as its answer.
fn relay_twice(req: Request) -> Result<Response, Error> {
    let url = relay_url(&req)?;
    relay_raw(&url);
    Ok(Response::relay(FetchRequest::get(url)))
}

/// Relays through the import, then answers as well.
fn relay_and_answer(req: Request) -> Result<&'static str, Error> {
    relay_raw(&relay_url(&req)?);
    Ok("answered too")
}

/// Relays through the import, then waits as if it had not.
async fn relay_and_wait(req: Request) -> Result<&'static str, Error> {
    relay_raw(&relay_url(&req)?);
    sleep(Duration::from_millis(200)).await;
    Ok("waited")
}

/// Relays from inside a streamed response, its head already sent.
fn relay_mid_stream(req: Request) -> Result<Response, Error> {
    let url = relay_url(&req)?;
    Ok(Response::stream(move |mut body| async move {
        body.write("the head is out\n").await?;
        relay_raw(&url);
        body.write("and the body goes on\n").await
    }))
}

/// Relays with a header value that would split into two fields.
fn relay_bad_headers(req: Request) -> Result<Response, Error> {
    let upstream = FetchRequest::get(relay_url(&req)?);
    Ok(Response::relay(upstream).with_header("x-bad", "split\r\nx-injected: 1"))
}

/// `outbound.relay` straight from the bindings, as a module not using the
/// SDK's `Response::relay` may call it.
#[cfg(target_arch = "wasm32")]
fn relay_raw(url: &str) {
    use snow_guest::bindings::snow::http::outbound;
    let req = outbound::OutgoingRequest {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: Vec::new(),
        timeout_ms: 0,
        follow_redirects: false,
        stream_response: true,
        forward_body: false,
    };
    outbound::relay(&req, b"");
}

#[cfg(not(target_arch = "wasm32"))]
fn relay_raw(_: &str) {}
