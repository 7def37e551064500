//! Calls into the host. On wasm32 they are the generated imports; elsewhere
//! the imports cannot link, so they go to a fake that records every call
//! for native tests.

pub(crate) type OpId = u64;

#[cfg(target_arch = "wasm32")]
pub(crate) fn start_timer(ms: u64) -> OpId {
    crate::bindings::snow::http::timers::start(ms)
}

#[cfg(target_arch = "wasm32")]
pub(crate) fn forget(op: OpId) {
    crate::bindings::snow::http::ops::forget(op)
}

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use fake::{forget, start_timer};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod fake {
    //! A per-thread stand-in for the host: op ids count up from 1, and
    //! started timers and forgotten ops are kept for tests to inspect.

    use std::cell::RefCell;

    use super::OpId;

    #[derive(Default)]
    struct Fake {
        last_op: OpId,
        timers: Vec<(OpId, u64)>,
        forgotten: Vec<OpId>,
    }

    thread_local! {
        static FAKE: RefCell<Fake> = RefCell::default();
    }

    pub(crate) fn start_timer(ms: u64) -> OpId {
        FAKE.with(|fake| {
            let mut fake = fake.borrow_mut();
            fake.last_op += 1;
            let op = fake.last_op;
            fake.timers.push((op, ms));
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

    pub(crate) fn forgotten() -> Vec<OpId> {
        FAKE.with(|fake| fake.borrow().forgotten.clone())
    }
}
