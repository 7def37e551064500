//! The executor driven as the host drives it, against the fake host.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::testing::{cancel, forgotten, handle, resume_timer, timers};
use crate::{join, race, sleep, stats, Either, Request, Response, Route, Router, Stats};

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

fn router() -> &'static Router {
    Router::new(vec![
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

fn ready(poll: Poll<Response>) -> Response {
    match poll {
        Poll::Ready(response) => response,
        Poll::Pending => panic!("expected a response"),
    }
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
