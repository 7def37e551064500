//! What a Store holds for its instance: the sandboxed WASI context, memory
//! limits, and the host operations the current guest call started.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{snow, KvError, OpId, OutgoingRequest, RequestId};
use super::call_clock::CallClock;
use super::limiter::Limiter;
use super::module::GuestLimits;
use super::wasi_nonblocking::HasTable;
use super::wit;
use crate::kv::{self, Grants, Op};

/// The longest timer a module may start: beyond it no request lives anyway.
pub const MAX_TIMER: Duration = Duration::from_secs(24 * 60 * 60);

/// How many operations one guest call may start; a module that loops
/// starting timers traps instead of filling host memory.
pub const MAX_OPS_PER_CALL: usize = 4096;

/// A host operation a guest call asked for, started by the worker after the
/// call returns.
#[derive(Debug, Clone)]
pub struct StartedOp {
    pub request: RequestId,
    pub op: OpId,
    pub kind: OpKind,
}

#[derive(Debug, Clone)]
pub enum OpKind {
    Timer(Duration),
    Fetch(Box<OutgoingRequest>),
    /// On the store behind handle `store`; an op the module gave unusable
    /// arguments for carries the error it completes with.
    Kv {
        store: u32,
        op: Result<Op, kv::KvError>,
    },
    /// The next bytes of the request's body, at most this many (0: the
    /// host's chunk).
    ReadBody(u32),
    /// More of the request's streamed response.
    WriteBody(Vec<u8>),
    /// The next bytes of a streamed fetch's body.
    ReadFetched {
        body: u32,
        max: u32,
    },
    /// A streamed fetch's body sent on as the streamed response.
    PipeFetched(u32),
}

/// Requests from the guest gathered during one call.
#[derive(Debug, Default)]
pub struct Effects {
    pub started: Vec<StartedOp>,
    pub forgotten: Vec<OpId>,
    /// Bytes the started ops carry (bodies, values), held by the host.
    pub bytes: usize,
    /// The first `outbound.relay` of the call.
    pub relay: Option<Box<Relay>>,
    /// How many times the call relayed; more than once is refused.
    pub relays: u32,
}

/// A module's `outbound.relay`: the request whose response answers the
/// current one, and the fields set over the upstream's.
#[derive(Debug)]
pub struct Relay {
    pub req: OutgoingRequest,
    pub headers: Vec<u8>,
}

impl Effects {
    /// Whether the call relayed at all, once or more.
    pub fn relayed(&self) -> bool {
        self.relays > 0
    }

    /// The call's relay, unless it relayed more than once.
    pub fn take_relay(&mut self) -> Result<Box<Relay>, &'static str> {
        match (self.relay.take(), self.relays) {
            (Some(relay), 1) => Ok(relay),
            (Some(_), _) => Err("relayed more than once"),
            (None, _) => Err("answered a request it did not relay"),
        }
    }
}

/// The bytes an outbound request hands to the host.
fn request_bytes(req: &OutgoingRequest) -> usize {
    req.body.len() + req.url.len() + req.headers.len()
}

impl OpKind {
    /// The bytes the op hands to the host: what it costs to hold.
    fn bytes(&self) -> usize {
        match self {
            OpKind::Fetch(req) => request_bytes(req),
            OpKind::WriteBody(chunk) => chunk.len(),
            OpKind::Kv { op: Ok(op), .. } => op.bytes(),
            _ => 0,
        }
    }
}

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: Limiter,
    /// The request whose `handle`/`resume` is running, if any.
    pub current: Option<RequestId>,
    pub effects: Effects,
    /// Kept across instance rebuilds so an old op id never names a new op.
    pub next_op: OpId,
    /// The stores the module may open.
    grants: Grants,
    /// What one call's ops may carry in all: the module's memory limit, so
    /// a guest copying its memory into many ops cannot hold more of the
    /// host's than its own.
    max_effect_bytes: usize,
    /// What stops a call that runs too long.
    pub clock: CallClock,
}

impl HostState {
    pub fn new(module: &Arc<str>, guest: &GuestLimits, next_op: OpId, grants: Grants) -> Self {
        let max_memory = guest.max_memory;
        let wasi = super::sandbox::wasi_ctx(module, &guest.env);
        let limits = Limiter::new(max_memory);
        Self {
            wasi,
            table: super::sandbox::resource_table(),
            limits,
            current: None,
            effects: Effects::default(),
            next_op,
            grants,
            max_effect_bytes: max_memory,
            clock: CallClock::new(guest.call_ticks),
        }
    }

    /// Whether no host resource (a stream, a pollable) is alive.
    pub fn resources_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn start_kv(&mut self, store: u32, op: Result<Op, kv::KvError>) -> wasmtime::Result<OpId> {
        self.start_op(OpKind::Kv { store, op })
    }

