//! Runs handlers natively, without a host: requests go through the same
//! router and executor as on wasm32, and host operations go to a per-thread
//! fake that records them. Every test thread starts with an empty instance.
//!
//! [`Client`] runs whole requests against the table `app!` defines (its
//! `app()`), firing timers on a virtual clock and answering fetches from an
//! upstream the test gives. The functions below drive one call at a time,
//! for tests about the order of operations.
//!
//! ```
//! use std::time::Duration;
//! use snow_guest::{sleep, testing, Request, Route, Router};
//!
//! async fn wait(_: Request) -> &'static str {
//!     sleep(Duration::from_millis(30)).await;
//!     "done"
//! }
//!
//! let router = Router::new(vec![Route::new("^/a/$", wait)]).leak();
//! assert!(testing::handle(router, 1, Request::new("GET", "/a/")).is_pending());
//! assert_eq!(testing::timers(), [(1, 30)]);
//! assert!(testing::resume_timer(1, 1).is_ready());
//! ```
//!
//! Fetches are recorded with the request the host would receive, and
//! `resume_fetch` delivers whatever outcome a test picks:
//!
//! ```
//! use snow_guest::{get, testing, Error, FetchError, Request, Response, Route, Router};
//!
//! async fn upstream(_: Request) -> Result<Response, Error> {
//!     Ok(get("http://upstream.test/").await?)
//! }
//!
//! let router = Router::new(vec![Route::new("^/up/$", upstream)]).leak();
//! assert!(testing::handle(router, 1, Request::new("GET", "/up/")).is_pending());
//! let fetches = testing::fetches();
//! assert_eq!((fetches[0].0, fetches[0].1.url.as_str()), (1, "http://upstream.test/"));
//! let answer = testing::resume_fetch(1, 1, Err(FetchError::Timeout));
//! assert!(matches!(answer, std::task::Poll::Ready(r) if r.status_code() == 504));
//! ```

mod client;
mod stores;

use std::collections::BTreeMap;
use std::task::Poll;

pub use client::Client;
pub(crate) use stores::FakeStores;

use crate::completion::Completion;
use crate::kv::{KvError, KvOutput, KvRequest};
use crate::{executor, host, FetchError, Request, Response, Router};

pub use crate::outbound::OutgoingRequest;

/// `handle` as the host calls it. A streamed response is pending here
/// while its writer runs; [`Client`] runs one to its end.
pub fn handle(router: &'static Router, id: u64, req: Request) -> Poll<Response> {
    poll(executor::handle(router, id, req))
}

/// `resume` with a timer's completion for `op`.
pub fn resume_timer(id: u64, op: u64) -> Poll<Response> {
    poll(executor::resume(id, op, Completion::Timer))
}

/// `resume` with a fetch's completion for `op`: the response the host
/// fetched, or why it failed.
pub fn resume_fetch(id: u64, op: u64, result: Result<Response, FetchError>) -> Poll<Response> {
    poll(executor::resume(id, op, Completion::Fetch(result)))
}

/// `resume` with a store operation's completion for `op`.
pub fn resume_kv(id: u64, op: u64, result: Result<KvOutput, KvError>) -> Poll<Response> {
    poll(executor::resume(id, op, Completion::Kv(result)))
}

fn poll(step: executor::Step) -> Poll<Response> {
    match step {
        // A relayed response is ready as far as the module goes; its
        // `relayed_request` is what the host would send.
        executor::Step::Ready(response) | executor::Step::Relayed(response) => {
            Poll::Ready(response)
        }
        _ => Poll::Pending,
    }
}

/// Every store operation started on this thread, in order, as
/// `(op, store name, request)`.
pub fn kv_ops() -> Vec<(u64, String, KvRequest)> {
    host::fake::kv_ops()
}

/// What the fake store `name` holds now. Every name opens on the fake host
/// unless [`deny_store`] refuses it; [`Client`] completes store operations
/// against these stores.
pub fn store(name: &str) -> BTreeMap<String, Vec<u8>> {
    host::fake::with_stores(|stores| stores.contents(name))
}

/// Puts `key` = `value` in the fake store `name` before a test runs.
pub fn seed_store(name: &str, key: &str, value: impl Into<Vec<u8>>) {
    host::fake::with_stores(|stores| stores.seed(name, key, value.into()))
}

/// Makes `open(name)` fail with `AccessDenied`, as for a store the
/// module is not granted.
pub fn deny_store(name: &str) {
    host::fake::with_stores(|stores| stores.deny(name))
}

/// Makes every operation on the store `name` fail with `err` (say,
/// `Unavailable` for a Redis server that is down); `None` heals it.
pub fn fail_store(name: &str, err: Option<KvError>) {
    host::fake::with_stores(|stores| stores.fail(name, err))
}

/// The response of a call that must have answered; panics if it is pending.
#[track_caller]
pub fn ready(poll: Poll<Response>) -> Response {
    match poll {
        Poll::Ready(response) => response,
        Poll::Pending => panic!("expected a response"),
    }
}

/// `cancel` as the host calls it.
pub fn cancel(id: u64) {
    executor::cancel(id)
}

/// Every timer started on this thread, in order, as `(op, ms)`.
pub fn timers() -> Vec<(u64, u64)> {
    host::fake::timers()
}

/// Every fetch started on this thread, in order, as `(op, request)`.
pub fn fetches() -> Vec<(u64, OutgoingRequest)> {
    host::fake::fetches()
}

/// Every op forgotten on this thread, in order.
pub fn forgotten() -> Vec<u64> {
    host::fake::forgotten()
}
