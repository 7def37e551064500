//! The instance's executor: one thread, no reactor. A request's handler
//! future becomes a task under the host's request id; it is polled by
//! `handle`, then again by each `resume` that delivers a completion, and
//! dropped by `cancel`. Host operations keep a slot in their task, so a
//! completion lands where the awaiting future finds it and a finished or
//! cancelled task takes its slots with it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use serde::Serialize;

use crate::body::WriterFuture;
use crate::completion::Completion;
use crate::handler::{BoxFuture, Outcome};
use crate::host::{self, OpId};
use crate::response::relay;
use crate::{Response, Router};

pub(crate) type RequestId = u64;

/// Polls in one `handle`/`resume` while a task keeps waking itself. Past
/// it the task yields to the host through a zero-length timer, so one busy
/// request cannot hold the instance and is still polled again.
const MAX_POLLS: u32 = 64;

/// Counters of this instance's executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Requests parked awaiting `resume`; the one running now is not
    /// counted.
    pub live_tasks: usize,
    /// Requests received by `handle`, the running one included.
    pub handled: u64,
    /// Parked requests dropped by `cancel` (or by a second `handle` with
    /// the same id).
    pub cancelled: u64,
}

/// The executor's counters, readable from a handler.
pub fn stats() -> Stats {
    with(|state| Stats {
        live_tasks: state.tasks.len(),
        handled: state.handled,
        cancelled: state.cancelled,
    })
}

enum Slot {
    /// Started; the host still owes the completion.
    Waiting(Waker),
    /// Delivered, not yet taken by its future. Boxed because it is brief
    /// and large, while parked tasks, by the thousand, hold the other kinds.
    Done(Box<Completion>),
    /// The executor's own yield timer; its completion only re-polls.
    Yield,
}

type Slots = Vec<(OpId, Slot)>;

/// What one `handle` or `resume` of a request produced.
#[derive(Debug)]
pub(crate) enum Step {
    /// The whole response.
    Ready(Response),
    /// The handler awaits host operations.
    Pending,
    /// The head of a streamed response (and no body): its writer runs on
    /// as the request's task.
    Streaming(Response),
    /// The streamed response's writer is done: `whole` when it returned
    /// `Ok`, else the body broke off (the client left, or a body it piped
    /// or read failed) and must not pass for complete.
    Finished { whole: bool },
    /// A relayed response (see `Response::relay`), for the host to make:
    /// the task is done. Never made where the host cannot relay.
    #[cfg_attr(all(target_arch = "wasm32", feature = "wasi-http"), allow(dead_code))]
    Relayed(Response),
}

/// A task runs its handler, then, for a streamed response, the writer.
enum Work {
    Handler(BoxFuture),
    Writer(WriterFuture),
}

struct Task {
    future: Work,
    waker: Arc<TaskWaker>,
    slots: Slots,
}

/// Only records that the task asked to be polled again: a completion
/// always polls its task anyway, so a wake matters only during a poll.
#[derive(Default)]
struct TaskWaker {
    woken: AtomicBool,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Relaxed);
    }
}

/// Hashes a request id with one multiplication. The ids are the host's
/// own counter, never a client's choice, so the table needs no keyed hash
/// against crafted collisions; SipHash cost every request some 300
/// instructions.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*byte)).wrapping_mul(K);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// 2^64 divided by the golden ratio, odd: spreads consecutive ids over
/// the high bits the table's control bytes use.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Default)]
struct State {
    tasks: HashMap<RequestId, Task, BuildHasherDefault<IdHasher>>,
    /// The slots of the task being polled (or dropped), out of `tasks` so
    /// its futures can reach them.
    running: Option<Slots>,
    handled: u64,
    cancelled: u64,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::default();
}

/// Borrows the state briefly; never held across user code (polls, drops,
/// wakes), since that code calls back in here.
fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|state| f(&mut state.borrow_mut()))
}

/// Makes the task table's state before the first request (see
/// `start_up`); its memory comes with the first task.
pub(crate) fn prepare() {
    with(|_| ());
}

