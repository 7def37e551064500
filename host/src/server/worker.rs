//! A worker thread: its own single-threaded runtime, listener, instance and
//! connections. Workers share only the compiled module.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::LocalSet;

use super::conn::Conn;
use super::dispatch::Dispatcher;
use crate::config::ServeConfig;
use crate::runtime::{Instance, LoadedModule};

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

pub struct WorkerSetup {
    pub index: usize,
    pub listener: std::net::TcpListener,
    pub module: Arc<LoadedModule>,
    pub config: ServeConfig,
    pub shutdown: watch::Receiver<bool>,
    /// Told once the instance is up (or why it is not).
    pub ready: mpsc::Sender<Result<()>>,
}

pub fn run(setup: WorkerSetup) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the worker runtime")?;
    let local = LocalSet::new();
    local.block_on(&runtime, serve(setup))
}

async fn serve(setup: WorkerSetup) -> Result<()> {
    let WorkerSetup {
        index,
        listener,
        module,
        config,
        mut shutdown,
        ready,
    } = setup;
    let started = TcpListener::from_std(listener)
        .context("registering the listener")
        .and_then(|l| Ok((l, Instance::new(module)?)));
    let (listener, instance) = match started {
        Ok(ok) => {
            let _ = ready.send(Ok(()));
            ok
        }
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };
    let dispatcher = Dispatcher::new(instance);
    let config = Rc::new(config);
    let open = Rc::new(OpenConns::default());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    let conn = Conn::new(stream, dispatcher.clone(), config.clone(), shutdown.clone());
                    let guard = open.enter();
                    tokio::task::spawn_local(async move {
                        conn.run().await;
                        drop(guard);
                    });
                }
                Err(err) => {
                    tracing::warn!(worker = index, "accept failed: {err}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let remaining = open.count.get();
    tracing::debug!(worker = index, connections = remaining, "draining");
    if tokio::time::timeout(config.grace, open.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            worker = index,
            connections = open.count.get(),
            parked = dispatcher.parked_count(),
            "grace period over; closing the remaining connections"
        );
    }
    Ok(())
}

/// Counts open connections so shutdown can wait for them.
#[derive(Default)]
struct OpenConns {
    count: Cell<usize>,
    idle: Notify,
}

struct OpenGuard(Rc<OpenConns>);

impl OpenConns {
    fn enter(self: &Rc<Self>) -> OpenGuard {
        self.count.set(self.count.get() + 1);
        OpenGuard(self.clone())
    }

    async fn drained(&self) {
        while self.count.get() > 0 {
            self.idle.notified().await;
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let left = self.0.count.get() - 1;
        self.0.count.set(left);
        if left == 0 {
            self.0.idle.notify_waiters();
        }
    }
}
