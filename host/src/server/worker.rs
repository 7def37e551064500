//! The worker threads: one multi-threaded runtime whose threads share the
//! connections, every dispatcher's slots (see `dispatch`) and the compiled
//! modules. A task that a preempted thread would leave waiting is taken on
//! by another, so on cores shared with other processes a connection waits
//! for a busy core no longer than for a free one.
//!
//! The threads used to have a runtime and connections each: at 64
//! keep-alive connections on two cores shared with the client, p99 was
//! twice hyper's, and hyper served the same way (a single-threaded runtime
//! per thread) had three times its own p99.

use std::cell::Cell;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};

use super::busy_poll::BusyPoll;
use super::dispatch::DispatchLimits;
use super::mounts::Mounts;
use super::service::Service;
use crate::config::ServeConfig;
use crate::deploy::Registry;
use crate::health::Health;
use crate::http::shutdown::Shutdown;
use crate::metrics::Metrics;
use crate::outbound::Client;

/// Once the grace period is over, how long the requests still running get
/// to send their 503 before the workers stop.
const LAST_ANSWERS: Duration = Duration::from_secs(1);

thread_local! {
    /// This worker thread's number, from 0; 0 off the workers.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The number of the worker thread running this; a dispatcher's slot of
/// the same number is the one its requests try first.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Makes this thread worker `index`, for tests of slot choice.
#[cfg(test)]
pub fn set_index(index: usize) {
    INDEX.set(index);
}

pub struct WorkerSetup {
    /// Connections handed over by the acceptor; closed at shutdown.
    pub inbox: mpsc::UnboundedReceiver<std::net::TcpStream>,
    /// Open connections, read by the acceptor.
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
    /// Told once the modules are up (or why they are not).
    pub ready: std::sync::mpsc::Sender<Result<()>>,
}

/// Runs the workers on this thread's runtime until shutdown.
pub fn run(setup: WorkerSetup) -> Result<()> {
    let config = &setup.config;
    let poll = BusyPoll::new(config.busy_poll);
    let slice = config.sched_slice;
    let epoll: Arc<OnceLock<RawFd>> = Arc::default();
    let numbers = Arc::new(AtomicUsize::new(0));
    let build = || {
        let epoll = epoll.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers.max(1))
            .thread_name("snow-worker")
            .thread_stack_size(config.worker_stack)
            .enable_all()
            .on_thread_start(move || {
                // Blocking-pool threads start here too, after the workers:
                // their numbers are past the slots' and wrap around.
                INDEX.set(numbers.fetch_add(1, Ordering::Relaxed));
                if let Err(err) = super::sched_slice::request(slice) {
                    tracing::debug!("scheduling slice {slice:?} not granted: {err}");
                }
            })
            .on_thread_park(move || {
                // What this worker logged goes out before it sleeps.
                crate::logging::flush_thread();
                poll.before_park(epoll.get().copied());
            })
            .on_thread_unpark(move || poll.after_unpark())
            .build()
    };
    // Without polls nothing needs the instance: no listing of descriptors.
    let (runtime, found) = if poll.is_on() {
        super::epoll_fd::build_noting_epoll(build)
    } else {
        (build(), None)
    };
    let runtime = runtime.context("starting the worker runtime")?;
    match found {
        Some(fd) => {
            let _ = epoll.set(fd);
        }
        None if poll.is_on() => tracing::debug!(
            "the runtime's epoll instance is unknown: busy polls run their whole budget"
        ),
        None => {}
    }
    runtime.block_on(serve(setup))
}

async fn serve(setup: WorkerSetup) -> Result<()> {
    let WorkerSetup {
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
        workers: config.workers.max(1),
        max_parked: config.max_parked,
        request_timeout: config.request_timeout,
        max_store_ops: config.max_store_ops,
        stream_idle: config.stream_idle_timeout,
    };
    let (grace_over_tx, grace_over) = watch::channel(false);
    let service = match Mounts::new(registry, metrics.clone(), limits, client) {
        Ok(mounts) => {
            let _ = ready.send(Ok(()));
            Arc::new(Service::new(mounts, grace_over))
        }
        Err(err) => {
            let _ = ready.send(Err(err));
            return Ok(());
        }
    };
    let local_shutdown = Shutdown::new();
    let config = Arc::new(config);
    let open = Arc::new(OpenConns {
        count: AtomicUsize::new(0),
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
                        tracing::warn!("registering a connection failed: {err}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (service, config) = (service.clone(), config.clone());
                let (shutdown, health) = (local_shutdown.clone(), health.clone());
                tokio::spawn(async move {
                    super::conn::serve(stream, service, &config, &shutdown, &health).await;
                    drop(guard);
                });
            },
            _ = shutdown.changed() => break,
        }
    }
    drop(inbox);
    local_shutdown.fire();
    let remaining = open.count.load(Ordering::Relaxed);
    tracing::debug!(connections = remaining, "draining");
    if tokio::time::timeout(config.grace, open.drained())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = open.count.load(Ordering::Relaxed),
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
    count: AtomicUsize,
    idle: Notify,
    load: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

struct OpenGuard(Arc<OpenConns>);

impl OpenGuard {
    fn adopt(open: &Arc<OpenConns>) -> Self {
        open.count.fetch_add(1, Ordering::Relaxed);
        open.metrics.connection_opened();
        OpenGuard(open.clone())
    }
}

impl OpenConns {
    async fn drained(&self) {
        loop {
            // Registered before the count is read, so a close in between
            // is not missed.
            let idle = self.idle.notified();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let left = self.0.count.fetch_sub(1, Ordering::AcqRel) - 1;
        self.0.load.fetch_sub(1, Ordering::Relaxed);
        self.0.metrics.connection_closed();
        if left == 0 {
            self.0.idle.notify_waiters();
        }
    }
}
