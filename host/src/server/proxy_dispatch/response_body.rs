//! A standard component's response body, sent as the component writes it.
//!
//! A body the component writes at once (or before it waits on anything)
//! comes whole, as the fast path always had it. Once the component waits
//! with its body unfinished (an event stream between events, a body larger
//! than one chunk, a component relaying a slow upstream), the head and the
//! bytes so far go out and the rest streams: the instance moves into a
//! task of its own that runs `handle` on while its body is relayed, at the
//! client's pace.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper::body::Body as _;
use tokio::sync::mpsc;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::http::stream::{Outflow, CHUNK};
use crate::metrics::ModuleMetrics;
use crate::runtime::proxy::{Budget, ProxyInstance};
use crate::runtime::ready::now_or_never;
use crate::runtime::Trap;

/// A running `handle` call that owns its instance and gives it back.
pub type Call = Pin<Box<dyn Future<Output = (ProxyInstance, Result<(), Trap>)> + Send>>;

/// How the body began.
pub enum Begun {
    /// Complete, while `handle` still runs.
    Whole(Vec<u8>, Call),
    /// The first bytes; the rest streams from the body while `call` runs.
    Stream(Vec<u8>, Call),
    /// `handle` returned: the instance, and the body read whole.
    Returned(ProxyInstance, Vec<u8>),
    Failed(Trap),
    Invalid(String),
}

/// Reads what the component writes until its body is complete, or until
/// it waits with the body unfinished (then the body streams), or past
/// one chunk while `handle` still runs. `limit` bounds a body read whole;
/// each piece the component hands over renews its `budget`.
pub async fn begin(
    mut call: Call,
    mut body: HyperOutgoingBody,
    limit: usize,
    budget: &Budget,
) -> (Begun, HyperOutgoingBody) {
    let mut first = Vec::new();
    let mut returned = None;
    let mut waited = false;
    let begun = std::future::poll_fn(|cx| loop {
        let mut took = false;
        loop {
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    took = true;
                    budget.renew();
                    if let Ok(data) = frame.into_data() {
                        first.extend_from_slice(&data);
                    }
                    if first.len() > limit {
                        return Poll::Ready(Step::Invalid(format!(
                            "reading the response body: more than {limit} bytes"
                        )));
                    }
                    if first.len() >= CHUNK && returned.is_none() {
                        return Poll::Ready(Step::Stream);
                    }
                }
                Poll::Ready(Some(Err(err))) => {
                    return Poll::Ready(Step::Invalid(format!("reading the response body: {err}")))
                }
                Poll::Ready(None) => return Poll::Ready(Step::Whole),
                Poll::Pending => break,
            }
        }
        if returned.is_some() {
            // What it wrote before returning is on its way.
            return Poll::Pending;
        }
        // The component waited, and its waiting produced nothing more.
        if waited && !took {
            return Poll::Ready(Step::Stream);
        }
        match call.as_mut().poll(cx) {
            Poll::Ready((instance, Ok(()))) => returned = Some(instance),
            Poll::Ready((_, Err(trap))) => return Poll::Ready(Step::Failed(trap)),
            Poll::Pending => waited = true,
        }
    })
    .await;
    let begun = match (begun, returned) {
        (Step::Whole, Some(instance)) => Begun::Returned(instance, first),
        (Step::Whole, None) => Begun::Whole(first, call),
        (Step::Stream, _) => Begun::Stream(first, call),
        (Step::Failed(trap), _) => Begun::Failed(trap),
        (Step::Invalid(detail), _) => Begun::Invalid(detail),
    };
    (begun, body)
}

enum Step {
    Whole,
    Stream,
    Failed(Trap),
    Invalid(String),
}

/// What a streaming exchange needs once its answer is out.
pub struct Relay {
    pub module: Arc<str>,
    pub stats: Arc<ModuleMetrics>,
    pub idle: Arc<Idle>,
    /// How long `handle` may run on once the body is complete.
    pub finish_within: Duration,
    pub budget: Budget,
    /// Holds the request's place under the concurrency limit.
    pub _running: Running,
}

impl Relay {
    /// Relays `body` into `out` while `call` runs; the instance serves
    /// again only when both ended well. Dropping `out` unfinished cuts the
    /// client's response off.
    pub async fn run(
        self,
        mut call: Call,
        mut body: HyperOutgoingBody,
        out: mpsc::Sender<Outflow>,
    ) {
        let mut instance = None;
        let mut finished = false;
        while !finished {
            tokio::select! {
                (back, result) = &mut call, if instance.is_none() => match result {
                    Ok(()) => instance = Some(back),
                    Err(trap) => {
                        // What it wrote before the trap still goes out
                        // before the cut.
                        drop(back);
                        relay_written(&mut body, &out).await;
                        return self.trapped(trap);
                    }
                },
                frame = body.frame() => match frame {
                    Some(Ok(frame)) => {
                        self.budget.renew();
                        let Ok(data) = frame.into_data() else { continue };
                        if !data.is_empty() && out.send(Outflow::Data(Vec::from(data))).await.is_err() {
                            // The client left: the instance goes, mid-call.
                            return;
                        }
                    }
                    Some(Err(err)) => {
                        tracing::warn!(module = %self.module, "a component's response body broke off: {err}");
                        return;
                    }
                    None => {
                        if out.send(Outflow::End).await.is_err() {
                            return;
                        }
                        finished = true;
                    }
                },
                () = out.closed() => return,
            }
        }
        let instance = match instance {
            Some(instance) => instance,
            None => match tokio::time::timeout(self.finish_within, call).await {
                Ok((instance, Ok(()))) => instance,
                Ok((_, Err(trap))) => return self.trapped(trap),
                Err(_) => {
                    tracing::warn!(module = %self.module, "a component ran on past its response's end; its instance was dropped");
                    return;
                }
            },
        };
        self.idle.keep(instance);
    }

    fn trapped(&self, trap: Trap) {
        tracing::error!(module = %self.module, reason = %trap.reason, "component trapped mid-stream; its response was cut off and its instance dropped");
        self.stats.trap(trap.kind);
    }
}

/// Sends on the pieces of `body` already written, without waiting for
/// more.
async fn relay_written(body: &mut HyperOutgoingBody, out: &mpsc::Sender<Outflow>) {
    while let Some(Some(Ok(frame))) = now_or_never(body.frame()) {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if out.send(Outflow::Data(Vec::from(data))).await.is_err() {
            return;
        }
    }
}

/// Finished instances kept for reuse, when their module reuses them:
/// where an exchange ended, here or in a relay, it gives its instance back.
pub struct Idle {
    instances: Mutex<Vec<ProxyInstance>>,
    /// Kept at most; 0 when instances are not reused.
    max: usize,
}

impl Idle {
    pub fn new(max: usize) -> Self {
        Self {
            instances: Mutex::new(Vec::new()),
            max,
        }
    }

    pub fn keep(&self, instance: ProxyInstance) {
        let mut instances = self.lock();
        if instances.len() < self.max {
            instances.push(instance);
            return;
        }
        // Dropped outside the lock: freeing an instance takes a while.
        drop(instances);
        drop(instance);
    }

    pub fn take(&self) -> Option<ProxyInstance> {
        self.lock().pop()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ProxyInstance>> {
        // Holds only instances that were whole when kept.
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counts a request against the concurrency limit while it runs, its
/// streamed response included.
pub struct Running(Arc<AtomicUsize>);

impl Running {
    /// A place under `max`, if one is free.
    pub fn enter(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Self(count.clone()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
