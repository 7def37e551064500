//! One host operation as a future: started on first poll (so an op that is
//! built but never awaited costs the host nothing), ready with the
//! `completion` the host delivers through `resume`, and forgotten at the
//! host if dropped before that. Timers and fetches use it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::completion::Completion;
use crate::executor;
use crate::host::{self, OpId};

pub(crate) struct HostOp<S> {
    state: State<S>,
}

enum State<S> {
    Unstarted(S),
    Started(OpId),
    Finished,
}

// Nothing is pinned structurally: `start` is moved out by value.
impl<S> Unpin for HostOp<S> {}

impl<S: FnOnce() -> OpId> HostOp<S> {
    /// `start` asks the host to begin the op and returns its id.
    pub(crate) fn new(start: S) -> Self {
        HostOp {
            state: State::Unstarted(start),
        }
    }
}

impl<S: FnOnce() -> OpId> Future for HostOp<S> {
    type Output = Completion;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Completion> {
        let this = self.get_mut();
        match std::mem::replace(&mut this.state, State::Finished) {
            State::Unstarted(start) => {
                this.state = State::Started(executor::start_op(start, cx.waker()));
                Poll::Pending
            }
            State::Started(op) => match executor::take_completion(op, cx.waker()) {
                Some(done) => Poll::Ready(done),
                None => {
                    this.state = State::Started(op);
                    Poll::Pending
                }
            },
            State::Finished => panic!("snow: host operation polled after it completed"),
        }
    }
}

impl<S> Drop for HostOp<S> {
    fn drop(&mut self) {
        if let State::Started(op) = self.state {
            if executor::abandon_op(op) {
                host::forget(op);
            }
        }
    }
}
