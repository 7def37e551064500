//! The reactor: listeners, worker threads, connections, parked requests, and
//! graceful shutdown.

mod admin;
mod busy_poll;
mod conn;
mod dispatch;
mod fetch_op;
mod listener;
mod mounts;
mod service;
#[cfg(test)]
mod test_support;
mod worker;

use std::io::Write;
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc};
use std::thread;

use anyhow::{anyhow, Context, Result};
use tokio::sync::watch;

use crate::config::ServeConfig;
use crate::deploy::{Deployer, ModuleConfig, MountTable};
use crate::metrics::Metrics;
use crate::outbound::Client;

/// Re-reads the set of modules to serve (the manifest) on SIGHUP.
pub type Reload = Box<dyn Fn() -> Result<Vec<ModuleConfig>> + Send>;

/// Serves the modules mounted in `deployer`'s registry until SIGINT or
/// SIGTERM, then drains and returns.
pub fn serve(
    config: ServeConfig,
    deployer: Arc<Deployer>,
    reload: Option<Reload>,
    client: Client,
    metrics: Arc<Metrics>,
) -> Result<()> {
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
            registry: deployer.registry().clone(),
            config: config.clone(),
            shutdown: shutdown_rx.clone(),
            metrics: metrics.clone(),
            client: client.clone(),
            ready: ready_tx.clone(),
        };
        let handle = thread::Builder::new()
            .name(format!("snow-worker-{index}"))
            .stack_size(config.worker_stack)
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
    // Signals are watched before the banner says we are up: a SIGHUP sent
    // right after it must reload, not kill the process.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the acceptor runtime")?;
    let signals = {
        let _entered = runtime.enter();
        Signals::watch()?
    };
    print_banner(
        &addr,
        admin_addr,
        &deployer.registry().current(),
        deployer.stores(),
        config.workers,
    );
    let public = Public {
        listener,
        inboxes,
        max_connections: config.max_connections,
    };
    let control = Control {
        admin,
        admin_token: config.admin_token.clone(),
        metrics,
        deployer,
        reload,
    };
    accept_until_signal(&runtime, signals, public, control)?;
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
    table: &MountTable,
    stores: &crate::kv::Stores,
    workers: usize,
) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "snow listening on http://{addr}");
    if let Some(admin) = admin {
        let _ = writeln!(
            out,
            "admin api on http://{admin} (/metrics, /healthz, /modules)"
        );
    }
    for store in stores.iter() {
        let _ = writeln!(out, "store {} ({})", store.name, store.kind());
    }
    let _ = writeln!(out, "{workers} workers, {} modules:", table.mounts.len());
    for mount in &table.mounts {
        let granted: Vec<&str> = mount.module.grants.names().collect();
        let granted = match granted.is_empty() {
            true => String::new(),
            false => format!(", stores {}", granted.join(", ")),
        };
        let _ = writeln!(
            out,
            "module {} at {} ({}{granted})",
            mount.config.name,
            mount.config.prefix,
            mount.module.hash.get(..12).unwrap_or_default()
        );
        for route in &mount.routes {
            let methods = if route.methods.is_empty() {
                "*".to_string()
            } else {
                route.methods.join(",")
            };
            let _ = writeln!(out, "  {methods:<10} {}", route.pattern);
        }
    }
    let _ = out.flush();
}

/// The public side handed to the acceptor.
struct Public {
    listener: std::net::TcpListener,
    inboxes: Vec<listener::WorkerInbox>,
    max_connections: usize,
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must run inside the acceptor runtime.
    fn watch() -> Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("watching SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("watching SIGINT")?,
            hup: signal(SignalKind::hangup()).context("watching SIGHUP")?,
        })
    }
}

/// What the acceptor thread runs besides accepting.
struct Control {
    admin: Option<std::net::TcpListener>,
    admin_token: Option<crate::config::AdminToken>,
    metrics: Arc<Metrics>,
    deployer: Arc<Deployer>,
    reload: Option<Reload>,
}

/// Runs the acceptor, the admin API, the file watcher and SIGHUP reloads on
/// this thread until SIGINT or SIGTERM; returning drops the listeners, so no
/// connection is accepted after the signal.
fn accept_until_signal(
    runtime: &tokio::runtime::Runtime,
    signals: Signals,
    public: Public,
    control: Control,
) -> Result<()> {
    runtime.block_on(async {
        let Signals {
            mut term,
            mut int,
            mut hup,
        } = signals;
        let Control {
            admin,
            admin_token,
            metrics,
            deployer,
            reload,
        } = control;
        let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
        if let Some(admin) = admin {
            let admin = tokio::net::TcpListener::from_std(admin)
                .context("registering the admin listener")?;
            let state = admin::AdminState::new(metrics.clone(), deployer.clone(), admin_token);
            tokio::spawn(async move {
                let stop = async {
                    let _ = admin_stopped.await;
                };
                if let Err(err) = admin::serve(admin, state, stop).await {
                    tracing::error!("admin API failed: {err:#}");
                }
            });
        }
        let (mut watch, watching) = crate::deploy::watch::FileWatch::start(deployer.clone())?;
        let watcher = tokio::spawn(watching);
        let stop = async move {
            loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = int.recv() => return,
                    _ = hup.recv() => {
                        on_hangup(&deployer, reload.as_ref()).await;
                        watch.rewatch(&deployer);
                    }
                }
            }
        };
        let Public {
            listener,
            inboxes,
            max_connections,
        } = public;
        let result =
            listener::serve_public(listener, inboxes, max_connections, &metrics, stop).await;
        let _ = admin_stop.send(());
        watcher.abort();
        result
    })
}

/// SIGHUP: re-read the manifest and apply it, or, serving a single module,
/// re-read its file.
async fn on_hangup(deployer: &Arc<Deployer>, reload: Option<&Reload>) {
    tracing::info!("SIGHUP: reloading modules");
    let Some(reload) = reload else {
        let names: Vec<String> = deployer
            .registry()
            .current()
            .mounts
            .iter()
            .map(|m| m.config.name.clone())
            .collect();
        for name in names {
            if let Err(err) = deployer.reload(&name).await {
                tracing::error!(module = %name, "reload failed; the running version stays: {err:#}");
            }
        }
        return;
    };
    match reload() {
        Ok(configs) => {
            let errors = deployer.apply(configs).await;
            if errors.is_empty() {
                tracing::info!("SIGHUP: modules reloaded");
            }
        }
        Err(err) => tracing::error!("SIGHUP: the manifest is not usable; nothing changed: {err:#}"),
    }
}
