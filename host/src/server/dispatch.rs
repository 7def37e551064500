//! Runs requests through the module and parks those whose handler awaits
//! host operations, resuming each when its operation completes, until the
//! request's deadline. Every way a request can end becomes a response here.
//!
//! A dispatcher serves every worker thread. It has one slot per worker:
//! an instance (when requests share one) and the requests parked in it,
//! under a lock. A request starts in the slot of the thread that runs it,
//! or in any other that is free, and stays in that slot until it ends,
//! while the connection's task may move between threads: a thread the
//! kernel preempts holds up only the call it is in, not its connections.
//! A parked request costs a map entry and one task per operation; it is
//! woken by that task, never by scanning.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use rustc_hash::FxHashMap;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use self::streams::{BodyState, FetchedBodies, StreamOut};
use crate::config::Isolation;
use crate::http;
use crate::kv;
use crate::metrics::{Metrics, ModuleMetrics, Refusal};
use crate::outbound::{AllowList, Client};
use crate::runtime::bindings::{Completion, OpId, Poll, Request, RequestId, Response};
use crate::runtime::state::{Effects, OpKind, StartedOp};
use crate::runtime::{wit, Instance, LoadedModule, Trap};

mod relay;
mod streams;

/// How a request ended, or for a streamed response, how it goes on.
#[derive(Debug)]
enum Reply {
    Response(Response),
    /// A relay for the connection's task to run (`outbound.relay`).
    Relay(Box<relay::Relaying>),
    /// An upstream's response, relayed by the host.
    Relayed(http::Response),
    /// The head and first bytes of a streamed response, and the rest.
    Streaming(Response, http::BodyOut),
    /// The module broke the contract (named here); the request was dropped.
    Broken(&'static str),
    Failed(Trap),
    /// The request outlived its deadline; it was cancelled.
    TimedOut,
    /// A limit was reached (named here); the request was not run or was
    /// cancelled.
    Refused(&'static str),
}

/// What `Dispatcher::start` produced.
enum Started {
    Done(Reply),
    Parked(Ticket),
}

struct Parked {
    /// Taken when the head is sent: by the reply, or by a streamed head.
    reply: Option<oneshot::Sender<Reply>>,
    ops: Vec<(OpId, AbortHandle)>,
    /// Store operations started so far, against `max_store_ops`.
    store_ops: usize,
    /// With per-request isolation, the request's own instance.
    own: Option<Instance>,
    /// The rest of the request body.
    body: BodyState,
    /// When a read of the body last delivered bytes: a request reading a
    /// long upload is not timed out while the upload moves.
    last_read: Option<tokio::time::Instant>,
    /// The streamed response, once its head is sent.
    stream: Option<StreamOut>,
    /// Bodies of streamed fetches, by handle.
    fetched: FetchedBodies,
}

impl Parked {
    /// A request just parked; its own instance, if any, goes in when the
    /// call that parked it has been acted on.
    fn new(reply: oneshot::Sender<Reply>, body: BodyState) -> Self {
        Self {
            reply: Some(reply),
            ops: Vec::new(),
            store_ops: 0,
            own: None,
            body,
            last_read: None,
            stream: None,
            fetched: FetchedBodies::default(),
        }
    }

    /// Stops everything the request still has running, its stream's
    /// writer included: a stream stopped this way is cut off.
    fn abort_ops(&mut self) {
        for (_, handle) in self.ops.drain(..) {
            handle.abort();
        }
        if let Some(stream) = self.stream.take() {
            stream.abort();
        }
    }

    /// Answers the request, unless its head is already sent.
    fn reply(&mut self, reply: Reply) {
        if let Some(tx) = self.reply.take() {
            // The connection may be gone already; then nobody wants it.
            let _ = tx.send(reply);
        }
    }
}

/// Bytes of a module's reason for giving up on a stream that the log shows.
const MAX_REASON: usize = 256;

pub struct Dispatcher {
    module: Arc<LoadedModule>,
    client: Client,
    allow: Arc<AllowList>,
    metrics: Arc<Metrics>,
    stats: Arc<ModuleMetrics>,
    /// One per worker thread.
    slots: Box<[Mutex<Slot>]>,
    /// Requests parked in one slot at most.
    max_parked: usize,
    /// A parked request not answered within this is cancelled (504).
    request_timeout: Duration,
    max_store_ops: usize,
    stream_idle: Duration,
}

/// An instance and the requests parked in it. Whoever holds the lock may
/// call the instance; nothing under it waits.
struct Slot {
    /// The slot's instance, when requests share one.
    shared: Option<Instance>,
    /// Keyed by ids this slot hands out, in sequence: no client chooses
    /// them, so a fast hash is safe. SipHash took 1,400 instructions of
    /// every proxied request.
    parked: FxHashMap<RequestId, Parked>,
    next_id: RequestId,
}

/// Bounds on the requests of one dispatcher.
#[derive(Debug, Clone, Copy)]
pub struct DispatchLimits {
    /// Worker threads, and so slots of a dispatcher.
    pub workers: usize,
    /// Requests that may be parked at once; more are refused (503).
    pub max_parked: usize,
    /// How long a request may take, parked time included (else 504).
    pub request_timeout: Duration,
    /// Store operations one request may start; more complete with
    /// `invalid` without reaching the store.
    pub max_store_ops: usize,
    /// A fetched body streaming in that is quiet this long is broken off.
    pub stream_idle: Duration,
}

impl Dispatcher {
    pub fn new(
        module: Arc<LoadedModule>,
        limits: DispatchLimits,
        metrics: Arc<Metrics>,
        client: Client,
    ) -> anyhow::Result<Arc<Self>> {
        let allow = module.limits.allow_outbound.clone();
        let shares = module.limits.isolation(crate::runtime::World::Snow) == Isolation::Instance;
        let slots = (0..limits.workers.max(1))
            .map(|_| {
                let shared = match shares {
                    true => Some(Instance::new(module.clone())?),
                    false => None,
                };
                Ok(Mutex::new(Slot {
                    shared,
                    parked: FxHashMap::default(),
                    next_id: 0,
                }))
            })
            .collect::<anyhow::Result<_>>()?;
        let stats = metrics.module(&module.name);
        Ok(Arc::new(Self {
            module,
            client,
            allow: Arc::new(allow),
            metrics,
            stats,
            slots,
            max_parked: limits.max_parked,
            request_timeout: limits.request_timeout,
            max_store_ops: limits.max_store_ops,
            stream_idle: limits.stream_idle,
        }))
    }

    pub fn module_name(&self) -> &Arc<str> {
        &self.module.name
    }

    pub fn stats(&self) -> &ModuleMetrics {
        &self.stats
    }

    #[cfg(test)]
    fn parked_count(&self) -> usize {
        (0..self.slots.len())
            .map(|at| self.lock(at).parked.len())
            .sum()
    }

    fn lock(&self, at: usize) -> MutexGuard<'_, Slot> {
        // A panic while the lock was held leaves the slot's data usable:
        // its requests end by their own paths.
        self.slots[at]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The slot a new request runs in: this thread's, or else the first
    /// free one, so that no request waits for a call running elsewhere
    /// while a slot is idle; when none is, this thread's, once free.
    fn claim(&self) -> (usize, MutexGuard<'_, Slot>) {
        let n = self.slots.len();
        let home = super::worker::index() % n;
        for at in (0..n).map(|i| (home + i) % n) {
            match self.slots[at].try_lock() {
                Ok(slot) => return (at, slot),
                Err(TryLockError::Poisoned(poisoned)) => return (at, poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        (home, self.lock(home))
    }

    /// Runs `req` through the module, parked while it waits for host
    /// operations, and answers how it ended: the module's response, or 500
    /// (it failed or answered something invalid), 503 (a limit was reached)
    /// or 504 (its deadline passed, and it was cancelled). `rest` is the
    /// part of the body still streaming in, which the module reads on.
    ///
    /// A streamed response comes back as soon as its head is ready; its
    /// body then flows from the module to the connection, and dropping the
    /// response cancels the request.
    pub async fn call(
        self: &Arc<Self>,
        req: &Request,
        rest: Option<http::BodyIn>,
    ) -> http::Response {
        let mut deadline = tokio::time::Instant::now() + self.request_timeout;
        let reply = match self.start(req, rest) {
            Started::Done(reply) => reply,
            Started::Parked(mut ticket) => loop {
                tokio::select! {
                    reply = ticket.wait() => break reply,
                    () = tokio::time::sleep_until(deadline) => {
                        match self.last_read(ticket.slot, ticket.id) {
                            Some(at) if at + self.request_timeout > deadline => {
                                deadline = at + self.request_timeout;
                            }
                            _ => break Reply::TimedOut,
                        }
                    }
                }
            },
        };
        match reply {
            Reply::Relay(relaying) => self.relay(*relaying, deadline).await,
            reply => self.respond(reply),
        }
    }

    fn last_read(&self, at: usize, id: RequestId) -> Option<tokio::time::Instant> {
        self.lock(at)
            .parked
            .get(&id)
            .and_then(|entry| entry.last_read)
    }

    fn respond(&self, reply: Reply) -> http::Response {
        match reply {
            Reply::Relayed(resp) => resp,
            Reply::Relay(_) => {
                tracing::error!(module = %self.module.name, "a relay was answered without running");
                answer::failed()
            }
            Reply::Response(resp) => match wit::response(resp) {
                Ok(resp) => resp,
                Err(err) => {
                    tracing::error!(
                        module = %self.module.name,
                        "module returned an invalid response: {err}"
                    );
                    answer::invalid()
                }
            },
            Reply::Streaming(resp, body) => match wit::streamed_response(resp, body) {
                Ok(resp) => resp,
                Err(err) => {
                    tracing::error!(
                        module = %self.module.name,
                        "module streamed an invalid response head: {err}"
                    );
                    answer::invalid()
                }
            },
            Reply::Broken(detail) => {
                tracing::error!(module = %self.module.name, "module broke the contract: {detail}");
                answer::invalid()
            }
            Reply::TimedOut => answer::timed_out(),
            Reply::Refused(limit) => {
                tracing::warn!(module = %self.module.name, limit, "request refused");
                answer::at_limit()
            }
            Reply::Failed(trap) => {
                tracing::debug!(reason = %trap.reason, "request failed in the module");
                answer::failed()
            }
        }
    }

    /// Hands `req` to the module.
    fn start(self: &Arc<Self>, req: &Request, rest: Option<http::BodyIn>) -> Started {
        // A request's own instance is built before it takes a slot: the
        // instantiation is most of such a request, and the slot's parked
        // requests need not wait for it.
        let mut own = match self.module.limits.isolation(crate::runtime::World::Snow) {
            Isolation::Instance => None,
            Isolation::Request => match Instance::new(self.module.clone()) {
                Ok(instance) => Some(instance),
                Err(err) => {
                    tracing::warn!(module = %self.module.name, "no instance for a request: {err:#}");
                    return Started::Done(Reply::Refused("instances"));
                }
            },
        };
        let (at, mut slot) = self.claim();
        let slot = &mut *slot;
        slot.next_id += 1;
        let id = slot.next_id;
        let result = match (&mut own, &mut slot.shared) {
            (Some(instance), _) => instance.handle(id, req),
            (None, Some(shared)) => shared.handle(id, req),
            // Slots are built with an instance exactly when requests share one.
            (None, None) => return Started::Done(Reply::Refused("instances")),
        };
        match result {
            Ok((poll, mut effects)) if effects.relayed() => {
                let finished = matches!(poll, Poll::Finished);
                let relay = effects.take_relay();
                match self.check_relay(slot, at, id, finished, relay, own) {
                    Ok(mut relaying) => {
                        relaying.forward(rest);
                        Started::Done(Reply::Relay(Box::new(relaying)))
                    }
                    Err(why) => Started::Done(Reply::Broken(why)),
                }
            }
            Ok((Poll::Ready(resp), effects)) => {
                self.apply(slot, at, id, effects);
                Started::Done(Reply::Response(resp))
            }
            Ok((Poll::Finished, _)) => {
                self.cancel_in(slot, at, id, own);
                Started::Done(Reply::Broken("finished a response it never streamed"))
            }
            Ok((poll, effects)) => {
                if slot.parked.len() >= self.max_parked {
                    self.cancel_in(slot, at, id, own);
                    self.metrics.refused(Refusal::Parked);
                    return Started::Done(Reply::Refused("parked"));
                }
                let (tx, rx) = oneshot::channel();
                self.stats.parked(1);
                let body = BodyState::new(rest);
                slot.parked.insert(id, Parked::new(tx, body));
                self.went_on(slot, at, id, poll, effects, own);
                Started::Parked(Ticket {
                    dispatcher: self.clone(),
                    slot: at,
                    id,
                    rx,
                    settled: false,
                })
            }
            Err(trap) => {
                let shared = own.is_none();
                self.on_trap(slot, &trap, shared);
                Started::Done(Reply::Failed(trap))
            }
        }
    }

    /// Starts the operations a guest call in slot `at` asked for and stops
    /// those it forgot. Operations of a request that is no longer parked
    /// are dropped.
    fn apply(self: &Arc<Self>, slot: &mut Slot, at: usize, current: RequestId, effects: Effects) {
        for op in effects.forgotten {
            if let Some(entry) = slot.parked.get_mut(&current) {
                if let Some(pos) = entry.ops.iter().position(|(id, _)| *id == op) {
                    entry.ops.swap_remove(pos).1.abort();
                }
            }
        }
        for mut started in effects.started {
            let Some(entry) = slot.parked.get_mut(&started.request) else {
                continue;
            };
            if let OpKind::Kv { op, .. } = &mut started.kind {
                entry.store_ops += 1;
                if entry.store_ops > self.max_store_ops && op.is_ok() {
                    *op = Err(kv::KvError::Invalid(format!(
                        "more than {} store operations in one request",
                        self.max_store_ops
                    )));
                }
            }
            let op = started.op;
            if let Some(handle) = self.spawn_op(at, entry, started) {
                entry.ops.push((op, handle));
            }
        }
    }

    /// Starts an operation of the parked request `entry` in slot `at`; its
    /// handle, if it runs on its own (a write runs on its stream's writer).
    fn spawn_op(
        self: &Arc<Self>,
        at: usize,
        entry: &mut Parked,
        started: StartedOp,
    ) -> Option<AbortHandle> {
        let dispatcher = self.clone();
        let (request, op) = (started.request, started.op);
        Some(match started.kind {
            OpKind::Timer(delay) => tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                dispatcher.complete(at, request, op, Completion::Timer);
            })
            .abort_handle(),
            OpKind::Fetch(req) if req.stream_response || req.forward_body => {
                self.spawn_fetch_head(at, entry, request, op, *req)
            }
            OpKind::Fetch(req) => {
                let (client, allow) = (self.client.clone(), self.allow.clone());
                tokio::spawn(async move {
                    let module = dispatcher.module.name.clone();
                    let result = super::fetch_op::run(&client, &allow, &module, *req).await;
                    dispatcher.complete(at, request, op, Completion::Fetch(result));
                })
                .abort_handle()
            }
            OpKind::ReadBody(max) => self.spawn_read(at, entry, request, op, max),
            OpKind::WriteBody(chunk) => return self.queue_write(at, entry, request, op, chunk),
            OpKind::ReadFetched { body, max } => {
                self.spawn_read_fetched(at, entry, request, op, body, max)
            }
            OpKind::PipeFetched(body) => self.spawn_pipe(at, entry, request, op, body),
            OpKind::Kv { store, op: kv_op } => {
                let pending = match (kv_op, self.module.grants.get(store)) {
                    (Ok(kv_op), Some(store)) => store.run(kv_op),
                    (Ok(_), None) => Box::pin(std::future::ready(Err(kv::KvError::Invalid(
                        format!("{store} is not a store handle this instance opened"),
                    )))),
                    (Err(err), _) => Box::pin(std::future::ready(Err(err))),
                };
                tokio::spawn(async move {
                    let result = wit::kv_result(pending.await);
                    dispatcher.complete(at, request, op, Completion::Kv(result));
                })
                .abort_handle()
            }
        })
    }

    /// Delivers a completed operation to its request in slot `at`.
    fn complete(self: &Arc<Self>, at: usize, id: RequestId, op: OpId, done: Completion) {
        let mut slot = self.lock(at);
        let slot = &mut *slot;
        let Some(entry) = slot.parked.get_mut(&id) else {
            return;
        };
        entry.ops.retain(|(o, _)| *o != op);
        let own = entry.own.take();
        let (result, own) = match (&mut slot.shared, own) {
            (Some(shared), _) => (shared.resume(id, op, &done), None),
            (None, Some(mut instance)) => (instance.resume(id, op, &done), Some(instance)),
            (None, None) => return,
        };
        match result {
            Ok((poll, effects)) => self.went_on(slot, at, id, poll, effects, own),
            Err(trap) => {
                let shared = slot.shared.is_some();
                if !shared {
                    self.settle(slot, id, Reply::Failed(trap.clone()));
                }
                self.on_trap(slot, &trap, shared);
            }
        }
    }

    /// Acts on what a call of the parked request `id` answered, and starts
    /// the operations it asked for. `own` is its instance, if it has one.
    fn went_on(
        self: &Arc<Self>,
        slot: &mut Slot,
        at: usize,
        id: RequestId,
        poll: Poll,
        effects: Effects,
        own: Option<Instance>,
    ) {
        let mut effects = effects;
        if effects.relayed() {
            let finished = matches!(poll, Poll::Finished);
            let checked = self.check_relay(slot, at, id, finished, effects.take_relay(), own);
            self.relay_parked(slot, id, checked);
            return;
        }
        let streaming = slot
            .parked
            .get(&id)
            .is_some_and(|entry| entry.stream.is_some());
        match poll {
            Poll::Ready(resp) if streaming => {
                let reason = resp.body.get(..MAX_REASON).unwrap_or(&resp.body);
                tracing::warn!(
                    module = %self.module.name,
                    reason = %String::from_utf8_lossy(reason),
                    "the module gave up on its streamed response; it is cut off"
                );
                // Ending the request without the stream's end cuts it off.
                self.settle(slot, id, Reply::Broken("gave up on its stream"));
            }
            Poll::Ready(resp) => self.settle(slot, id, Reply::Response(resp)),
            Poll::Streaming(_) if streaming => {
                self.settle(slot, id, Reply::Broken("streamed a second response head"));
            }
            Poll::Finished if !streaming => {
                self.settle(
                    slot,
                    id,
                    Reply::Broken("finished a response it never streamed"),
                );
            }
            Poll::Finished => self.finish(slot, id),
            Poll::Pending => keep(slot, id, own),
            Poll::Streaming(resp) => {
                keep(slot, id, own);
                self.open_stream(slot, at, id, resp);
            }
        }
        self.apply(slot, at, id, effects);
    }

    fn settle(&self, slot: &mut Slot, id: RequestId, reply: Reply) {
        if let Some(mut entry) = slot.parked.remove(&id) {
            self.stats.parked(-1);
            entry.abort_ops();
            entry.reply(reply);
        }
    }

    /// An instance trapped and was dropped. A shared instance takes every
    /// request parked in its slot down with it; they are answered with the
    /// trap.
    fn on_trap(&self, slot: &mut Slot, trap: &Trap, shared: bool) {
        let lost: Vec<_> = if shared {
            slot.parked.drain().collect()
        } else {
            Vec::new()
        };
        tracing::error!(
            module = %self.module.name,
            reason = %trap.reason,
            parked_lost = lost.len(),
            "module trapped; its instance will be rebuilt"
        );
        self.stats.trap(trap.kind);
        if shared {
            self.stats.rebuild(trap.kind);
        }
        self.stats.parked(-(lost.len() as i64));
        for (_, mut entry) in lost {
            entry.abort_ops();
            entry.reply(Reply::Failed(Trap {
                reason: format!("the instance trapped: {}", trap.reason),
                kind: trap.kind,
            }));
        }
    }

    /// The connection gave up on `id`: stop its operations and let the
    /// module drop its task.
    fn cancel(self: &Arc<Self>, at: usize, id: RequestId) {
        let mut slot = self.lock(at);
        let Some(mut entry) = slot.parked.remove(&id) else {
            return;
        };
        self.stats.parked(-1);
        entry.abort_ops();
        self.cancel_in(&mut slot, at, id, entry.own.take());
    }

    /// Tells the module to drop `id`; an instance of its own simply goes.
    fn cancel_in(
        self: &Arc<Self>,
        slot: &mut Slot,
        at: usize,
        id: RequestId,
        own: Option<Instance>,
    ) {
        let Some(shared) = &mut slot.shared else {
            drop(own);
            return;
        };
        match shared.cancel(id) {
            Ok(effects) => self.apply(slot, at, id, effects),
            Err(trap) => self.on_trap(slot, &trap, true),
        }
    }
}

/// Puts a request's instance back while it stays parked.
fn keep(slot: &mut Slot, id: RequestId, own: Option<Instance>) {
    if let Some(entry) = slot.parked.get_mut(&id) {
        if own.is_some() {
            entry.own = own;
        }
    }
}

/// A parked request. Dropping it before it settles cancels the request, so
/// a vanished client or an expired deadline cleans up by the same path.
struct Ticket {
    dispatcher: Arc<Dispatcher>,
    /// The slot it is parked in.
    slot: usize,
    id: RequestId,
    rx: oneshot::Receiver<Reply>,
    settled: bool,
}

impl Ticket {
    /// Waits for the request's reply. A streamed head hands the request's
    /// cancellation on to the body that carries it.
    async fn wait(&mut self) -> Reply {
        let reply = match (&mut self.rx).await {
            Ok(reply) => reply,
            Err(_) => Reply::Failed(Trap::other("the request was dropped by its worker")),
        };
        self.settled = true;
        reply
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.settled {
            self.dispatcher.cancel(self.slot, self.id);
        }
    }
}

/// The server's answers for the ways a request can end in a module, the
/// same for Snow modules and standard components.
pub(super) mod answer {
    use crate::http::Response;

    /// The module trapped.
    pub fn failed() -> Response {
        Response::plain(500, "the module failed")
    }

    /// The module's answer could not be sent.
    pub fn invalid() -> Response {
        Response::plain(500, "the module returned an invalid response")
    }

    /// A limit (parked requests, instances) was reached.
    pub fn at_limit() -> Response {
        Response::plain(503, "the server is at a limit; retry later")
    }

    /// The request timeout passed.
    pub fn timed_out() -> Response {
        Response::plain(504, "the handler did not answer in time")
    }
}

#[cfg(test)]
mod tests;
