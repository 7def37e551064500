//! The executor driven as the host drives it, against the fake host.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::testing::{
    cancel, fetches, forgotten, handle, ready, resume_fetch, resume_timer, timers,
};
use crate::{
    fetch, get as fetch_get, join, join_all, post_json, race, sleep, stats, Either, Error,
    FetchError, FetchRequest, Request, Response, Route, Router, Stats,
};

fn ms(req: &Request, name: &str) -> u64 {
    req.query_param(name)
        .and_then(|value| value.parse().ok())
        .unwrap_or(10)
}

fn plain(_: Request) -> &'static str {
    "plain"
}

async fn nap(req: Request) -> String {
    sleep(Duration::from_millis(ms(&req, "ms"))).await;
    format!("woke {}", req.query())
}

async fn both(req: Request) -> &'static str {
    join(
        sleep(Duration::from_millis(ms(&req, "a"))),
        sleep(Duration::from_millis(ms(&req, "b"))),
    )
    .await;
    "both"
}

async fn first(req: Request) -> &'static str {
    let a = sleep(Duration::from_millis(ms(&req, "a")));
    let b = sleep(Duration::from_millis(ms(&req, "b")));
    match race(a, b).await {
        Either::Left(()) => "a",
        Either::Right(()) => "b",
    }
}

async fn race_then_sleep(_: Request) -> &'static str {
    race(
        sleep(Duration::from_millis(1)),
        sleep(Duration::from_millis(2)),
    )
    .await;
    sleep(Duration::from_millis(3)).await;
    "after"
}

/// Wakes itself `n` times before finishing, without any host op.
async fn busy(req: Request) -> &'static str {
    let mut left = ms(&req, "n");
    poll_fn(|cx| {
        if left == 0 {
            return Poll::Ready("busy");
        }
        left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Polls its sleep only when the sleep's own waker fired, the way
/// `FuturesUnordered` does, so a completion must wake the stored waker.
async fn selective(_: Request) -> &'static str {
    #[derive(Default)]
    struct Flag(std::sync::atomic::AtomicBool);
    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let flag = Arc::new(Flag::default());
    let waker = Waker::from(Arc::clone(&flag));
    let mut inner = pin!(sleep(Duration::from_millis(7)));
    let mut first = true;
    poll_fn(|_| {
        if !first && !flag.0.swap(false, std::sync::atomic::Ordering::Relaxed) {
            return Poll::Pending;
        }
        first = false;
        inner
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .map(|()| "selective")
    })
    .await
}

/// Starts a sleep once and never looks at it again.
async fn ignores(_: Request) -> &'static str {
    let mut inner = pin!(sleep(Duration::from_millis(9)));
    let _ = poll_fn(|cx| Poll::Ready(inner.as_mut().poll(cx))).await;
    std::future::pending::<()>().await;
    "never"
}

/// Fetches every `url` parameter at once; answers each status or error.
async fn fan(req: Request) -> String {
    let fetches = req
        .query_param_all("url")
        .into_iter()
        .map(|url| fetch(FetchRequest::get(url).header("x-fan", "1")))
        .collect();
    let outcomes: Vec<String> = join_all(fetches)
        .await
        .into_iter()
        .map(|outcome| match outcome {
            Ok(response) => response.status_code().to_string(),
            Err(err) => err.to_string(),
        })
        .collect();
    outcomes.join(",")
}

/// One fetch against a `ms` deadline.
async fn deadline(req: Request) -> Result<Vec<u8>, Error> {
    let limit = sleep(Duration::from_millis(ms(&req, "ms")));
    match race(fetch_get("http://slow.test/"), limit).await {
        Either::Left(response) => Ok(response?.into_body()),
        Either::Right(()) => Err(Error::new(504, "deadline")),
    }
}

async fn send_json(_: Request) -> Result<String, Error> {
    let response = post_json("http://api.test/items", &serde_json::json!({"n": 1})).await?;
    Ok(format!("{}", response.status_code()))
}

