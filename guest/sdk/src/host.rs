//! Calls into the host. On wasm32 they are the generated imports; elsewhere
//! the imports cannot link, so they go to a fake that records every call
//! for native tests.

#[cfg(not(all(target_arch = "wasm32", feature = "wasi-http")))]
use crate::kv::{KvError, KvRequest};
#[cfg(not(all(target_arch = "wasm32", feature = "wasi-http")))]
use crate::outbound::OutgoingRequest;

pub(crate) type OpId = u64;

/// Whether the host makes relayed responses itself (`outbound.relay`);
/// a `wasi:http` build makes them in the module.
pub(crate) const RELAYS: bool = !cfg!(all(target_arch = "wasm32", feature = "wasi-http"));

#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) fn start_timer(ms: u64) -> OpId {
    crate::bindings::snow::http::timers::start(ms)
}

#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) fn start_fetch(req: OutgoingRequest) -> OpId {
    crate::bindings::snow::http::outbound::fetch(&crate::boundary::outgoing(req))
}

#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) fn relay(req: OutgoingRequest, headers: &[u8]) {
    crate::bindings::snow::http::outbound::relay(&crate::boundary::outgoing(req), headers)
}

#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) fn forget(op: OpId) {
    crate::bindings::snow::http::ops::forget(op)
}

#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) fn kv_open(name: &str) -> Result<u32, KvError> {
    crate::bindings::snow::http::kv::open(name).map_err(crate::boundary::kv_error)
}

#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) fn start_kv(store: u32, req: KvRequest) -> OpId {
    use crate::bindings::snow::http::kv;
    match req {
        KvRequest::Get { key } => kv::get(store, &key),
        KvRequest::Set { key, value, ttl_ms } => kv::set(store, &key, &value, ttl_ms),
        KvRequest::Delete { key } => kv::delete(store, &key),
        KvRequest::Exists { key } => kv::exists(store, &key),
        KvRequest::ListKeys {
            prefix,
            cursor,
            limit,
        } => kv::list_keys(store, &prefix, cursor.as_deref(), limit),
        KvRequest::Increment { key, delta } => kv::increment(store, &key, delta),
        KvRequest::CompareAndSwap {
            key,
            expected,
            value,
            ttl_ms,
        } => kv::compare_and_swap(store, &key, expected.as_deref(), &value, ttl_ms),
    }
}

#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) fn start_read_body(max: u32) -> OpId {
    crate::bindings::snow::http::streams::read_body(max)
}

#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) fn start_write_body(chunk: Vec<u8>) -> OpId {
    crate::bindings::snow::http::streams::write_body(&chunk)
}

#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) fn start_read_fetched(body: u32, max: u32) -> OpId {
    crate::bindings::snow::http::streams::read_fetched(body, max)
}

#[cfg(all(target_arch = "wasm32", not(feature = "wasi-http")))]
pub(crate) fn start_pipe_fetched(body: u32) -> OpId {
    crate::bindings::snow::http::streams::pipe_fetched(body)
}

#[cfg(all(target_arch = "wasm32", feature = "wasi-http"))]
pub(crate) use crate::wasi_http::{
    forget, kv_open, start_fetch, start_kv, start_pipe_fetched, start_read_body,
    start_read_fetched, start_timer, start_write_body,
};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use fake::{
    forget, kv_open, start_fetch, start_kv, start_pipe_fetched, start_read_body,
    start_read_fetched, start_timer, start_write_body,
};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod fake {
    //! A per-thread stand-in for the host: op ids count up from 1 across
    //! every kind of op, and started timers and fetches and forgotten ops
    //! are kept for tests to inspect.

    use std::cell::RefCell;

    use super::{KvError, KvRequest, OpId, OutgoingRequest};
    use crate::testing::FakeStores;

    #[derive(Default)]
    struct Fake {
        last_op: OpId,
        timers: Vec<(OpId, u64)>,
        fetches: Vec<(OpId, OutgoingRequest)>,
        kv: Vec<(OpId, String, KvRequest)>,
        reads: Vec<(OpId, u32)>,
        writes: Vec<(OpId, Vec<u8>)>,
        fetched_reads: Vec<(OpId, u32)>,
        pipes: Vec<(OpId, u32)>,
        forgotten: Vec<OpId>,
        stores: FakeStores,
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

    pub(crate) fn kv_open(name: &str) -> Result<u32, KvError> {
        FAKE.with(|fake| fake.borrow_mut().stores.open(name))
    }

    pub(crate) fn start_read_body(max: u32) -> OpId {
        FAKE.with(|fake| {
            let mut fake = fake.borrow_mut();
            let op = fake.next_op();
            fake.reads.push((op, max));
            op
        })
    }

    pub(crate) fn start_write_body(chunk: Vec<u8>) -> OpId {
        FAKE.with(|fake| {
            let mut fake = fake.borrow_mut();
            let op = fake.next_op();
            fake.writes.push((op, chunk));
            op
        })
    }

    pub(crate) fn start_read_fetched(body: u32, _max: u32) -> OpId {
        FAKE.with(|fake| {
            let mut fake = fake.borrow_mut();
            let op = fake.next_op();
            fake.fetched_reads.push((op, body));
            op
        })
    }

    pub(crate) fn start_pipe_fetched(body: u32) -> OpId {
        FAKE.with(|fake| {
            let mut fake = fake.borrow_mut();
            let op = fake.next_op();
            fake.pipes.push((op, body));
            op
        })
    }

    /// Reads of fetched bodies started so far: op and body handle.
    pub(crate) fn fetched_reads() -> Vec<(OpId, u32)> {
        FAKE.with(|fake| fake.borrow().fetched_reads.clone())
    }

    /// Pipes of fetched bodies started so far: op and body handle.
    pub(crate) fn pipes() -> Vec<(OpId, u32)> {
        FAKE.with(|fake| fake.borrow().pipes.clone())
    }

    /// Body reads started so far: op and the most asked for.
    pub(crate) fn reads() -> Vec<(OpId, u32)> {
        FAKE.with(|fake| fake.borrow().reads.clone())
    }

    /// Streamed writes started so far, with their chunks.
    pub(crate) fn writes() -> Vec<(OpId, Vec<u8>)> {
        FAKE.with(|fake| fake.borrow().writes.clone())
    }

    pub(crate) fn start_kv(store: u32, req: KvRequest) -> OpId {
        FAKE.with(|fake| {
            let mut fake = fake.borrow_mut();
            let op = fake.next_op();
            let name = fake.stores.name(store);
            fake.kv.push((op, name, req));
            op
        })
    }

    pub(crate) fn kv_ops() -> Vec<(OpId, String, KvRequest)> {
        FAKE.with(|fake| fake.borrow().kv.clone())
    }

    /// Runs `f` on this thread's fake stores.
    pub(crate) fn with_stores<T>(f: impl FnOnce(&mut FakeStores) -> T) -> T {
        FAKE.with(|fake| f(&mut fake.borrow_mut().stores))
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
