//! One worker's live instance of a module: every guest call goes through
//! here, and a trap replaces the instance with a fresh one.

use std::sync::Arc;

use anyhow::Result;
use wasmtime::error::Context;
use wasmtime::{Store, UpdateDeadline};

use super::bindings::{Completion, ModuleBindings, OpId, Poll, Request, RequestId, Route};
use super::module::LoadedModule;
use super::state::{Effects, HostState};
use super::TrapReason;

/// A guest call that failed: the instance trapped (and was replaced) or
/// could not be built.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct Trap {
    pub reason: String,
    pub kind: TrapReason,
}

impl Trap {
    /// A failure that is not a trap of the module's code.
    pub fn other(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            kind: TrapReason::Other,
        }
    }
}

pub struct Instance {
    module: Arc<LoadedModule>,
    live: Option<Live>,
    next_op: OpId,
}

struct Live {
    store: Store<HostState>,
    bindings: ModuleBindings,
}

impl Instance {
    pub fn new(module: Arc<LoadedModule>) -> Result<Self> {
        let live = Live::new(&module, 0)?;
        Ok(Self {
            module,
            live: Some(live),
            next_op: 0,
        })
    }

    pub fn module(&self) -> &Arc<LoadedModule> {
        &self.module
    }

    pub fn handle(&mut self, id: RequestId, req: &Request) -> Result<(Poll, Effects), Trap> {
        self.call(Some(id), |live| {
            let h = live.bindings.snow_http_handler();
            h.call_handle(&mut live.store, id, req)
        })
    }

    pub fn resume(
        &mut self,
        id: RequestId,
        op: OpId,
        done: &Completion,
    ) -> Result<(Poll, Effects), Trap> {
        self.call(Some(id), |live| {
            let h = live.bindings.snow_http_handler();
            h.call_resume(&mut live.store, id, op, done)
        })
    }

    pub fn cancel(&mut self, id: RequestId) -> Result<Effects, Trap> {
        self.call(None, |live| {
            let h = live.bindings.snow_http_handler();
            h.call_cancel(&mut live.store, id)
        })
        .map(|((), effects)| effects)
    }

    pub fn routes(&mut self) -> Result<Vec<Route>, Trap> {
        self.call(None, |live| {
            let h = live.bindings.snow_http_handler();
            h.call_routes(&mut live.store)
        })
        .map(|(routes, _)| routes)
    }

    fn call<R>(
        &mut self,
        current: Option<RequestId>,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<R>,
    ) -> Result<(R, Effects), Trap> {
        let live = match &mut self.live {
            Some(live) => live,
            None => self.live.insert(self.rebuild()?),
        };
        // Each tick the call is seen running, its clock says whether it
        // may go on (`Live::new`).
        live.store.set_epoch_deadline(1);
        let data = live.store.data_mut();
        data.clock.start();
        data.current = current;
        data.next_op = data.next_op.max(self.next_op);
        data.limits.take_refusal();
        let result = f(live);
        let data = live.store.data_mut();
        data.current = None;
        self.next_op = data.next_op;
        let effects = std::mem::take(&mut data.effects);
        match result {
            Ok(value) => Ok((value, effects)),
            Err(err) => {
                let refused = data.limits.take_refusal();
                // After a trap the Store is unusable: drop it now and build
                // the replacement lazily, on the next call.
                self.live = None;
                let (kind, reason) = describe(&err, refused, self.module.limits.max_memory);
                Err(Trap { reason, kind })
            }
        }
    }

    fn rebuild(&self) -> Result<Live, Trap> {
        Live::new(&self.module, self.next_op)
            .map_err(|err| Trap::other(format!("instantiating the module failed: {err:#}")))
    }
}

/// How long a module's start-up (instantiation) may take, in wall-clock
/// time, when that is longer than one call's limit. A start-up costs
/// little CPU, but a busy host may leave the thread waiting for a core past
/// a 100 ms call limit, and a deploy would then be refused for the host's
/// load rather than the module; one that loops is still cut off.
const START_UP_TIME: std::time::Duration = std::time::Duration::from_secs(1);

impl Live {
    fn new(module: &LoadedModule, next_op: OpId) -> Result<Self> {
        let state = HostState::new(&module.name, &module.limits, next_op, module.grants.clone());
        let mut store = Store::new(&module.engine, state);
        store.limiter(|s| &mut s.limits);
        // Each call sets its own deadline (`Instance::call`).
        let start_up = crate::config::call_ticks(START_UP_TIME);
        store.set_epoch_deadline(module.limits.call_ticks.max(start_up));
        store.epoch_deadline_trap();
        let super::module::Linked::Snow(pre) = &module.linked else {
            anyhow::bail!(
                "{} is a wasi:http/proxy component, not a Snow module",
                module.name
            );
        };
        let bindings = pre
            .instantiate(&mut store)
            .context("instantiating the module")?;
        store.epoch_deadline_callback(|mut cx| {
            Ok(if cx.data_mut().clock.tick() {
                UpdateDeadline::Continue(1)
            } else {
                UpdateDeadline::Interrupt
            })
        });
        Ok(Self { store, bindings })
    }
}