async fn unsendable(_: Request) -> Result<&'static str, Error> {
    let mut map = std::collections::HashMap::new();
    map.insert(vec![1u8], 1);
    fetch(FetchRequest::get("http://a.test/").json(&map)).await?;
    Ok("sent")
}

fn router() -> &'static Router {
    Router::new(vec![
        Route::new("^/fan/$", fan),
        Route::new("^/deadline/$", deadline),
        Route::new("^/send-json/$", send_json),
        Route::new("^/unsendable/$", unsendable),
        Route::new("^/plain/$", plain),
        Route::new("^/nap/$", nap),
        Route::new("^/both/$", both),
        Route::new("^/first/$", first),
        Route::new("^/race-then-sleep/$", race_then_sleep),
        Route::new("^/busy/$", busy),
        Route::new("^/selective/$", selective),
        Route::new("^/ignores/$", ignores),
    ])
    .leak()
}

fn get(path_and_query: &str) -> Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    Request::new("GET", path).with_query(query)
}

fn text(poll: Poll<Response>) -> String {
    String::from_utf8_lossy(ready(poll).body()).into_owned()
}

#[test]
fn plain_handlers_answer_at_once() {
    assert_eq!(text(handle(router(), 1, get("/plain/"))), "plain");
    assert_eq!(
        ready(handle(router(), 2, get("/nowhere/"))).status_code(),
        404
    );
    let expected = Stats {
        live_tasks: 0,
        handled: 2,
        cancelled: 0,
    };
    assert_eq!(stats(), expected);
    assert!(timers().is_empty());
}

#[test]
fn sleep_parks_until_resumed() {
    let router = router();
    assert!(handle(router, 7, get("/nap/?ms=5000")).is_pending());
    assert_eq!(timers(), [(1, 5000)]);
    assert_eq!(stats().live_tasks, 1);
    assert_eq!(text(resume_timer(7, 1)), "woke ms=5000");
    assert_eq!(stats().live_tasks, 0);
    assert!(forgotten().is_empty());
}

#[test]
fn join_waits_for_both_sleeps_in_any_order() {
    assert!(handle(router(), 1, get("/both/?a=10&b=20")).is_pending());
    assert_eq!(timers(), [(1, 10), (2, 20)]);
    assert!(resume_timer(1, 2).is_pending());
    assert_eq!(text(resume_timer(1, 1)), "both");
    assert!(forgotten().is_empty());
}

#[test]
fn race_forgets_the_loser() {
    assert!(handle(router(), 1, get("/first/?a=50&b=5")).is_pending());
    assert_eq!(timers(), [(1, 50), (2, 5)]);
    assert_eq!(text(resume_timer(1, 2)), "b");
    assert_eq!(forgotten(), [1]);
}

#[test]
fn stray_completion_of_a_forgotten_op_is_ignored() {
    assert!(handle(router(), 3, get("/race-then-sleep/")).is_pending());
    assert!(resume_timer(3, 1).is_pending());
    assert_eq!(forgotten(), [2]);
    assert_eq!(timers().len(), 3);
    assert!(resume_timer(3, 2).is_pending());
    assert_eq!(text(resume_timer(3, 3)), "after");
}

#[test]
fn cancel_drops_the_task_and_forgets_its_ops() {
    assert!(handle(router(), 9, get("/both/")).is_pending());
    assert!(resume_timer(9, 1).is_pending());
    cancel(9);
    assert_eq!(forgotten(), [2]);
    let expected = Stats {
        live_tasks: 0,
        handled: 1,
        cancelled: 1,
    };
    assert_eq!(stats(), expected);
    cancel(9);
    assert_eq!(stats().cancelled, 1);
}

#[test]
fn unknown_ids_resume_to_500() {
    let response = ready(resume_timer(404, 1));
    assert_eq!(response.status_code(), 500);
    assert!(handle(router(), 1, get("/nap/")).is_pending());
    assert_eq!(text(resume_timer(1, 1)), "woke ");
    assert_eq!(ready(resume_timer(1, 1)).status_code(), 500);
}

