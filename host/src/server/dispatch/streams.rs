//! Bodies that flow while a request is parked: reads of the request body
//! as it streams in, and the streamed response, whose writes one writer
//! task per stream hands to the connection in order, completing each write
//! only once the connection has taken the chunk before it. The writer also
//! watches the connection: when it drops the body before its end, the
//! request is cancelled.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::{Dispatcher, Parked, Reply, Slot};
use crate::http::{self, BodyIn, Outflow};
use crate::outbound;
use crate::runtime::bindings::{
    BodyError, Completion, FetchError, OpId, OutgoingRequest, RequestId, Response,
};
use crate::runtime::wit;

/// Writes of one request queued behind the one the connection is taking.
/// The module is told to wait for each write; one that does not gets its
/// extra writes refused rather than held.
const MAX_QUEUED_WRITES: usize = 4;

/// The rest of a request body, for the reads of its module.
#[derive(Debug)]
pub(super) enum BodyState {
    /// The whole body came with the request.
    Complete,
    Ready(BodyIn),
    /// A read has it.
    Reading,
    /// A fetch sends it upstream.
    Forwarded,
}

impl BodyState {
    pub(super) fn new(rest: Option<BodyIn>) -> Self {
        rest.map_or(BodyState::Complete, BodyState::Ready)
    }

    /// The rest of the body for a fetch that forwards it (`forward`), if
    /// any is left to come.
    pub(super) fn take_upload(&mut self, forward: bool) -> Result<Option<BodyIn>, &'static str> {
        match self {
            _ if !forward => Ok(None),
            BodyState::Complete => Ok(None),
            BodyState::Ready(_) => match std::mem::replace(self, BodyState::Forwarded) {
                BodyState::Ready(body) => Ok(Some(body)),
                _ => Ok(None),
            },
            BodyState::Reading | BodyState::Forwarded => {
                Err("the request's body is being read or was forwarded already")
            }
        }
    }
}

/// A streamed response being written.
pub(super) struct StreamOut {
    /// Where pipes send: straight on, since the module waits for its own
    /// writes before it pipes.
    to_connection: mpsc::Sender<Outflow>,
    queue: mpsc::UnboundedSender<(Option<OpId>, Outflow)>,
    queued: Arc<AtomicUsize>,
    writer: AbortHandle,
}

impl StreamOut {
    /// Cuts the stream off: the connection sees its producer give up.
    pub(super) fn abort(self) {
        self.writer.abort();
    }
}

impl Dispatcher {
    /// Sends the head of `id`'s streamed response and starts its writer.
    pub(super) fn open_stream(
        self: &Arc<Self>,
        slot: &mut Slot,
        at: usize,
        id: RequestId,
        resp: Response,
    ) {
        let Some(entry) = slot.parked.get_mut(&id) else {
            return;
        };
        let (to_connection, body) = http::BodyOut::channel();
        let (queue, mut writes) = mpsc::unbounded_channel::<(Option<OpId>, Outflow)>();
        let queued = Arc::new(AtomicUsize::new(0));
        let writer = {
            let (dispatcher, queued) = (self.clone(), queued.clone());
            let to_connection = to_connection.clone();
            tokio::spawn(async move {
                loop {
                    let next = tokio::select! {
                        // The connection dropped the body before its end:
                        // the client left, the stream idled out, or the
                        // request was HEAD.
                        () = to_connection.closed() => {
                            dispatcher.cancel(at, id);
                            return;
                        }
                        next = writes.recv() => next,
                    };
                    let Some((op, step)) = next else {
                        return;
                    };
                    if to_connection.send(step).await.is_err() {
                        // Gone while this chunk waited: cancelled as above,
                        // not told of a failed write it could go on after.
                        dispatcher.cancel(at, id);
                        return;
                    }
                    if let Some(op) = op {
                        queued.fetch_sub(1, Ordering::Relaxed);
                        dispatcher.complete(at, id, op, Completion::Written(true));
                    }
                }
            })
            .abort_handle()
        };
        entry.stream = Some(StreamOut {
            to_connection,
            queue,
            queued,
            writer,
        });
        entry.reply(Reply::Streaming(resp, body));
    }

    /// Ends `id`'s streamed response after the writes queued before.
    pub(super) fn finish(&self, slot: &mut Slot, id: RequestId) {
        let Some(mut entry) = slot.parked.remove(&id) else {
            return;
        };
        self.stats.parked(-1);
        if let Some(stream) = entry.stream.take() {
            // Dropping the queue's sender ends the writer after the end.
            let _ = stream.queue.send((None, Outflow::End));
        }
        entry.abort_ops();
    }

