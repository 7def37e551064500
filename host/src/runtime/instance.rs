//! One worker's live instance of a module: every guest call goes through
//! here, and a trap replaces the instance with a fresh one.

use std::sync::Arc;

use anyhow::Result;
use wasmtime::error::Context;
use wasmtime::Store;

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
        live.store.set_epoch_deadline(self.module.limits.call_ticks);
        let data = live.store.data_mut();
        data.current = current;
        data.next_op = data.next_op.max(self.next_op);
        let result = f(live);
        let data = live.store.data_mut();
        data.current = None;
        self.next_op = data.next_op;
        let effects = std::mem::take(&mut data.effects);
        match result {
            Ok(value) => Ok((value, effects)),
            Err(err) => {
                // After a trap the Store is unusable: drop it now and build
                // the replacement lazily, on the next call.
                self.live = None;
                let (kind, reason) = describe(&err);
                Err(Trap { reason, kind })
            }
        }
    }

    fn rebuild(&self) -> Result<Live, Trap> {
        Live::new(&self.module, self.next_op)
            .map_err(|err| Trap::other(format!("instantiating the module failed: {err:#}")))
    }
}

impl Live {
    fn new(module: &LoadedModule, next_op: OpId) -> Result<Self> {
        let state = HostState::new(
            &module.name,
            module.limits.max_memory,
            &module.limits.env,
            next_op,
        );
        let mut store = Store::new(&module.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(module.limits.call_ticks);
        store.epoch_deadline_trap();
        let bindings = module
            .pre
            .instantiate(&mut store)
            .context("instantiating the module")?;
        Ok(Self { store, bindings })
    }
}

/// The kind of failure and a one-line reason for the log: the trap code
/// when there is one, else the first line of the error chain.
fn describe(err: &wasmtime::Error) -> (TrapReason, String) {
    use wasmtime::Trap as T;
    if let Some(trap) = err.downcast_ref::<T>() {
        let (kind, detail) = match trap {
            T::Interrupt => (TrapReason::CpuTime, "the call ran past its CPU time limit"),
            T::StackOverflow => (TrapReason::StackOverflow, "stack overflow"),
            T::UnreachableCodeReached => (TrapReason::Panic, "unreachable executed (a panic)"),
            T::MemoryOutOfBounds => (TrapReason::Memory, "out-of-bounds memory access"),
            _ => (TrapReason::Other, ""),
        };
        if detail.is_empty() {
            return (kind, format!("trap: {trap}"));
        }
        return (kind, format!("trap: {detail}"));
    }
    let text = format!("{err:#}");
    let line = text.lines().next().unwrap_or("trap").to_string();
    (TrapReason::Other, line)
}