/// Starts a request. A second `handle` for a parked id is a host bug; the
/// old task is dropped as if cancelled, so nothing leaks.
pub(crate) fn handle(router: &'static Router, id: RequestId, req: crate::Request) -> Step {
    let replaced = with(|state| {
        state.handled += 1;
        let old = state.tasks.remove(&id);
        state.cancelled += u64::from(old.is_some());
        old
    });
    if let Some(old) = replaced {
        release(old);
    }
    let future = match router.dispatch(req) {
        Outcome::Ready(response) if response.relayed_request().is_some() && host::RELAYS => {
            return Step::Relayed(response)
        }
        Outcome::Ready(response)
            if !response.is_streamed() && response.relayed_request().is_none() =>
        {
            return Step::Ready(response)
        }
        Outcome::Ready(response) => Box::pin(std::future::ready(response)),
        Outcome::Pending(future) => future,
    };
    drive(
        id,
        Task {
            future: Work::Handler(future),
            waker: Arc::default(),
            slots: Vec::new(),
        },
    )
}

/// Delivers `done` for `op` and polls the task.
///
/// An unknown `id` (finished, cancelled, never started) cannot be resumed:
/// the completion is dropped and the answer is a 500 `ready`, so a host
/// that still waits on the id ends it instead of parking it forever. The
/// host never resumes a request it cancelled, so this only meets host bugs.
/// A completion for an op the task no longer awaits (forgotten) is dropped
/// and the task is polled as usual.
pub(crate) fn resume(id: RequestId, op: OpId, done: Completion) -> Step {
    let Some(mut task) = with(|state| state.tasks.remove(&id)) else {
        return Step::Ready(
            Response::text(format!("snow: no parked request {id} to resume")).with_status(500),
        );
    };
    if let Some(waker) = deliver(&mut task.slots, op, done) {
        waker.wake();
    }
    drive(id, task)
}

/// Drops a parked task; its unfinished host ops are forgotten as their
/// futures drop. An unknown id is ignored.
pub(crate) fn cancel(id: RequestId) {
    let task = with(|state| {
        let task = state.tasks.remove(&id);
        state.cancelled += u64::from(task.is_some());
        task
    });
    if let Some(task) = task {
        release(task);
    }
}

fn deliver(slots: &mut Slots, op: OpId, done: Completion) -> Option<Waker> {
    let index = slots.iter().position(|(id, _)| *id == op)?;
    match std::mem::replace(&mut slots[index].1, Slot::Done(Box::new(done))) {
        Slot::Waiting(waker) => Some(waker),
        Slot::Yield => {
            slots.swap_remove(index);
            None
        }
        Slot::Done(_) => None,
    }
}

/// How one poll of a task's work ended.
enum Polled {
    Answered(Response),
    /// The writer returned; whether with `Ok`.
    Written(bool),
    Waiting,
}