    /// Queues a write of `id`'s streamed response; a write that cannot be
    /// queued completes at once with `written(false)`, run by the handle
    /// returned.
    pub(super) fn queue_write(
        self: &Arc<Self>,
        at: usize,
        entry: &mut Parked,
        id: RequestId,
        op: OpId,
        chunk: Vec<u8>,
    ) -> Option<AbortHandle> {
        if let Some(stream) = &entry.stream {
            // Only this slot's lock holder adds; the writer only takes off.
            if stream.queued.load(Ordering::Relaxed) < MAX_QUEUED_WRITES
                && stream.queue.send((Some(op), Outflow::Data(chunk))).is_ok()
            {
                stream.queued.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            tracing::warn!(
                module = %self.module.name,
                "a streamed write was refused: more than {MAX_QUEUED_WRITES} writes queued"
            );
        }
        Some(self.complete_soon(at, id, op, Completion::Written(false)))
    }

    /// Starts a read of `id`'s request body.
    pub(super) fn spawn_read(
        self: &Arc<Self>,
        at: usize,
        entry: &mut Parked,
        id: RequestId,
        op: OpId,
        max: u32,
    ) -> AbortHandle {
        match std::mem::replace(&mut entry.body, BodyState::Reading) {
            BodyState::Ready(mut body) => {
                let dispatcher = self.clone();
                tokio::spawn(async move {
                    let read = body.read(max as usize).await;
                    dispatcher.read_done(at, id, op, body, read);
                })
                .abort_handle()
            }
            BodyState::Complete => {
                entry.body = BodyState::Complete;
                self.complete_soon(at, id, op, Completion::Body(Ok(None)))
            }
            state @ (BodyState::Reading | BodyState::Forwarded) => {
                let busy = match state {
                    BodyState::Forwarded => "the body was forwarded to a fetch",
                    _ => "another read of the body is still pending",
                };
                entry.body = state;
                let busy = Completion::Body(Err(BodyError::Broken(busy.to_owned())));
                self.complete_soon(at, id, op, busy)
            }
        }
    }

    fn read_done(
        self: &Arc<Self>,
        at: usize,
        id: RequestId,
        op: OpId,
        body: BodyIn,
        read: http::Inflow,
    ) {
        if let Some(entry) = self.lock(at).parked.get_mut(&id) {
            entry.body = BodyState::Ready(body);
            if matches!(read, Ok(Some(_))) {
                entry.last_read = Some(tokio::time::Instant::now());
            }
        }
        self.complete(at, id, op, Completion::Body(wit::body_read(read)));
    }

    /// Completes `op` from a task of its own: the caller holds the slot's
    /// lock and may be inside a guest call.
    fn complete_soon(
        self: &Arc<Self>,
        at: usize,
        id: RequestId,
        op: OpId,
        done: Completion,
    ) -> AbortHandle {
        let dispatcher = self.clone();
        tokio::spawn(async move { dispatcher.complete(at, id, op, done) }).abort_handle()
    }

    /// Settles `id` from outside the slot's lock.
    fn settle_in(&self, at: usize, id: RequestId, reply: Reply) {
        self.settle(&mut self.lock(at), id, reply);
    }
}

/// Most streamed fetch bodies one request may hold open: each holds an
/// upstream connection.
const MAX_FETCHED: usize = 16;

/// The bodies of a request's streamed fetches; handle `n` is entry `n - 1`.
#[derive(Default)]
pub(super) struct FetchedBodies(Vec<Fetched>);

enum Fetched {
    Ready(BodyIn),
    /// A read or a pipe has it.
    Busy,
    /// Piped to its end.
    Ended,
}

impl FetchedBodies {
    fn add(&mut self, body: BodyIn) -> Option<u32> {
        if self.0.len() >= MAX_FETCHED {
            return None;
        }
        self.0.push(Fetched::Ready(body));
        u32::try_from(self.0.len()).ok()
    }

    fn slot(&mut self, handle: u32) -> Option<&mut Fetched> {
        self.0.get_mut((handle as usize).checked_sub(1)?)
    }

    fn take(&mut self, handle: u32) -> Result<BodyIn, String> {
        let Some(slot) = self.slot(handle) else {
            return Err(format!("no fetched body {handle} in this request"));
        };
        match std::mem::replace(slot, Fetched::Busy) {
            Fetched::Ready(body) => Ok(body),
            other => {
                let why = match other {
                    Fetched::Ended => "was piped already",
                    _ => "is being read or piped already",
                };
                *slot = other;
                Err(format!("fetched body {handle} {why}"))
            }
        }
    }