#[test]
fn a_reused_id_replaces_the_parked_task() {
    assert!(handle(router(), 5, get("/nap/?ms=1")).is_pending());
    assert!(handle(router(), 5, get("/nap/?ms=2")).is_pending());
    assert_eq!(forgotten(), [1]);
    assert_eq!(stats().cancelled, 1);
    assert_eq!(text(resume_timer(5, 2)), "woke ms=2");
}

#[test]
fn thousands_of_requests_park_at_once() {
    let router = router();
    for id in 0..2000 {
        let req = get(&format!("/nap/?ms={id}"));
        assert!(handle(router, id, req).is_pending());
    }
    assert_eq!(stats().live_tasks, 2000);
    for (op, ms) in timers().into_iter().rev() {
        assert_eq!(text(resume_timer(ms, op)), format!("woke ms={ms}"));
    }
    assert_eq!(stats().live_tasks, 0);
}

#[test]
fn self_wakes_are_polled_within_the_call() {
    assert_eq!(text(handle(router(), 1, get("/busy/?n=10"))), "busy");
    assert!(timers().is_empty());
}

#[test]
fn endless_self_wakes_yield_through_a_zero_timer() {
    assert!(handle(router(), 1, get("/busy/?n=1000000")).is_pending());
    assert_eq!(timers(), [(1, 0)]);
    assert!(resume_timer(1, 1).is_pending());
    assert_eq!(timers(), [(1, 0), (2, 0)]);
    cancel(1);
    assert_eq!(forgotten(), [2]);
}

#[test]
fn completions_wake_the_waker_that_awaits_them() {
    assert!(handle(router(), 1, get("/selective/")).is_pending());
    assert_eq!(text(resume_timer(1, 1)), "selective");
}

#[test]
fn delivered_but_untaken_ops_are_not_forgotten() {
    assert!(handle(router(), 1, get("/ignores/")).is_pending());
    assert!(resume_timer(1, 1).is_pending());
    cancel(1);
    assert!(forgotten().is_empty());
}

#[test]
#[should_panic(expected = "only be awaited inside a request handler")]
fn sleeping_outside_a_handler_panics() {
    let mut future = pin!(sleep(Duration::from_millis(1)));
    let _ = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
}

