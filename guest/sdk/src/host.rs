//! Calls into the host. On wasm32 they are the generated imports; elsewhere
//! the imports cannot link, so they go to a fake that records every call
//! for native tests.

use crate::outbound::OutgoingRequest;

pub(crate) type OpId = u64;

#[cfg(target_arch = "wasm32")]
pub(crate) fn start_timer(ms: u64) -> OpId {
    crate::bindings::snow::http::timers::start(ms)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn start_fetch(req: OutgoingRequest) -> OpId {
    crate::bindings::snow::http::outbound::fetch(&crate::boundary::outgoing(req))
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn forget(op: OpId) {
    crate::bindings::snow::http::ops::forget(op)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use fake::{forget, start_fetch, start_timer};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod fake {
    //! A per-thread stand-in for the host: op ids count up from 1 across
    //! every kind of op, and started timers and fetches and forgotten ops
    //! are kept for tests to inspect.

    use std::cell::RefCell;

    use super::{OpId, OutgoingRequest};

    #[derive(Default)]
    struct Fake {
        last_op: OpId,
        timers: Vec<(OpId, u64)>,
        fetches: Vec<(OpId, OutgoingRequest)>,
        forgotten: Vec<OpId>,
    }

    impl Fake {
        fn next_op(&mut self) -> OpId {
            self.last_op += 1;
            self.last_op
        }
    }

    thread_local! {
        static FAKE: RefCell<Fake> = RefCell::default();
    }

    pub(crate) fn start_timer(ms: u64) -> OpId {
        FAKE.with(|fake| {
            let mut fake = fake.borrow_mut();
            let op = fake.next_op();
            fake.timers.push((op, ms));
            op
        })
    }

    pub(crate) fn start_fetch(req: OutgoingRequest) -> OpId {
        FAKE.with(|fake| {
            let mut fake = fake.borrow_mut();
            let op = fake.next_op();
            fake.fetches.push((op, req));
            op
        })
    }

    /// Tolerates a torn-down thread: parked tasks are dropped with it.
    pub(crate) fn forget(op: OpId) {
        let _ = FAKE.try_with(|fake| fake.borrow_mut().forgotten.push(op));
    }

    pub(crate) fn timers() -> Vec<(OpId, u64)> {
        FAKE.with(|fake| fake.borrow().timers.clone())
    }

    pub(crate) fn fetches() -> Vec<(OpId, OutgoingRequest)> {
        FAKE.with(|fake| fake.borrow().fetches.clone())
    }

    pub(crate) fn forgotten() -> Vec<OpId> {
        FAKE.with(|fake| fake.borrow().forgotten.clone())
    }
}
