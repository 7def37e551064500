//! A worker thread: its own single-threaded runtime, listener, instance and
//! connections. Workers share only the compiled module.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::LocalSet;

use super::busy_poll::BusyPoll;
use super::dispatch::DispatchLimits;
use super::mounts::WorkerMounts;
use super::service::Service;
use crate::config::ServeConfig;
use crate::deploy::Registry;
use crate::health::Health;
use crate::http::shutdown::Shutdown;
use crate::metrics::Metrics;
use crate::outbound::Client;

/// Once the grace period is over, how long the requests still running get
/// to send their 503 before the worker stops.
const LAST_ANSWERS: Duration = Duration::from_secs(1);

pub struct WorkerSetup {
    pub index: usize,
    /// Connections handed over by the acceptor; closed at shutdown.
    pub inbox: mpsc::UnboundedReceiver<std::net::TcpStream>,
    /// Open connections, read by the acceptor to balance workers.
    pub load: Arc<AtomicUsize>,
    pub registry: Arc<Registry>,
    pub config: ServeConfig,
    pub shutdown: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    /// The HTTP client for modules' outbound requests.
    pub client: Client,
    /// Whether a stop signal has come: connections then close after their
    /// next answer.
    pub health: Arc<Health>,
    /// Told once the instance is up (or why it is not).
    pub ready: std::sync::mpsc::Sender<Result<()>>,
}

pub fn run(setup: WorkerSetup) -> Result<()> {
    if let Err(err) = super::sched_slice::request(setup.config.sched_slice) {
        tracing::debug!(
            worker = setup.index,
            "scheduling slice {:?} not granted: {err}",
            setup.config.sched_slice
        );
    }
    let poll = BusyPoll::new(setup.config.busy_poll);
    let build = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(move || {
                // What this worker logged goes out before it sleeps.
                crate::logging::flush_thread();
                poll.before_park();
            })
            .on_thread_unpark(move || poll.after_unpark())
            .build()
    };
    // Without polls nothing needs the instance: no listing of descriptors.
    let (runtime, epoll) = if poll.is_on() {
        super::epoll_fd::build_noting_epoll(build)
    } else {
        (build(), None)
    };
    let runtime = runtime.context("starting the worker runtime")?;
    if poll.is_on() && epoll.is_none() {
        tracing::debug!(
            worker = setup.index,
            "the runtime's epoll instance is unknown: busy polls run their whole budget"
        );
    }
    BusyPoll::watch(epoll);
    let local = LocalSet::new();
    local.block_on(&runtime, serve(setup))
}

async fn serve(setup: WorkerSetup) -> Result<()> {
    let WorkerSetup {
        index,
        mut inbox,
        load,
        registry,
        config,
        mut shutdown,
        metrics,
        client,
        health,
        ready,
    } = setup;
    let limits = DispatchLimits {
        max_parked: config.max_parked,
        request_timeout: config.request_timeout,
        max_store_ops: config.max_store_ops,
        stream_idle: config.stream_idle_timeout,
    };
    let (grace_over_tx, grace_over) = watch::channel(false);
    let service = match WorkerMounts::new(registry, metrics.clone(), limits, client) {
        Ok(mounts) => {
            let _ = ready.send(Ok(()));
            Rc::new(Service::new(mounts, grace_over))
        }
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };
    // Connections watch a signal of this worker's own: each leaves its
    // waker there once, and a signal shared by all workers would put a
    // contended lock on every new connection.
    let local_shutdown = Shutdown::new();
    let config = Rc::new(config);
    let open = Rc::new(OpenConns {
        count: Cell::new(0),
        idle: Notify::new(),
        load,
        metrics,
    });
    loop {
        tokio::select! {
            biased;
            handed = inbox.recv() => {
                let Some(stream) = handed else { break };
                // Counted by the acceptor already; the guard gives it back.
                let guard = OpenGuard::adopt(&open);
                let stream = match TcpStream::from_std(stream) {
                    Ok(stream) => stream,
                    Err(err) => {
                        tracing::warn!(worker = index, "registering a connection failed: {err}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (service, config) = (service.clone(), config.clone());
                let (shutdown, health) = (local_shutdown.clone(), health.clone());
                tokio::task::spawn_local(async move {
                    super::conn::serve(stream, service, &config, &shutdown, &health).await;
                    drop(guard);
                });
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(inbox);
    local_shutdown.fire();
    let remaining = open.count.get();
    tracing::debug!(worker = index, connections = remaining, "draining");
    if tokio::time::timeout(config.grace, open.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            worker = index,
            connections = open.count.get(),
            "grace period over; answering requests still running with 503 and closing"
        );
        let _ = grace_over_tx.send(true);
        let _ = tokio::time::timeout(LAST_ANSWERS, open.drained()).await;
    }
    Ok(())
}

/// Counts open connections so shutdown can wait for them, and mirrors the
/// count for the acceptor.
struct OpenConns {
    count: Cell<usize>,
    idle: Notify,
    load: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

struct OpenGuard(Rc<OpenConns>);

impl OpenGuard {
    fn adopt(open: &Rc<OpenConns>) -> Self {
        open.count.set(open.count.get() + 1);
        open.metrics.connection_opened();
        OpenGuard(open.clone())
    }
}

impl OpenConns {
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
        self.0.load.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.connection_closed();
        if left == 0 {
            self.0.idle.notify_waiters();
        }
    }
}