#[test]
fn stats_are_visible_to_handlers() {
    fn report(_: Request) -> Response {
        Response::json(&stats())
    }
    let router = Router::new(vec![
        Route::new("^/nap/$", nap),
        Route::new("^/stats/$", report),
    ])
    .leak();
    assert!(handle(router, 1, get("/nap/")).is_pending());
    let body = text(handle(router, 2, get("/stats/")));
    assert_eq!(body, r#"{"live_tasks":1,"handled":2,"cancelled":0}"#);
}

#[test]
fn join_all_fetches_start_together_and_finish_in_any_order() {
    let req = get("/fan/?url=http://a.test/&url=http://b.test/&url=http://c.test/");
    assert!(handle(router(), 1, req).is_pending());
    let started = fetches();
    let urls: Vec<_> = started
        .iter()
        .map(|(op, req)| (*op, req.url.as_str()))
        .collect();
    assert_eq!(
        urls,
        [
            (1, "http://a.test/"),
            (2, "http://b.test/"),
            (3, "http://c.test/")
        ]
    );
    let sent = &started[0].1;
    assert_eq!(
        (sent.method.as_str(), sent.header("X-Fan"), sent.timeout_ms),
        ("GET", Some(&b"1"[..]), 0)
    );
    assert!(resume_fetch(1, 3, Ok(Response::status(204))).is_pending());
    assert!(resume_fetch(1, 1, Err(FetchError::Dns("no such host".into()))).is_pending());
    let body = text(resume_fetch(1, 2, Ok(Response::text("b"))));
    assert_eq!(body, "dns: no such host,200,204");
    assert!(forgotten().is_empty());
    assert!(timers().is_empty());
}

#[test]
fn a_fetch_that_wins_the_race_forgets_the_timer() {
    assert!(handle(router(), 1, get("/deadline/?ms=300")).is_pending());
    assert_eq!(fetches()[0].0, 1);
    assert_eq!(timers(), [(2, 300)]);
    let body = text(resume_fetch(1, 1, Ok(Response::text("fast"))));
    assert_eq!(body, "fast");
    assert_eq!(forgotten(), [2]);
}

#[test]
fn a_timer_that_wins_the_race_forgets_the_fetch() {
    assert!(handle(router(), 1, get("/deadline/?ms=5")).is_pending());
    let response = ready(resume_timer(1, 2));
    assert_eq!(
        (response.status_code(), response.body()),
        (504, &b"deadline"[..])
    );
    assert_eq!(forgotten(), [1]);
}

#[test]
fn fetch_errors_answer_as_a_gateway() {
    assert!(handle(router(), 1, get("/deadline/")).is_pending());
    let response = ready(resume_fetch(
        1,
        1,
        Err(FetchError::Connect("refused".into())),
    ));
    assert_eq!(response.status_code(), 502);
    assert_eq!(
        response.body(),
        b"upstream request failed: connect: refused"
    );
    assert_eq!(forgotten(), [2]);
    assert!(handle(router(), 2, get("/deadline/")).is_pending());
    let slow = ready(resume_fetch(2, 3, Err(FetchError::Timeout)));
    assert_eq!(slow.status_code(), 504);
}

#[test]
fn cancel_forgets_unfinished_fetches() {
    let req = get("/fan/?url=http://a.test/&url=http://b.test/");
    assert!(handle(router(), 4, req).is_pending());
    assert!(resume_fetch(4, 2, Ok(Response::status(200))).is_pending());
    cancel(4);
    assert_eq!(forgotten(), [1]);
    assert_eq!(stats().live_tasks, 0);
}

#[test]
fn post_json_sends_a_typed_body() {
    assert!(handle(router(), 1, get("/send-json/")).is_pending());
    let (op, sent) = fetches().remove(0);
    assert_eq!(
        (sent.method.as_str(), sent.url.as_str()),
        ("POST", "http://api.test/items")
    );
    assert_eq!(sent.header("content-type"), Some(&b"application/json"[..]));
    assert_eq!(sent.body, br#"{"n":1}"#);
    assert_eq!(text(resume_fetch(1, op, Ok(Response::status(201)))), "201");
}

#[test]
fn an_unusable_request_fails_without_reaching_the_host() {
    let response = ready(handle(router(), 1, get("/unsendable/")));
    assert_eq!(response.status_code(), 502);
    assert!(fetches().is_empty());
}

#[test]
fn a_timer_completion_for_a_fetch_fails_only_that_fetch() {
    assert!(handle(router(), 1, get("/fan/?url=http://a.test/")).is_pending());
    assert_eq!(
        text(resume_timer(1, 1)),
        "protocol: the host completed the fetch with Timer"
    );
}

#[test]
#[should_panic(expected = "only be awaited inside a request handler")]
fn fetching_outside_a_handler_panics() {
    let mut future = pin!(fetch_get("http://a.test/"));
    let _ = future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()));
}

#[test]
fn consecutive_ids_spread_over_the_tables_control_bits() {
    use std::hash::BuildHasher;
    let build = std::hash::BuildHasherDefault::<super::IdHasher>::default();
    let hashes: Vec<u64> = (1..=4096u64).map(|id| build.hash_one(id)).collect();
    // hashbrown takes a slot's control byte from the top 7 bits and its
    // bucket from the low ones.
    let top: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
    assert_eq!(top.len(), 128);
    let low: std::collections::HashSet<u64> = hashes.iter().map(|h| h & 4095).collect();
    assert_eq!(low.len(), 4096, "a bijection on the low bits");
}