    fn start_op(&mut self, kind: OpKind) -> wasmtime::Result<OpId> {
        let request = self.current_request("a host operation")?;
        if self.effects.started.len() >= MAX_OPS_PER_CALL {
            wasmtime::bail!("more than {MAX_OPS_PER_CALL} host operations started in one call");
        }
        self.charge(kind.bytes())?;
        self.next_op += 1;
        let op = self.next_op;
        self.effects.started.push(StartedOp { request, op, kind });
        Ok(op)
    }
}

impl HostState {
    /// The request whose call is running; `what` names what the module
    /// tried to start outside of one.
    fn current_request(&self, what: &str) -> wasmtime::Result<RequestId> {
        match self.current {
            Some(request) => Ok(request),
            None => wasmtime::bail!("{what} was started outside of handle or resume"),
        }
    }

    /// Counts `carried` bytes against what one call's operations may hand
    /// the host.
    fn charge(&mut self, carried: usize) -> wasmtime::Result<()> {
        let bytes = self.effects.bytes.saturating_add(carried);
        if bytes > self.max_effect_bytes {
            wasmtime::bail!(
                "host operations started in one call carry more than {} bytes",
                self.max_effect_bytes
            );
        }
        self.effects.bytes = bytes;
        Ok(())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HasTable for HostState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl snow::http::types::Host for HostState {}

impl snow::http::timers::Host for HostState {
    fn start(&mut self, ms: u64) -> wasmtime::Result<OpId> {
        let delay = Duration::from_millis(ms).min(MAX_TIMER);
        self.start_op(OpKind::Timer(delay))
    }
}

impl snow::http::outbound::Host for HostState {
    fn fetch(&mut self, req: OutgoingRequest) -> wasmtime::Result<OpId> {
        self.start_op(OpKind::Fetch(Box::new(req)))
    }

    /// Only noted here: what the call returns decides whether the relay
    /// stands (see the dispatcher).
    fn relay(&mut self, req: OutgoingRequest, headers: Vec<u8>) -> wasmtime::Result<()> {
        self.current_request("a relay")?;
        self.effects.relays = self.effects.relays.saturating_add(1);
        if self.effects.relay.is_some() {
            return Ok(());
        }
        self.charge(request_bytes(&req) + headers.len())?;
        self.effects.relay = Some(Box::new(Relay { req, headers }));
        Ok(())
    }
}

impl snow::http::ops::Host for HostState {
    fn forget(&mut self, op: OpId) -> wasmtime::Result<()> {
        // Ops started in this same call are not running yet: drop them here.
        if let Some(pos) = self.effects.started.iter().position(|s| s.op == op) {
            self.effects.started.remove(pos);
        } else if self.effects.forgotten.len() < MAX_OPS_PER_CALL {
            self.effects.forgotten.push(op);
        } else {
            wasmtime::bail!("more than {MAX_OPS_PER_CALL} operations forgotten in one call");
        }
        Ok(())
    }
}

impl snow::http::streams::Host for HostState {
    fn read_body(&mut self, max: u32) -> wasmtime::Result<OpId> {
        self.start_op(OpKind::ReadBody(max))
    }

    fn write_body(&mut self, chunk: Vec<u8>) -> wasmtime::Result<OpId> {
        self.start_op(OpKind::WriteBody(chunk))
    }

    fn read_fetched(&mut self, body: u32, max: u32) -> wasmtime::Result<OpId> {
        self.start_op(OpKind::ReadFetched { body, max })
    }

    fn pipe_fetched(&mut self, body: u32) -> wasmtime::Result<OpId> {
        self.start_op(OpKind::PipeFetched(body))
    }
}

impl snow::http::kv::Host for HostState {
    fn open(&mut self, name: String) -> wasmtime::Result<Result<u32, KvError>> {
        Ok(self.grants.open(&name).map_err(wit::kv_error))
    }

    fn get(&mut self, store: u32, key: String) -> wasmtime::Result<OpId> {
        self.start_kv(store, Ok(Op::Get { key }))
    }

    fn set(
        &mut self,
        store: u32,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<OpId> {
        let op = kv::op::ttl(ttl_ms).map(|ttl| Op::Set { key, value, ttl });
        self.start_kv(store, op)
    }

    fn delete(&mut self, store: u32, key: String) -> wasmtime::Result<OpId> {
        self.start_kv(store, Ok(Op::Delete { key }))
    }

    fn exists(&mut self, store: u32, key: String) -> wasmtime::Result<OpId> {
        self.start_kv(store, Ok(Op::Exists { key }))
    }

    fn list_keys(
        &mut self,
        store: u32,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<OpId> {
        let limit = kv::op::page_size(limit);
        self.start_kv(
            store,
            Ok(Op::ListKeys {
                prefix,
                cursor,
                limit,
            }),
        )
    }

    fn increment(&mut self, store: u32, key: String, delta: i64) -> wasmtime::Result<OpId> {
        self.start_kv(store, Ok(Op::Increment { key, delta }))
    }

    fn compare_and_swap(
        &mut self,
        store: u32,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<OpId> {
        let op = kv::op::ttl(ttl_ms).map(|ttl| Op::CompareAndSwap {
            key,
            expected,
            value,
            ttl,
        });
        self.start_kv(store, op)
    }
}
