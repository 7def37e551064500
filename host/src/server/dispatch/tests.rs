//! The park / resume / cancel / deadline core, against the `hello` module.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::task::LocalSet;

use super::*;
use crate::http::{ResponseOptions, Version};
use crate::server::test_support::{client, dispatch_limits, hello};

const LONG: Duration = Duration::from_secs(60);

fn dispatcher(isolation: Isolation, max_parked: usize, timeout: Duration) -> Rc<Dispatcher> {
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
    LocalSet::new().block_on(&runtime, test)
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
