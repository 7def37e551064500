//! Runs requests through a standard `wasi:http/proxy` component: one
//! request per instance at a time. Under request isolation (their default)
//! every request gets a fresh instance; under instance isolation the
//! workers keep finished instances and hand each to one request at a time.
//!
//! The component's blocking calls suspend its fiber, so a worker serves
//! its other requests meanwhile. Every way a request can end becomes a
//! response here, as in [`super::dispatch`]: the module's answer, 500 when
//! it traps, answers invalidly or never answers, 503 at the concurrency
//! limit, 504 past the request timeout.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::dispatch::{answer, DispatchLimits};
use crate::config::Isolation;
use crate::http;
use crate::metrics::{Metrics, ModuleMetrics, Refusal};
use crate::outbound::{AllowList, Client};
use crate::runtime::bindings::Request;
use crate::runtime::module::Linked;
use crate::runtime::proxy::{self, Outbound, ProxyInstance};
use crate::runtime::wit;
use crate::runtime::{LoadedModule, Trap, World};

mod response_body;

use response_body::{Begun, Call, Idle, Relay, Running};

/// Finished instances kept for reuse, per module version.
const MAX_IDLE: usize = 64;

pub struct ProxyDispatcher {
    module: Arc<LoadedModule>,
    client: Client,
    allow: Arc<AllowList>,
    metrics: Arc<Metrics>,
    stats: Arc<ModuleMetrics>,
    idle: Arc<Idle>,
    running: Arc<AtomicUsize>,
    max_running: usize,
    request_timeout: Duration,
    stream_idle: Duration,
}

/// How a request ended, before it becomes a response.
enum Ended {
    Answered(http::Response),
    Failed(Trap),
    /// The module broke the protocol (no answer, a bad body); logged.
    Invalid(String),
    /// No instance could be made (the pool is full, say); logged.
    NoInstance,
}

impl ProxyDispatcher {
    pub fn new(
        module: Arc<LoadedModule>,
        limits: DispatchLimits,
        metrics: Arc<Metrics>,
        client: Client,
    ) -> Arc<Self> {
        let stats = metrics.module(&module.name);
        let reuse = module.limits.isolation(World::Proxy) == Isolation::Instance;
        Arc::new(Self {
            allow: Arc::new(module.limits.allow_outbound.clone()),
            module,
            client,
            metrics,
            stats,
            idle: Arc::new(Idle::new(if reuse { MAX_IDLE } else { 0 })),
            running: Arc::default(),
            max_running: limits.max_parked,
            request_timeout: limits.request_timeout,
            stream_idle: limits.stream_idle,
        })
    }

    pub fn module_name(&self) -> &Arc<str> {
        &self.module.name
    }

    pub fn stats(&self) -> &ModuleMetrics {
        &self.stats
    }

    /// Runs `req` through the component and answers how it ended; `rest`
    /// is the part of its body still streaming in, which the component
    /// reads from its `incoming-body` as it arrives.
    pub async fn call(&self, req: &Request, rest: Option<http::BodyIn>) -> http::Response {
        let Some(running) = Running::enter(&self.running, self.max_running) else {
            self.metrics.refused(Refusal::Parked);
            tracing::warn!(module = %self.module.name, limit = "parked", "request refused");
            return answer::at_limit();
        };
        let request = match incoming(req, rest) {
            Ok(request) => request,
            Err(detail) => return http::Response::plain(400, detail),
        };
        let ended = tokio::time::timeout(self.request_timeout, self.run(request, running)).await;
        match ended {
            Ok(Ended::Answered(response)) => response,
            Ok(Ended::Failed(trap)) => {
                tracing::error!(module = %self.module.name, reason = %trap.reason, "component trapped; its instance was dropped");
                self.stats.trap(trap.kind);
                answer::failed()
            }
            Ok(Ended::Invalid(detail)) => {
                tracing::error!(module = %self.module.name, "{detail}");
                answer::invalid()
            }
            Ok(Ended::NoInstance) => answer::at_limit(),
            // Dropping the run dropped its instance mid-call: it is not reused.
            Err(_) => answer::timed_out(),
        }
    }

    async fn run(&self, request: hyper::Request<http::StreamedBody>, running: Running) -> Ended {
        let instance = match self.instance().await {
            Ok(instance) => instance,
            Err(err) => {
                tracing::warn!(module = %self.module.name, "no instance for a request: {err:#}");
                return Ended::NoInstance;
            }
        };
        let (ended, instance) = self.exchange(instance, request, running).await;
        // Only an instance that answered properly serves again: after a
        // trap its store is unusable, after a broken answer it is suspect.
        if let Some(instance) = instance {
            self.keep(instance);
        }
        ended
    }

    fn keep(&self, instance: ProxyInstance) {
        self.idle.keep(instance);
    }

