//! The park / resume / cancel / deadline core, against the `hello` module.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::*;
use crate::http::{ResponseOptions, Version};
use crate::server::test_support::{client, dispatch_limits, hello};

const LONG: Duration = Duration::from_secs(60);

fn dispatcher(isolation: Isolation, max_parked: usize, timeout: Duration) -> Arc<Dispatcher> {
    let limits = dispatch_limits(max_parked, timeout);
    Dispatcher::new(hello(isolation), limits, Metrics::new(), client()).expect("a dispatcher")
}

fn get(path: &str, query: &str) -> Request {
    crate::runtime::wit::Line {
        method: "GET",
        path,
        full_path: path,
        query,
    }
    .bare()
}

/// Status and body as a client would receive them.
fn received(response: &http::Response) -> (u16, Vec<u8>) {
    let opts = ResponseOptions {
        head_request: false,
        keep_alive: true,
        version: Version::Http11,
    };
    let mut out = Vec::new();
    response.write(&mut out, &opts);
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (response.status(), out.split_off(end + 4))
}

fn on_worker<F: Future>(test: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(test)
}

/// Polls `call` once, so that it starts and parks, and hands it back.
async fn parked<F: Future + Unpin>(mut call: F) -> F {
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(Pin::new(&mut call).poll(cx)));
    assert!(first.await.is_pending(), "the request parks");
    call
}

#[test]
fn a_ready_handler_is_answered_without_parking() {
    on_worker(async {
        for isolation in [Isolation::Instance, Isolation::Request] {
            let d = dispatcher(isolation, 16, LONG);
            let (status, body) = received(&d.call(&get("/home/", ""), None).await);
            assert_eq!((status, body.as_slice()), (200, &b"home"[..]));
            assert_eq!(d.parked_count(), 0);
        }
    });
}

#[test]
fn a_parked_request_resumes_when_its_timer_fires() {
    on_worker(async {
        for isolation in [Isolation::Instance, Isolation::Request] {
            let d = dispatcher(isolation, 16, LONG);
            let request = get("/async/", "ms=20");
            let call = parked(Box::pin(d.call(&request, None))).await;
            assert_eq!(d.parked_count(), 1);
            let (status, body) = received(&call.await);
            assert_eq!((status, body.as_slice()), (200, &b"done"[..]));
            assert_eq!(d.parked_count(), 0);
        }
    });
}

#[test]
fn the_deadline_answers_504_and_cancels() {
    on_worker(async {
        for isolation in [Isolation::Instance, Isolation::Request] {
            let d = dispatcher(isolation, 16, Duration::from_millis(30));
            let response = d.call(&get("/async/", "ms=60000"), None).await;
            assert_eq!(response.status(), 504);
            assert_eq!(d.parked_count(), 0);
            // The instance serves on after the cancellation.
            assert_eq!(d.call(&get("/home/", ""), None).await.status(), 200);
        }
    });
}

#[test]
fn dropping_a_parked_call_cancels_it() {
    on_worker(async {
        for isolation in [Isolation::Instance, Isolation::Request] {
            let d = dispatcher(isolation, 16, LONG);
            let request = get("/async/", "ms=60000");
            let call = parked(Box::pin(d.call(&request, None))).await;
            assert_eq!(d.parked_count(), 1);
            drop(call);
            assert_eq!(d.parked_count(), 0);
            let (status, body) = received(&d.call(&get("/async/", "ms=1"), None).await);
            assert_eq!((status, body.as_slice()), (200, &b"done"[..]));
        }
    });
}

#[test]
fn parking_beyond_the_limit_is_refused_with_503() {
    on_worker(async {
        let d = dispatcher(Isolation::Instance, 2, LONG);
        let (first, second) = (get("/async/", "ms=60000"), get("/async/", "ms=20"));
        let _first = parked(Box::pin(d.call(&first, None))).await;
        let second = parked(Box::pin(d.call(&second, None))).await;
        let refused = d.call(&get("/async/", "ms=60000"), None).await;
        assert_eq!(refused.status(), 503);
        assert_eq!(d.parked_count(), 2);
        // A request that does not park is still served.
        assert_eq!(d.call(&get("/home/", ""), None).await.status(), 200);
        assert_eq!(second.await.status(), 200);
        assert_eq!(d.parked_count(), 1);
    });
}