fn drive(id: RequestId, mut task: Task) -> Step {
    let waker = Waker::from(Arc::clone(&task.waker));
    let mut cx = Context::from_waker(&waker);
    let slots = std::mem::take(&mut task.slots);
    with(|state| state.running = Some(slots));
    let mut polls = 0;
    // The head of a streamed response answered in this very call.
    let mut head = None;
    let waiting = |head: Option<Response>| head.map_or(Step::Pending, Step::Streaming);
    let outcome = loop {
        task.waker.woken.store(false, Ordering::Relaxed);
        polls += 1;
        let polled = match &mut task.future {
            Work::Handler(future) => match future.as_mut().poll(&mut cx) {
                Poll::Ready(response) => Polled::Answered(response),
                Poll::Pending => Polled::Waiting,
            },
            // A writer's error only means the client left: the host knows.
            Work::Writer(writer) => match writer.as_mut().poll(&mut cx) {
                Poll::Ready(result) => Polled::Written(result.is_ok()),
                Poll::Pending => Polled::Waiting,
            },
        };
        match polled {
            Polled::Answered(response) if response.relayed_request().is_some() && host::RELAYS => {
                break Step::Relayed(response)
            }
            // Without the host's relays, the module makes it.
            Polled::Answered(response) if response.relayed_request().is_some() => {
                match response.into_relay() {
                    Ok((req, overrides)) => {
                        task.future = Work::Handler(Box::pin(relay::by_fetch(req, overrides)));
                    }
                    Err(response) => break Step::Ready(*response),
                }
            }
            Polled::Answered(mut response) => match response.take_stream().and_then(|s| s.take()) {
                Some(writer) => {
                    // The writer starts at once: its first writes go out
                    // with the head.
                    task.future = Work::Writer(writer);
                    head = Some(response);
                }
                None => break Step::Ready(response),
            },
            // A writer done before its first write finished wrote nothing:
            // the head is the whole response.
            Polled::Written(whole) => {
                break head.take().map_or(Step::Finished { whole }, Step::Ready)
            }
            Polled::Waiting if !task.waker.woken.load(Ordering::Relaxed) => break waiting(head),
            Polled::Waiting if polls >= MAX_POLLS => {
                yield_to_host();
                break waiting(head);
            }
            Polled::Waiting => {}
        }
    };
    task.slots = with(|state| state.running.take()).unwrap_or_default();
    if matches!(
        outcome,
        Step::Ready(_) | Step::Finished { .. } | Step::Relayed(_)
    ) {
        release(task);
    } else if let Some(stale) = with(|state| state.tasks.insert(id, task)) {
        release(stale);
    }
    outcome
}

fn yield_to_host() {
    let op = host::start_timer(0);
    with(|state| {
        if let Some(slots) = state.running.as_mut() {
            slots.push((op, Slot::Yield));
        }
    });
}

/// Drops a finished or cancelled task. Its slots are visible while the
/// future drops, so each op future can tell whether the host still owes
/// its completion (and must be told to forget it).
fn release(task: Task) {
    let Task { future, slots, .. } = task;
    let outer = with(|state| state.running.replace(slots));
    drop(future);
    let slots = with(|state| std::mem::replace(&mut state.running, outer)).unwrap_or_default();
    for (op, slot) in slots {
        if matches!(slot, Slot::Yield) {
            host::forget(op);
        }
    }
}

/// Starts a host operation for the task being polled and gives it a slot.
pub(crate) fn start_op(start: impl FnOnce() -> OpId, waker: &Waker) -> OpId {
    let in_task = with(|state| state.running.is_some());
    assert!(
        in_task,
        "snow: host operations can only be awaited inside a request handler"
    );
    let op = start();
    with(|state| {
        if let Some(slots) = state.running.as_mut() {
            // Most tasks await one op at a time; the default growth would
            // reserve four slots in every parked task.
            slots.reserve_exact(1);
            slots.push((op, Slot::Waiting(waker.clone())));
        }
    });
    op
}

/// The completion of `op` if it arrived; otherwise keeps `waker` for it.
pub(crate) fn take_completion(op: OpId, waker: &Waker) -> Option<Completion> {
    with(|state| {
        let slots = state.running.as_mut()?;
        let index = slots.iter().position(|(id, _)| *id == op)?;
        match &mut slots[index].1 {
            Slot::Waiting(stored) => {
                if !stored.will_wake(waker) {
                    stored.clone_from(waker);
                }
                None
            }
            Slot::Done(_) => match slots.swap_remove(index).1 {
                Slot::Done(done) => Some(*done),
                _ => None,
            },
            Slot::Yield => None,
        }
    })
}

/// Removes the slot of an op whose future is dropped; true when the host
/// still owes its completion.
///
/// Also reached while the thread's state is being torn down with tasks
/// still parked; the state is gone then, so the op counts as owed.
pub(crate) fn abandon_op(op: OpId) -> bool {
    let removed = STATE
        .try_with(|state| {
            let mut state = state.try_borrow_mut().ok()?;
            let slots = state.running.as_mut()?;
            let index = slots.iter().position(|(id, _)| *id == op)?;
            Some(slots.swap_remove(index).1)
        })
        .ok()
        .flatten();
    !matches!(removed, Some(Slot::Done(_)))
}

// The fake host they run against exists only off wasm32.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
