//! A client that drives a whole route table natively: each request runs to
//! its response, with timers firing on a virtual clock (in deadline order,
//! at once), fetches answered by an upstream the test supplies, and store
//! operations run on the fake host's stores.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use crate::completion::Completion;
use crate::executor::Step;
use crate::outbound::OutgoingRequest;
use crate::{executor, host, FetchError, Request, Response, Router};

type Upstream = Box<dyn Fn(&OutgoingRequest) -> Result<Response, FetchError>>;
type KvOp = (u64, String, crate::kv::KvRequest);

/// Sends requests through a module's route table as the host would, and
/// completes the host operations they wait on.
///
/// ```
/// use std::time::Duration;
/// use snow_guest::{get, sleep, testing::Client, Error, Request, Response};
///
/// async fn slow(_: Request) -> &'static str {
///     sleep(Duration::from_secs(5)).await;
///     "done"
/// }
///
/// async fn upstream(_: Request) -> Result<Response, Error> {
///     Ok(get("http://api.test/v1").await?)
/// }
///
/// snow_guest::app!([(r"^/slow/$", slow), (r"^/up/$", upstream)]);
///
/// let client = Client::new(app());
/// assert_eq!(client.get("/slow/").body(), b"done");
/// assert_eq!(client.elapsed(), Duration::from_secs(5), "virtual time");
/// // With no upstream, fetches are denied, as by a host with no allow-list.
/// assert_eq!(client.get("/up/").status_code(), 502);
///
/// let client = Client::new(app()).with_upstream(|req| {
///     assert_eq!(req.url, "http://api.test/v1");
///     Ok(Response::text("from upstream"))
/// });
/// assert_eq!(client.get("/up/").body(), b"from upstream");
/// ```
pub struct Client {
    router: &'static Router,
    upstream: Option<Upstream>,
    next_id: Cell<u64>,
    /// Virtual milliseconds passed in timers.
    clock: Cell<u64>,
    /// Ops of the fake host already seen: (timers, fetches, store ops).
    seen: RefCell<(usize, usize, usize)>,
    /// Body reads and writes already completed: (reads, writes).
    seen_io: Cell<(usize, usize)>,
    /// Reads and pipes of fetched bodies already completed.
    seen_fetched: Cell<(usize, usize)>,
}

impl Client {
    /// A client of `router`, usually the `app()` that `app!` defines.
    pub fn new(router: &'static Router) -> Self {
        let seen = (
            host::fake::timers().len(),
            host::fake::fetches().len(),
            host::fake::kv_ops().len(),
        );
        Client {
            router,
            upstream: None,
            next_id: Cell::new(1),
            clock: Cell::new(0),
            seen: RefCell::new(seen),
            seen_io: Cell::new((host::fake::reads().len(), host::fake::writes().len())),
            seen_fetched: Cell::new((host::fake::fetched_reads().len(), host::fake::pipes().len())),
        }
    }

    /// Answers the module's fetches; without it they fail with
    /// [`FetchError::Denied`], as on a host with no allow-list.
    pub fn with_upstream(
        mut self,
        upstream: impl Fn(&OutgoingRequest) -> Result<Response, FetchError> + 'static,
    ) -> Self {
        self.upstream = Some(Box::new(upstream));
        self
    }

    /// `GET target`, where `target` is a path with an optional `?query`.
    pub fn get(&self, target: &str) -> Response {
        self.send(request("GET", target))
    }

    /// `POST target` with `body`.
    pub fn post(&self, target: &str, body: impl Into<Vec<u8>>) -> Response {
        self.send(request("POST", target).with_body(body))
    }