    fn put(&mut self, handle: u32, state: Fetched) {
        if let Some(slot) = self.slot(handle) {
            *slot = state;
        }
    }
}

impl Dispatcher {
    /// Starts a fetch that completes with its head, its body left to
    /// stream (or whole, when short), and that forwards the rest of the
    /// request's body when asked to.
    pub(super) fn spawn_fetch_head(
        self: &Arc<Self>,
        at: usize,
        entry: &mut Parked,
        id: RequestId,
        op: OpId,
        req: OutgoingRequest,
    ) -> AbortHandle {
        let upload = match entry.body.take_upload(req.forward_body) {
            Ok(upload) => upload,
            Err(busy) => {
                let done = Completion::FetchHead(Err(FetchError::Invalid(busy.into())));
                return self.complete_soon(at, id, op, done);
            }
        };
        let whole = !req.stream_response;
        let (dispatcher, client, allow) = (self.clone(), self.client.clone(), self.allow.clone());
        tokio::spawn(async move {
            let module = dispatcher.module.name.clone();
            let fetched = super::super::fetch_op::run_head(&client, &allow, &module, req, upload);
            match fetched.await {
                // A forwarding fetch that wants the whole response reads it
                // here, under the client's size limit.
                Ok(outbound::Fetched::Head(mut head, body)) if whole => {
                    let read = body.read_whole().await.map(|body| {
                        head.body = body;
                        head
                    });
                    let done = read.map(wit::fetch_response).map_err(wit::fetch_error);
                    dispatcher.complete(at, id, op, Completion::Fetch(done));
                }
                Ok(outbound::Fetched::Whole(resp)) => {
                    let done = Completion::Fetch(Ok(wit::fetch_response(resp)));
                    dispatcher.complete(at, id, op, done);
                }
                Ok(outbound::Fetched::Head(head, body)) => {
                    let body = BodyIn::upstream(body.into_stream(), dispatcher.stream_idle);
                    let handle = dispatcher
                        .lock(at)
                        .parked
                        .get_mut(&id)
                        .map(|entry| entry.fetched.add(body));
                    let done = match handle {
                        None => return,
                        Some(Some(handle)) => Ok(wit::fetched_head(head, handle)),
                        Some(None) => Err(FetchError::Invalid(format!(
                            "more than {MAX_FETCHED} streamed fetches in one request"
                        ))),
                    };
                    dispatcher.complete(at, id, op, Completion::FetchHead(done));
                }
                Err(err) if whole => dispatcher.complete(at, id, op, Completion::Fetch(Err(err))),
                Err(err) => dispatcher.complete(at, id, op, Completion::FetchHead(Err(err))),
            }
        })
        .abort_handle()
    }

    /// Starts a read of fetched body `handle`.
    pub(super) fn spawn_read_fetched(
        self: &Arc<Self>,
        at: usize,
        entry: &mut Parked,
        id: RequestId,
        op: OpId,
        handle: u32,
        max: u32,
    ) -> AbortHandle {
        let mut body = match entry.fetched.take(handle) {
            Ok(body) => body,
            Err(why) => {
                let broken = Completion::Body(Err(BodyError::Broken(why)));
                return self.complete_soon(at, id, op, broken);
            }
        };
        let dispatcher = self.clone();
        tokio::spawn(async move {
            let read = body.read(max as usize).await;
            if let Some(entry) = dispatcher.lock(at).parked.get_mut(&id) {
                entry.fetched.put(handle, Fetched::Ready(body));
            }
            dispatcher.complete(at, id, op, Completion::Body(wit::body_read(read)));
        })
        .abort_handle()
    }

    /// Sends fetched body `handle` on as `id`'s streamed response, host to
    /// host, one chunk in flight. A body that breaks off cuts the response
    /// off: sending what arrived as if whole would lie to the client.
    pub(super) fn spawn_pipe(
        self: &Arc<Self>,
        at: usize,
        entry: &mut Parked,
        id: RequestId,
        op: OpId,
        handle: u32,
    ) -> AbortHandle {
        let Some(to_connection) = entry.stream.as_ref().map(|s| s.to_connection.clone()) else {
            return self.complete_soon(at, id, op, Completion::Written(false));
        };
        let Ok(mut body) = entry.fetched.take(handle) else {
            return self.complete_soon(at, id, op, Completion::Written(false));
        };
        let dispatcher = self.clone();
        tokio::spawn(async move {
            loop {
                match body.read(0).await {
                    Ok(Some(chunk)) => {
                        // The client left; the stream's writer cancels.
                        if to_connection.send(Outflow::Data(chunk)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => {
                        if let Some(entry) = dispatcher.lock(at).parked.get_mut(&id) {
                            entry.fetched.put(handle, Fetched::Ended);
                        }
                        dispatcher.complete(at, id, op, Completion::Written(true));
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(module = %dispatcher.module.name, "{err}; the response is cut off");
                        dispatcher.settle_in(at, id, Reply::Broken("piped a fetched body that broke off"));
                        return;
                    }
                }
            }
        })
        .abort_handle()
    }
}
