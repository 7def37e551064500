//! The reactor: listeners, worker threads, connections, parked requests, and
//! graceful shutdown.

mod admin;
mod conn;
mod dispatch;
mod listener;
mod worker;

use std::io::Write;
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc};
use std::thread;

use anyhow::{anyhow, Context, Result};
use tokio::sync::watch;

use crate::config::ServeConfig;
use crate::metrics::Metrics;
use crate::runtime::bindings::Route;
use crate::runtime::LoadedModule;

/// Serves `module` until SIGINT or SIGTERM, then drains and returns.
pub fn serve(config: ServeConfig, module: Arc<LoadedModule>, routes: &[Route]) -> Result<()> {
    let listener = listener::bind(config.listen, config.backlog)?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // Bound before the workers start, so a taken admin port fails start-up.
    let admin = match config.admin {
        Some(admin_addr) => Some(listener::bind(admin_addr, 128).context("the admin listener")?),
        None => None,
    };
    let admin_addr = match &admin {
        Some(l) => Some(l.local_addr().context("reading the admin address")?),
        None => None,
    };
    let metrics = Metrics::new();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut threads = Vec::new();
    let mut inboxes = Vec::new();
    for index in 0..config.workers {
        let (sender, inbox) = tokio::sync::mpsc::unbounded_channel();
        let load = Arc::new(AtomicUsize::new(0));
        inboxes.push(listener::WorkerInbox {
            sender,
            load: load.clone(),
        });
        let setup = worker::WorkerSetup {
            index,
            inbox,
            load,
            module: module.clone(),
            config: config.clone(),
            shutdown: shutdown_rx.clone(),
            metrics: metrics.clone(),
            ready: ready_tx.clone(),
        };
        let handle = thread::Builder::new()
            .name(format!("snow-worker-{index}"))
            .spawn(move || {
                if let Err(err) = worker::run(setup) {
                    tracing::error!(worker = index, "worker failed: {err:#}");
                }
            })
            .context("starting a worker thread")?;
        threads.push(handle);
    }
    drop(ready_tx);
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                let _ = shutdown_tx.send(true);
                return Err(err.context("starting a worker"));
            }
            Err(_) => return Err(anyhow!("a worker exited during start-up")),
        }
    }
    print_banner(&addr, admin_addr, &module.name, routes, config.workers);
    let public = Public {
        listener,
        inboxes,
        max_connections: config.max_connections,
    };
    accept_until_signal(public, admin, metrics)?;
    tracing::info!("shutting down: no new connections; draining in-flight requests");
    let _ = shutdown_tx.send(true);
    for handle in threads {
        let _ = handle.join();
    }
    tracing::info!("stopped");
    Ok(())
}

/// The first line is what scripts and tests read to find the address.
fn print_banner(
    addr: &std::net::SocketAddr,
    admin: Option<std::net::SocketAddr>,
    module: &str,
    routes: &[Route],
    workers: usize,
) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "snow listening on http://{addr}");
    if let Some(admin) = admin {
        let _ = writeln!(out, "admin api on http://{admin} (/metrics, /healthz)");
    }
    let _ = writeln!(out, "module {module} ({workers} workers), routes:");
    for route in routes {
        let methods = if route.methods.is_empty() {
            "*".to_string()
        } else {
            route.methods.join(",")
        };
        let _ = writeln!(out, "  {methods:<10} {}", route.pattern);
    }
    let _ = out.flush();
}

/// The public side handed to the acceptor.
struct Public {
    listener: std::net::TcpListener,
    inboxes: Vec<listener::WorkerInbox>,
    max_connections: usize,
}

/// Runs the acceptor and the admin API on this thread until SIGINT or
/// SIGTERM; returning drops the listeners, so no connection is accepted
/// after the signal.
fn accept_until_signal(
    public: Public,
    admin: Option<std::net::TcpListener>,
    metrics: Arc<Metrics>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the acceptor runtime")?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("watching SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("watching SIGINT")?;
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(admin) = admin {
            let admin = tokio::net::TcpListener::from_std(admin)
                .context("registering the admin listener")?;
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let stop = async {
                    let _ = admin_stopped.await;
                };
                if let Err(err) = admin::serve(admin, metrics, stop).await {
                    tracing::error!("admin API failed: {err:#}");
                }
            });
        }
        let stop = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        let Public {
            listener,
            inboxes,
            max_connections,
        } = public;
        let result =
            listener::accept_loop(listener, inboxes, max_connections, &metrics, stop).await;
        let _ = admin_stop.send(());
        result
    })
}
