//! The reactor: listeners, worker threads, connections, parked requests, and
//! graceful shutdown.

mod admin;
mod busy_poll;
mod conn;
mod dispatch;
mod drain;
mod epoll_fd;
mod fetch_op;
mod listener;
mod mounts;
mod proxy_dispatch;
mod sched_slice;
mod service;
#[cfg(test)]
mod test_support;
mod worker;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio::sync::watch;

use crate::config::ServeConfig;
use crate::deploy::{Deployer, ModuleConfig, MountTable};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::outbound::Client;
use drain::Signals;

/// Re-reads the set of modules to serve (the manifest) on SIGHUP.
pub type Reload = Box<dyn Fn() -> Result<Vec<ModuleConfig>> + Send>;

/// Serves the modules mounted in `deployer`'s registry until SIGINT or
/// SIGTERM (after the drain delay), then drains and returns.
///
/// `health` is what `/readyz` reports: checks registered on it before this
/// is called are run for every probe; this marks it serving once the
/// workers have their modules, and draining on the stop signal.
pub fn serve(
    config: ServeConfig,
    deployer: Arc<Deployer>,
    reload: Option<Reload>,
    client: Client,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
) -> Result<()> {
    let listener = listener::bind(config.listen, config.backlog)?;
    let addr = listener.local_addr().context("reading the bound address")?;
    // Bound before the workers start, so a taken admin or health port
    // fails start-up.
    let admin = bind_side(config.admin, "the admin listener")?;
    let probes = bind_side(config.health, "the health listener")?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (sender, inbox) = tokio::sync::mpsc::unbounded_channel();
    let load = Arc::new(AtomicUsize::new(0));
    let workers = listener::WorkerInbox {
        sender,
        load: load.clone(),
    };
    let setup = worker::WorkerSetup {
        inbox,
        load,
        registry: deployer.registry().clone(),
        config: config.clone(),
        shutdown: shutdown_rx.clone(),
        metrics: metrics.clone(),
        client: client.clone(),
        health: health.clone(),
        ready: ready_tx,
    };
    // The workers' runtime is driven from a thread of its own, which takes
    // the acceptor's connections and drains them at shutdown.
    let pool = thread::Builder::new()
        .name("snow-workers".into())
        .spawn(move || {
            if let Err(err) = worker::run(setup) {
                tracing::error!("workers failed: {err:#}");
            }
        })
        .context("starting the workers")?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            let _ = shutdown_tx.send(true);
            return Err(err.context("starting the workers"));
        }
        Err(_) => return Err(anyhow!("the workers exited during start-up")),
    }
    health.set_serving();
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
        admin.as_ref().map(|(_, addr)| *addr),
        probes.as_ref().map(|(_, addr)| *addr),
        &deployer.registry().current(),
        deployer.stores(),
        config.workers,
    );
    let public = Public {
        listener,
        workers,
        max_connections: config.max_connections,
    };
    let control = Control {
        admin: admin.map(|(listener, _)| listener),
        probes: probes.map(|(listener, _)| listener),
        admin_token: config.admin_token.clone(),
        metrics,
        deployer,
        reload,
        health,
        drain_delay: config.drain_delay,
    };
    accept_until_signal(&runtime, signals, public, control)?;
    tracing::info!(
        "accepting stopped; in-flight requests have {} to finish",
        humantime::format_duration(config.grace)
    );
    let _ = shutdown_tx.send(true);
    let _ = pool.join();
    tracing::info!("stopped");
    Ok(())
}

/// A listener beside the public one, with its bound address (port 0
/// picks one), unless turned off.
fn bind_side(
    addr: Option<SocketAddr>,
    what: &'static str,
) -> Result<Option<(std::net::TcpListener, SocketAddr)>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = listener::bind(addr, 128).context(what)?;
    let bound = listener
        .local_addr()
        .with_context(|| format!("reading the address of {what}"))?;
    Ok(Some((listener, bound)))
}

/// The first line is what scripts and tests read to find the address.
fn print_banner(
    addr: &SocketAddr,
    admin: Option<SocketAddr>,
    health: Option<SocketAddr>,
    table: &MountTable,
    stores: &crate::kv::Stores,
    workers: usize,
) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "snow listening on http://{addr}");
    if let Some(admin) = admin {
        let _ = writeln!(
            out,
            "admin api on http://{admin} (/metrics, /healthz, /readyz, /modules)"
        );
    }
    if let Some(health) = health {
        let _ = writeln!(out, "health on http://{health} (/healthz, /readyz)");
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
    workers: listener::WorkerInbox,
    max_connections: usize,
}

/// What the acceptor thread runs besides accepting.
struct Control {
    admin: Option<std::net::TcpListener>,
    /// The health listener.
    probes: Option<std::net::TcpListener>,
    admin_token: Option<crate::config::AdminToken>,
    metrics: Arc<Metrics>,
    deployer: Arc<Deployer>,
    reload: Option<Reload>,
    health: Arc<Health>,
    drain_delay: Duration,
}

/// Runs the acceptor, the admin API, the health listener, the file watcher
/// and SIGHUP reloads on this thread until SIGINT or SIGTERM (and its drain
/// delay); returning drops the listeners, so no connection is accepted
/// after that.
fn accept_until_signal(
    runtime: &tokio::runtime::Runtime,
    mut signals: Signals,
    public: Public,
    control: Control,
) -> Result<()> {
    runtime.block_on(async {
        let Control {
            admin,
            probes,
            admin_token,
            metrics,
            deployer,
            reload,
            health,
            drain_delay,
        } = control;
        // Dropped on return, which stops the side listeners.
        let (_sides_stop, sides_stopped) = watch::channel(());
        if let Some(admin) = admin {
            let state = admin::AdminState::new(
                metrics.clone(),
                deployer.clone(),
                admin_token,
                health.clone(),
            );
            spawn_side(admin, state, sides_stopped.clone())?;
        }
        if let Some(probes) = probes {
            let state = admin::AdminState::health_only(health.clone());
            spawn_side(probes, state, sides_stopped)?;
        }
        let (mut watch, watching) = crate::deploy::watch::FileWatch::start(deployer.clone())?;
        let watcher = tokio::spawn(watching);
        let stop = async move {
            let hangup = async || {
                on_hangup(&deployer, reload.as_ref()).await;
                watch.rewatch(&deployer);
            };
            drain::until_stop(&mut signals, &health, drain_delay, hangup).await;
        };
        let Public {
            listener,
            workers,
            max_connections,
        } = public;
        let result =
            listener::serve_public(listener, workers, max_connections, &metrics, stop).await;
        watcher.abort();
        result
    })
}

/// Serves the admin API or the health listener on this runtime until
/// `stopped`'s sender is dropped.
fn spawn_side(
    listener: std::net::TcpListener,
    state: admin::AdminState,
    mut stopped: watch::Receiver<()>,
) -> Result<()> {
    let name = state.name();
    let listener = tokio::net::TcpListener::from_std(listener)
        .with_context(|| format!("registering the {name}"))?;
    tokio::spawn(async move {
        let stop = async move {
            // Only the sender's drop ends this: nothing is ever sent.
            while stopped.changed().await.is_ok() {}
        };
        if let Err(err) = admin::serve(listener, state, stop).await {
            tracing::error!("{name} failed: {err:#}");
        }
    });
    Ok(())
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