    /// Virtual time the timers of every request so far have taken.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.clock.get())
    }

    /// Runs `req` to its response, completing every operation it waits on.
    ///
    /// # Panics
    ///
    /// When the handler waits while no operation of it is left to complete.
    pub fn send(&self, req: Request) -> Response {
        let id = self.next_id.replace(self.next_id.get() + 1);
        let what = format!("{} {}", req.method(), req.full_path());
        let mut timers: Vec<(u64, u64)> = Vec::new();
        let mut fetches: Vec<(u64, OutgoingRequest)> = Vec::new();
        let mut kv: Vec<KvOp> = Vec::new();
        let mut poll = executor::handle(self.router, id, req);
        // A streamed response's head, and the body written so far.
        let mut streamed: Option<(Response, Vec<u8>)> = None;
        // Bodies of streamed fetches, by handle - 1; taken as they are read.
        let mut fetched: Vec<Option<Vec<u8>>> = Vec::new();
        loop {
            match poll {
                Step::Ready(response) => return response,
                Step::Relayed(response) => return self.relay(response),
                Step::Finished { whole } => match streamed.take() {
                    Some((head, body)) if whole => return head.with_body(body),
                    Some((_, body)) => panic!(
                        "{what}: the streamed body broke off after {} bytes (its writer failed)",
                        body.len()
                    ),
                    None => panic!("{what} finished a stream it never started"),
                },
                Step::Streaming(head) => streamed = Some((head, Vec::new())),
                Step::Pending => {}
            }
            // Writes are taken at once, as by a client reading quickly;
            // reads find the body complete.
            if let Some((op, chunk)) = self.next_io(IoKind::Write) {
                let taken = match &mut streamed {
                    Some((_, body)) => {
                        body.extend_from_slice(&chunk);
                        true
                    }
                    None => false,
                };
                poll = executor::resume(id, op, Completion::Written(taken));
                continue;
            }
            if let Some((op, _)) = self.next_io(IoKind::Read) {
                poll = executor::resume(id, op, Completion::Body(Ok(None)));
                continue;
            }
            // A fetched body comes in one chunk, then its end.
            if let Some((op, handle)) = self.next_fetched(IoKind::Read) {
                let body = fetched_body(&mut fetched, handle);
                let read = match body {
                    Some(body) if !body.is_empty() => Ok(Some(body)),
                    Some(_) => Ok(None),
                    None => Ok(None),
                };
                poll = executor::resume(id, op, Completion::Body(read));
                continue;
            }
            if let Some((op, handle)) = self.next_fetched(IoKind::Write) {
                let body = fetched_body(&mut fetched, handle);
                let taken = match (&mut streamed, body) {
                    (Some((_, out)), Some(body)) => {
                        out.extend_from_slice(&body);
                        true
                    }
                    _ => false,
                };
                poll = executor::resume(id, op, Completion::Written(taken));
                continue;
            }
            self.collect(&mut timers, &mut fetches, &mut kv);
            // Store operations finish first, in the order they started, as
            // a memory store's do.
            if !kv.is_empty() {
                let (op, store, req) = kv.remove(0);
                let result = host::fake::with_stores(|stores| stores.apply(&store, &req));
                poll = executor::resume(id, op, Completion::Kv(result));
                continue;
            }
            if !fetches.is_empty() {
                let (op, outgoing) = fetches.remove(0);
                let result = match &self.upstream {
                    Some(upstream) => upstream(&outgoing),
                    None => Err(FetchError::Denied),
                };
                let done = match result {
                    // The body stays "at the host", here, under a handle.
                    Ok(response) if outgoing.stream_response => {
                        let (status, headers, body) = response.into_head_parts();
                        fetched.push(Some(body));
                        Completion::FetchHead(Ok((status, headers, fetched.len() as u32)))
                    }
                    Ok(response) => Completion::Fetch(Ok(response)),
                    Err(err) if outgoing.stream_response => Completion::FetchHead(Err(err)),
                    Err(err) => Completion::Fetch(Err(err)),
                };
                poll = executor::resume(id, op, done);
                continue;
            }
            let Some(next) = (0..timers.len()).min_by_key(|&i| timers[i].0) else {
                panic!("{what} waits, but started nothing a test can complete");
            };
            let (deadline, op) = timers.remove(next);
            self.clock.set(self.clock.get().max(deadline));
            poll = executor::resume(id, op, Completion::Timer);
        }
    }

    /// What the host answers for a relayed response: the upstream's
    /// answer to its request, as `relay` passes it on.
    fn relay(&self, response: Response) -> Response {
        let (req, overrides) = match response.into_relay() {
            Ok(relay) => relay,
            Err(response) => return *response,
        };
        let upstream = match &self.upstream {
            Some(upstream) => upstream(&req),
            None => Err(FetchError::Denied),
        };
        crate::response::relay::answer(upstream, overrides)
    }

    /// The oldest read (`Read`) or pipe (`Write`) of a fetched body not yet
    /// completed: its op and body handle.
    fn next_fetched(&self, kind: IoKind) -> Option<(u64, u32)> {
        let (reads, pipes) = self.seen_fetched.get();
        let (at, op, handle) = match kind {
            IoKind::Read => next_unseen(&host::fake::fetched_reads(), reads)?,
            IoKind::Write => next_unseen(&host::fake::pipes(), pipes)?,
        };
        self.seen_fetched.set(match kind {
            IoKind::Read => (at + 1, pipes),
            IoKind::Write => (reads, at + 1),
        });
        Some((op, handle))
    }

    /// The oldest body read or write not yet completed: its op, and the
    /// chunk of a write.
    fn next_io(&self, kind: IoKind) -> Option<(u64, Vec<u8>)> {
        let (reads, writes) = self.seen_io.get();
        let (at, op, chunk) = match kind {
            IoKind::Read => {
                let (at, op, _) = next_unseen(&host::fake::reads(), reads)?;
                (at, op, Vec::new())
            }
            IoKind::Write => next_unseen(&host::fake::writes(), writes)?,
        };
        self.seen_io.set(match kind {
            IoKind::Read => (at + 1, writes),
            IoKind::Write => (reads, at + 1),
        });
        Some((op, chunk))
    }

    /// Takes the operations started since the last look, and drops the
    /// ones the handler forgot (a `race` loser, say).
    fn collect(
        &self,
        timers: &mut Vec<(u64, u64)>,
        fetches: &mut Vec<(u64, OutgoingRequest)>,
        kv: &mut Vec<KvOp>,
    ) {
        let mut seen = self.seen.borrow_mut();
        let all_timers = host::fake::timers();
        let now = self.clock.get();
        timers.extend(
            all_timers
                .iter()
                .skip(seen.0)
                .map(|&(op, ms)| (now.saturating_add(ms), op)),
        );
        let all_fetches = host::fake::fetches();
        fetches.extend(all_fetches.iter().skip(seen.1).cloned());
        let all_kv = host::fake::kv_ops();
        kv.extend(all_kv.iter().skip(seen.2).cloned());
        *seen = (all_timers.len(), all_fetches.len(), all_kv.len());
        let forgotten = host::fake::forgotten();
        timers.retain(|(_, op)| !forgotten.contains(op));
        fetches.retain(|(op, _)| !forgotten.contains(op));
        kv.retain(|(op, _, _)| !forgotten.contains(op));
    }
}

/// The first of `all` past the `seen` first that the handler has not
/// forgotten: its index, op and payload.
fn next_unseen<T: Clone>(all: &[(u64, T)], seen: usize) -> Option<(usize, u64, T)> {
    let forgotten = host::fake::forgotten();
    all.iter()
        .enumerate()
        .skip(seen)
        .find(|(_, (op, _))| !forgotten.contains(op))
        .map(|(at, (op, payload))| (at, *op, payload.clone()))
}

/// What is left of fetched body `handle`, taken; empty once read.
fn fetched_body(fetched: &mut [Option<Vec<u8>>], handle: u32) -> Option<Vec<u8>> {
    let slot = fetched.get_mut((handle as usize).checked_sub(1)?)?;
    match slot.take() {
        Some(body) => {
            *slot = Some(Vec::new());
            Some(body)
        }
        None => None,
    }
}

#[derive(Clone, Copy)]
enum IoKind {
    Read,
    Write,
}

/// A request for `target`, split into path and query.
fn request(method: &str, target: &str) -> Request {
    match target.split_once('?') {
        Some((path, query)) => Request::new(method, path).with_query(query),
        None => Request::new(method, target),
    }
}
