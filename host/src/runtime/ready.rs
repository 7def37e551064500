//! Driving a future that cannot wait: wasmtime's async calls and
//! wizer's snapshot are futures, and some of their uses here never block.

use std::future::Future;
use std::task::{Context, Poll, Waker};

/// `future`'s output if it is ready on the first poll; `None` if it would
/// have waited (it is dropped then).
pub fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => Some(value),
        Poll::Pending => None,
    }
}