#[test]
fn a_bad_request_is_the_module_s_answer() {
    on_worker(async {
        let d = dispatcher(Isolation::Instance, 16, LONG);
        let response = d.call(&get("/async/", "ms=soon"), None).await;
        assert_eq!(response.status(), 400);
        assert_eq!(d.call(&get("/nope/", ""), None).await.status(), 404);
    });
}

fn dispatcher_of(workers: usize, isolation: Isolation) -> Arc<Dispatcher> {
    let mut limits = dispatch_limits(1024, LONG);
    limits.workers = workers;
    Dispatcher::new(hello(isolation), limits, Metrics::new(), client()).expect("a dispatcher")
}

fn parked_in(d: &Dispatcher, at: usize) -> usize {
    d.lock(at).parked.len()
}

#[test]
fn a_request_starts_in_its_worker_s_slot_and_resumes_there() {
    on_worker(async {
        for isolation in [Isolation::Instance, Isolation::Request] {
            let d = dispatcher_of(3, isolation);
            crate::server::worker::set_index(4);
            let request = get("/async/", "ms=20");
            let call = parked(Box::pin(d.call(&request, None))).await;
            assert_eq!([0, 1, 2].map(|at| parked_in(&d, at)), [0, 1, 0]);
            // Resumed by a timer on whichever thread: the slot is the one
            // the request started in.
            crate::server::worker::set_index(0);
            let (status, body) = received(&call.await);
            assert_eq!((status, body.as_slice()), (200, &b"done"[..]));
            assert_eq!(d.parked_count(), 0);
        }
    });
}

#[test]
fn a_request_takes_a_free_slot_while_its_worker_s_is_busy() {
    on_worker(async {
        let d = dispatcher_of(2, Isolation::Instance);
        crate::server::worker::set_index(0);
        let busy = d.lock(0);
        let Started::Parked(mut ticket) = d.start(&get("/async/", "ms=1"), None) else {
            panic!("the request parks");
        };
        drop(busy);
        assert_eq!(ticket.slot, 1);
        assert_eq!([0, 1].map(|at| parked_in(&d, at)), [0, 1]);
        assert!(matches!(ticket.wait().await, Reply::Response(_)));
        // From the other side: worker 1's slot busy, slot 0 answers.
        crate::server::worker::set_index(1);
        let busy = d.lock(1);
        let started = d.start(&get("/home/", ""), None);
        drop(busy);
        assert!(matches!(started, Started::Done(Reply::Response(_))));
        assert_eq!(d.parked_count(), 0);
    });
}

#[test]
fn workers_on_many_threads_share_the_slots_without_losing_a_request() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start({
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            move || {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                crate::server::worker::set_index(index);
            }
        })
        .enable_all()
        .build()
        .unwrap();
    for isolation in [Isolation::Instance, Isolation::Request] {
        let d = dispatcher_of(2, isolation);
        let calls: Vec<_> = (0..200)
            .map(|i| {
                let d = d.clone();
                runtime.spawn(async move {
                    let (path, query) = match i % 3 {
                        0 => ("/home/", String::new()),
                        _ => ("/async/", format!("ms={}", i % 7)),
                    };
                    let (status, body) = received(&d.call(&get(path, &query), None).await);
                    (i, status, body)
                })
            })
            .collect();
        for call in calls {
            let (i, status, body) = runtime.block_on(call).expect("the call ran");
            let expected: &[u8] = if i % 3 == 0 { b"home" } else { b"done" };
            assert_eq!((status, body.as_slice()), (200, expected), "request {i}");
        }
        assert_eq!(d.parked_count(), 0);
    }
}