    /// One request through `instance`: its head, then its body, read while
    /// `handle` writes it; a body still being written when the component
    /// waits streams from a task that takes the instance along. The
    /// instance comes back when the exchange ended here and well.
    async fn exchange(
        &self,
        mut instance: ProxyInstance,
        request: hyper::Request<http::StreamedBody>,
        running: Running,
    ) -> (Ended, Option<ProxyInstance>) {
        let prepared = match instance.prepare(request) {
            Ok(prepared) => prepared,
            Err(err) => {
                return (
                    Ended::Invalid(format!("passing the request: {err:#}")),
                    None,
                )
            }
        };
        let max_memory = self.module.limits.max_memory;
        let mut answer = prepared.answer;
        let (request, out) = (prepared.request, prepared.out);
        let budget = instance.budget();
        let mut call: Call = Box::pin(async move {
            let result = instance.handle(request, out, max_memory).await;
            (instance, result)
        });
        // The head comes through the outparam while `handle` runs; the body
        // is written after it, so `handle` keeps running while it is read.
        let mut returned = None;
        let head = tokio::select! {
            head = &mut answer => head.ok(),
            (instance, result) = &mut call => {
                if let Err(trap) = result {
                    return (Ended::Failed(trap), None);
                }
                returned = Some(instance);
                answer.try_recv().ok()
            }
        };
        let Some(head) = head else {
            let detail = "the component returned without setting a response";
            return (Ended::Invalid(detail.into()), None);
        };
        let head = match head {
            Ok(head) => head,
            Err(code) => {
                let detail = format!("the component answered with an error: {code:?}");
                return (Ended::Invalid(detail), None);
            }
        };
        let (parts, body) = head.into_parts();
        let status = parts.status.as_u16();
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
            .collect();
        if let Some(instance) = returned {
            let whole = |body| whole(status, headers, body);
            return match proxy::read_body(body, max_memory).await {
                Ok(body) => (whole(body), Some(instance)),
                Err(err) => (
                    Ended::Invalid(format!("reading the response body: {err}")),
                    None,
                ),
            };
        }
        let (begun, body) = response_body::begin(call, body, max_memory, &budget).await;
        let whole = |body| whole(status, headers.clone(), body);
        match begun {
            Begun::Returned(instance, body) => (whole(body), Some(instance)),
            Begun::Whole(body, call) => match call.await {
                (instance, Ok(())) => (whole(body), Some(instance)),
                (_, Err(trap)) => (Ended::Failed(trap), None),
            },
            Begun::Failed(trap) => (Ended::Failed(trap), None),
            Begun::Invalid(detail) => (Ended::Invalid(detail), None),
            Begun::Stream(first, call) => {
                let (tx, rest) = http::BodyOut::channel();
                let response = match http::Response::streamed(status, headers, first, rest) {
                    Ok(response) => response,
                    Err(err) => {
                        let detail = format!("the component's response: {err}");
                        return (Ended::Invalid(detail), None);
                    }
                };
                let relay = Relay {
                    module: self.module.name.clone(),
                    stats: self.stats.clone(),
                    idle: self.idle.clone(),
                    finish_within: self.request_timeout,
                    budget,
                    _running: running,
                };
                tokio::spawn(relay.run(call, body, tx));
                (Ended::Answered(response), None)
            }
        }
    }

    async fn instance(&self) -> anyhow::Result<ProxyInstance> {
        if let Some(instance) = self.idle.take() {
            return Ok(instance);
        }
        let Linked::Proxy(pre) = &self.module.linked else {
            anyhow::bail!("{} is not a wasi:http/proxy component", self.module.name);
        };
        let outbound = Outbound {
            client: Some(self.client.clone()),
            allow: self.allow.clone(),
            module: self.module.name.clone(),
            max_body: self.module.limits.max_memory,
            stream_idle: self.stream_idle,
        };
        ProxyInstance::new(&self.module, pre, outbound).await
    }
}

fn whole(status: u16, headers: Vec<(String, Vec<u8>)>, body: Vec<u8>) -> Ended {
    match http::Response::new(status, headers, body) {
        Ok(response) => Ended::Answered(response),
        Err(err) => Ended::Invalid(format!("the component's response: {err}")),
    }
}

/// The request as `wasi:http` passes it: the path as the client sent it
/// (mount prefix included, as `wasmtime serve` and Spin pass it), with the
/// client's `Host` as its authority.
fn incoming(
    req: &Request,
    rest: Option<http::BodyIn>,
) -> Result<hyper::Request<http::StreamedBody>, &'static str> {
    let head = wit::view(req);
    let mut path = head.full_path.to_owned();
    if !head.query.is_empty() {
        path.push('?');
        path.push_str(head.query);
    }
    // The host wrote these fields: none is malformed.
    let fields = || http::fields::iter(head.fields).flatten();
    let host = fields()
        .find(|(name, _)| name.eq_ignore_ascii_case("host"))
        .map_or(&b"localhost"[..], |(_, value)| value);
    let authority = ::http::uri::Authority::try_from(host).map_err(|_| "invalid Host header")?;
    let uri = ::http::Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|_| "invalid request target")?;
    let mut builder = hyper::Request::builder().method(head.method).uri(uri);
    for (name, value) in fields() {
        builder = builder.header(name, value);
    }
    builder
        .body(http::StreamedBody::new(
            Bytes::copy_from_slice(&req.body),
            rest,
        ))
        .map_err(|_| "invalid request head")
}

/// What a component's `incoming-body` reports when the client's body
/// breaks off.
impl From<http::BodyError> for wasmtime_wasi_http::Error {
    fn from(err: http::BodyError) -> Self {
        match err {
            http::BodyError::TooLarge(limit) => Self::HttpRequestBodySize(Some(limit)),
            http::BodyError::Broken(detail) => Self::InternalError(Some(detail)),
        }
    }
}
