//! Runs handlers natively, without a host: requests go through the same
//! router and executor as on wasm32, and host operations go to a per-thread
//! fake that records them. Every test thread starts with an empty instance.
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

use std::task::Poll;

use crate::bindings::snow::http::types::Completion;
use crate::{executor, host, Request, Response, Router};

/// `handle` as the host calls it.
pub fn handle(router: &'static Router, id: u64, req: Request) -> Poll<Response> {
    executor::handle(router, id, req)
}

/// `resume` with a timer's completion for `op`.
pub fn resume_timer(id: u64, op: u64) -> Poll<Response> {
    executor::resume(id, op, Completion::Timer)
}

/// `cancel` as the host calls it.
pub fn cancel(id: u64) {
    executor::cancel(id)
}

/// Every timer started on this thread, in order, as `(op, ms)`.
pub fn timers() -> Vec<(u64, u64)> {
    host::fake::timers()
}

/// Every op forgotten on this thread, in order.
pub fn forgotten() -> Vec<u64> {
    host::fake::forgotten()
}