/// The kind of failure and a one-line reason for the log. The trap code
/// alone misleads twice, so two facts come first:
/// - a memory growth the limiter refused during the call: the guest's
///   allocator then aborts with `unreachable`, which is the memory limit,
///   not a panic;
/// - an out-of-bounds access whose innermost frames repeat one short cycle
///   of functions: a Rust guest keeps its own stack in linear memory, and
///   runaway recursion overflows that (below address 0) long before the
///   wasm stack, so this is a stack overflow, not a stray pointer.
pub(super) fn describe(
    err: &wasmtime::Error,
    refused: Option<usize>,
    max_memory: usize,
) -> (TrapReason, String) {
    use wasmtime::Trap as T;
    let Some(trap) = err.downcast_ref::<T>() else {
        // A host function's refusal is the root; the contexts above it are
        // wasm backtraces.
        let text = err.root_cause().to_string();
        let line = text.lines().next().unwrap_or("trap").to_string();
        return (TrapReason::Other, line);
    };
    let (kind, detail) = match trap {
        T::Interrupt => (
            TrapReason::CpuTime,
            "the call ran past its CPU time limit".into(),
        ),
        T::StackOverflow => (
            TrapReason::StackOverflow,
            "wasm stack overflow (max_stack)".into(),
        ),
        _ if refused.is_some() => (
            TrapReason::Memory,
            format!(
                "memory could not grow{} past the module's limit of {} bytes",
                refused
                    .filter(|&size| size != usize::MAX)
                    .map_or_else(String::new, |size| format!(" to {size} bytes")),
                max_memory
            ),
        ),
        T::MemoryOutOfBounds if runaway_recursion(err) => (
            TrapReason::StackOverflow,
            "the guest's own stack overflowed (runaway recursion)".into(),
        ),
        T::UnreachableCodeReached => (TrapReason::Panic, "unreachable executed (a panic)".into()),
        T::MemoryOutOfBounds => (TrapReason::Memory, "out-of-bounds memory access".into()),
        other => (TrapReason::Other, other.to_string()),
    };
    (kind, format!("trap: {detail}"))
}

/// Frames a recursion cycle may span, and innermost frames it may be
/// below (the `memset` that faulted, say).
const MAX_CYCLE: usize = 4;
const MAX_LEAF_FRAMES: usize = 2;
/// Repeated frames that make a recursion rather than a coincidence; the
/// engine records 20 frames.
const MIN_REPEATED: usize = 12;

fn runaway_recursion(err: &wasmtime::Error) -> bool {
    let Some(trace) = err.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    let funcs: Vec<u32> = trace.frames().iter().map(|f| f.func_index()).collect();
    is_recursion(&funcs)
}

/// Whether `funcs` (innermost first), after a few leaf frames, repeat
/// one cycle of at most [`MAX_CYCLE`] functions for [`MIN_REPEATED`]
/// frames or more.
fn is_recursion(funcs: &[u32]) -> bool {
    (0..=MAX_LEAF_FRAMES).any(|skip| {
        let rest = funcs.get(skip..).unwrap_or_default();
        rest.len() >= MIN_REPEATED
            && (1..=MAX_CYCLE).any(|period| rest.windows(period + 1).all(|w| w[0] == w[period]))
    })
}

#[cfg(test)]
mod tests {
    use super::is_recursion;

    #[test]
    fn repeated_cycles_are_recursion() {
        assert!(is_recursion(&[7; 20]));
        let pair: Vec<u32> = (0..20).map(|i| if i % 2 == 0 { 3 } else { 9 }).collect();
        assert!(is_recursion(&pair));
        let mut below_memset = vec![99, 98];
        below_memset.extend([5; 18]);
        assert!(is_recursion(&below_memset));
    }

    #[test]
    fn ordinary_stacks_are_not() {
        assert!(!is_recursion(&[]));
        assert!(!is_recursion(&[1, 2, 3, 4, 5]));
        assert!(!is_recursion(&[7; 8]), "too short to tell");
        let distinct: Vec<u32> = (0..20).collect();
        assert!(!is_recursion(&distinct));
        let five: Vec<u32> = (0..20).map(|i| i % 5).collect();
        assert!(!is_recursion(&five), "a cycle longer than the limit");
    }
}
