//! Standard `wasi:http/proxy` components (WASI 0.2): what their store holds,
//! what they are linked against, and one instance's call of
//! `incoming-handler.handle`.
//!
//! They get all of WASI 0.2 and `wasi:http`, bound async: a blocking
//! `wasi:io` call (a pollable's `block`, a blocking read) suspends the
//! instance's fiber and lets the worker serve other requests, where a Snow
//! module would trap. They are denied what Snow modules are denied (no
//! preopens, no sockets, no name lookups), and their outbound requests go
//! through Snow's client and the module's allow-list ([`Outbound`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::error::Context as _;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostIncomingRequest, HostResponseOutparam};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::instance::{describe, Trap};
use super::limiter::Limiter;
use super::module::{GuestLimits, LoadedModule};
pub use super::proxy_outbound::Outbound;

/// Bytes one `fields` resource may hold (wasmtime counts its in-memory
/// form): a 64 KiB header section and then some.
const MAX_FIELDS_SIZE: usize = 128 << 10;

/// What the component answered through its `response-outparam`.
pub type Answer = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;

pub struct ProxyState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: Limiter,
    outbound: Outbound,
    /// Epoch ticks the current request has been seen running since it
    /// began or last handed the host a piece of its response body.
    ticks: Arc<AtomicU64>,
    /// Ticks a request may run, all its calls and waits together.
    call_ticks: u64,
}

impl ProxyState {
    pub fn new(module: &Arc<str>, limits: &GuestLimits, outbound: Outbound) -> Self {
        Self {
            wasi: super::sandbox::wasi_ctx(module, &limits.env),
            http: {
                // A header section as large as a request head may be; with
                // the resource cap it bounds what fields can hold.
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(MAX_FIELDS_SIZE);
                http
            },
            table: super::sandbox::resource_table(),
            limits: Limiter::new(limits.max_memory),
            outbound,
            ticks: Arc::default(),
            call_ticks: limits.call_ticks,
        }
    }

    pub fn limiter(&mut self) -> &mut Limiter {
        &mut self.limits
    }

    /// Whether no host resource (a stream, a pollable) is alive.
    pub fn resources_empty(&self) -> bool {
        self.table.is_empty()
    }
}

impl WasiView for ProxyState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for ProxyState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// All of WASI 0.2 and `wasi:http`, bound async.
pub fn linker(engine: &Engine) -> Result<Linker<ProxyState>> {
    let mut l = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut l).context("linking WASI")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut l).context("linking wasi:http")?;
    Ok(l)
}

/// The same, bound sync: for a component's start-up before its snapshot,
/// which runs outside any worker and never waits.
pub fn sync_linker(engine: &Engine) -> Result<Linker<ProxyState>> {
    let mut l = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut l).context("linking WASI")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut l).context("linking wasi:http")?;
    Ok(l)
}

/// One instance of a standard component, serving one request at a time.
pub struct ProxyInstance {
    store: Store<ProxyState>,
    proxy: Proxy,
}

impl ProxyInstance {
    pub async fn new(
        module: &LoadedModule,
        pre: &ProxyPre<ProxyState>,
        outbound: Outbound,
    ) -> Result<Self> {
        let mut store = new_store(module, outbound);
        // A request's code may run `call_ticks` ticks in all. Each tick
        // it is seen running it also yields, so one busy component cannot
        // hold the worker's other requests back; a wait on a pollable
        // costs at most the one tick that ends it.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| {
            let state = cx.data_mut();
            let ticks = state.ticks.fetch_add(1, Ordering::Relaxed) + 1;
            Ok(if ticks >= state.call_ticks {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let proxy = pre
            .instantiate_async(&mut store)
            .await
            .context("instantiating the component")?;
        Ok(Self { store, proxy })
    }

    /// Instantiates the component once, with no outbound client, which
    /// proves it starts: what a deploy checks before mounting it. Off any
    /// worker, it is stopped at the CPU limit rather than made to yield.
    pub fn probe(module: &LoadedModule, pre: &ProxyPre<ProxyState>) -> Result<()> {
        let mut store = new_store(module, Outbound::denied(module.name.clone()));
        store.set_epoch_deadline(module.limits.call_ticks);
        store.epoch_deadline_trap();
        super::ready::now_or_never(pre.instantiate_async(&mut store))
            .ok_or_else(|| anyhow::anyhow!("the component waited on I/O while it started"))?
            .context("instantiating the component")?;
        Ok(())
    }

    /// Puts `request` and a `response-outparam` into the instance's table;
    /// the answer comes through the returned receiver.
    pub fn prepare<B>(&mut self, request: hyper::Request<B>) -> Result<Prepared>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut http = self.store.data_mut().http();
        let request = http
            .new_incoming_request(Scheme::Http, request)
            .context("passing the request")?;
        let out = http
            .new_response_outparam(tx)
            .context("passing the response-outparam")?;
        Ok(Prepared {
            request,
            out,
            answer: rx,
        })
    }

    /// The request's CPU budget, which a streaming response renews with
    /// each piece of body the host takes: a long stream is not one long
    /// call, as a Snow module's is not.
    pub fn budget(&self) -> Budget {
        Budget(self.store.data().ticks.clone())
    }

    /// Runs `incoming-handler.handle`. A trap leaves the store unusable:
    /// the caller drops the instance.
    pub async fn handle(
        &mut self,
        request: Resource<HostIncomingRequest>,
        out: Resource<HostResponseOutparam>,
        max_memory: usize,
    ) -> Result<(), Trap> {
        let data = self.store.data_mut();
        data.ticks.store(0, Ordering::Relaxed);
        data.limits.take_refusal();
        self.store.set_epoch_deadline(1);
        let result = self
            .proxy
            .wasi_http_incoming_handler()
            .call_handle(&mut self.store, request, out)
            .await;
        result.map_err(|err| {
            let refused = self.store.data_mut().limits.take_refusal();
            let (kind, reason) = describe(&err, refused, max_memory);
            Trap { reason, kind }
        })
    }
}

fn new_store(module: &LoadedModule, outbound: Outbound) -> Store<ProxyState> {
    let state = ProxyState::new(&module.name, &module.limits, outbound);
    let mut store = Store::new(&module.engine, state);
    store.limiter(|s| &mut s.limits);
    store
}

/// See [`ProxyInstance::budget`].
#[derive(Clone)]
pub struct Budget(Arc<AtomicU64>);

impl Budget {
    pub fn renew(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// A request handed to an instance, not yet run.
pub struct Prepared {
    pub request: Resource<HostIncomingRequest>,
    pub out: Resource<HostResponseOutparam>,
    pub answer: tokio::sync::oneshot::Receiver<Answer>,
}

/// Reads a response body whole, refusing one larger than `limit`: the
/// host holds it, so the module's memory limit bounds it as it bounds a
/// Snow module's response.
pub async fn read_body(body: HyperOutgoingBody, limit: usize) -> Result<Vec<u8>, String> {
    match http_body_util::Limited::new(body, limit).collect().await {
        // Without a copy when the body came as one buffer.
        Ok(collected) => Ok(Vec::from(collected.to_bytes())),
        Err(err) => Err(err.to_string()),
    }
}
