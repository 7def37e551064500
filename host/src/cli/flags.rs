//! Settings flags. Each is `None` (or empty) unless given, so that only
//! flags actually on the command line override the manifest; the defaults
//! named in the help live in [`crate::config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::config::{self, bounds, Compiler, Flags, Isolation, ModuleLayer, ServerLayer};
use crate::kv::StoreConfig;
use crate::outbound::{AllowList, AllowRule};

/// Flags for the modules served, and for the engine that runs them all.
#[derive(Args, Clone, Debug)]
pub(super) struct ModuleArgs {
    /// Linear memory one instance may use; with a manifest, for every
    /// module [default: 128MiB].
    #[arg(long, value_parser = bounds::arg::max_memory)]
    max_memory: Option<usize>,
    /// CPU time one guest call may take before it is stopped; with a
    /// manifest, for every module [default: 100ms].
    #[arg(long, value_parser = bounds::arg::time(&bounds::MAX_CALL_TIME))]
    max_call_time: Option<Duration>,
    /// Wasm stack of a guest call; deeper recursion traps. One setting for
    /// the whole server, as one engine runs every module [default: 1MiB].
    #[arg(long, value_parser = bounds::arg::max_stack)]
    max_stack: Option<usize>,
    /// `instance`: one long-lived instance per worker; `request`: a fresh
    /// instance for every request, sharing nothing. With a manifest, for
    /// every module [default: instance].
    #[arg(long, value_enum)]
    isolation: Option<Isolation>,
    /// With `--isolation request`: instances alive at once [default: 1000].
    #[arg(long, value_parser = bounds::arg::slots(&bounds::POOL_SIZE))]
    pool_size: Option<u32>,
    /// A destination the module may fetch from: `scheme://host[:port]`,
    /// `*.` for subdomains; repeat for more. None: every fetch is denied.
    /// With a manifest, these replace every module's `allow_outbound`.
    #[arg(long = "allow-outbound", value_name = "RULE")]
    allow_outbound: Vec<AllowRule>,
    /// A store the module may open: NAME=memory, NAME=file:PATH or
    /// NAME=redis://HOST[:PORT][/DB]; repeat for more. None: one memory
    /// store named `default`. With a manifest, declare stores there.
    #[arg(long = "store", value_name = "NAME=BACKEND", value_parser = StoreConfig::parse_flag)]
    pub stores: Vec<StoreConfig>,
    /// Store operations one request may start; more fail [default: 1000].
    #[arg(long, value_parser = bounds::arg::count(&bounds::MAX_STORE_OPS))]
    max_store_ops: Option<usize>,
    /// Directory of compiled modules [default: $SNOW_CACHE_DIR, else ~/.cache/snow].
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Compile the module on every start instead of using the cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// Server-wide flags of `snow serve`.
#[derive(Args, Clone, Debug)]
pub(super) struct ServerArgs {
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8012].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Worker threads, which share the connections; each module has an instance per worker [default: available cores].
    #[arg(long, value_parser = bounds::arg::count(&bounds::WORKERS))]
    workers: Option<usize>,
    /// Largest request body accepted; larger ones get 413 [default: 10MiB].
    #[arg(long, value_parser = bounds::arg::max_body)]
    max_body: Option<u64>,
    /// Time a client has to send a request head [default: 30s].
    #[arg(long, value_parser = bounds::arg::time(&bounds::TIMEOUT))]
    header_timeout: Option<Duration>,
    /// Keep-alive connections with no request are closed after this [default: 60s].
    #[arg(long, value_parser = bounds::arg::time(&bounds::TIMEOUT))]
    idle_timeout: Option<Duration>,
    /// A client that accepts no byte of its answer for this long is closed
    /// [default: 10s, at most 1h].
    #[arg(long, value_parser = bounds::arg::time(&bounds::SEND_TIMEOUT))]
    send_timeout: Option<Duration>,
    /// A body streaming in either direction that moves no byte for this
    /// long is cut off [default: 60s, at most 24h].
    #[arg(long, value_parser = bounds::arg::time(&bounds::STREAM_IDLE_TIMEOUT))]
    stream_idle_timeout: Option<Duration>,
    /// A request not answered within this, parked time included, gets 504 [default: 30s].
    #[arg(long, value_parser = bounds::arg::time(&bounds::TIMEOUT))]
    request_timeout: Option<Duration>,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish [default: 30s].
    #[arg(long, value_parser = bounds::arg::time(&bounds::GRACE))]
    grace: Option<Duration>,
    /// On SIGTERM, how long to keep serving with `/readyz` answering 503,
    /// so balancers stop sending traffic, before accepting stops and the
    /// grace period begins; a second SIGTERM or a SIGINT ends it early
    /// [default: 0s, at most 10m].
    #[arg(long, value_parser = bounds::arg::time(&bounds::DRAIN_DELAY))]
    drain_delay: Option<Duration>,
    /// Requests one instance may hold parked; more get 503 [default: 16384].
    #[arg(long, value_parser = bounds::arg::count(&bounds::MAX_PARKED))]
    max_parked: Option<usize>,
    /// Open connections beyond which new ones get 503 [default: 100000,
    /// lowered to fit the open-file limit].
    #[arg(long, value_parser = bounds::arg::count(&bounds::MAX_CONNECTIONS))]
    max_connections: Option<usize>,
    /// How long a busy worker keeps polling before it sleeps, yielding its
    /// core to other threads meanwhile; 0s turns it off [default: 15us, at most 1ms].
    #[arg(long, value_parser = config::parse_busy_poll)]
    busy_poll: Option<Duration>,
    /// Scheduling slice worker threads ask Linux for (6.12 and later), so
    /// that a request on a worker another thread preempted waits less; 0s
    /// keeps the kernel's [default: 0s; else from 100us to 100ms].
    #[arg(long, value_parser = config::parse_sched_slice)]
    sched_slice: Option<Duration>,
    /// Admin API (`/metrics`, `/healthz`, `/readyz`, `/modules`), on
    /// loopback unless told otherwise; `off` disables it
    /// [default: 127.0.0.1:8013].
    #[arg(long, value_parser = admin)]
    admin: Option<Admin>,
    /// File holding the bearer token admin requests must carry (all but
    /// `/healthz` and `/readyz`); or set $SNOW_ADMIN_TOKEN. Required when
    /// `--admin` is not on loopback. The file must not be readable by
    /// group or others.
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// `tiered`: a module whose optimised build is not in the cache serves
    /// at once from Winch's quick build, and Cranelift's replaces it when
    /// ready, as a hot swap does; `cranelift`: wait for the optimised build;
    /// `winch`: Winch only, for fast reloads while developing [default: tiered].
    #[arg(long, value_enum)]
    compiler: Option<Compiler>,
    /// A listener serving only `/healthz` and `/readyz`, never asking for
    /// a token, for balancers on other machines; `off` disables it
    /// [default: off].
    #[arg(long, value_name = "ADDR", value_parser = health)]
    health: Option<Health>,
}

/// `--admin`'s value: an address, or `None` for `off`.
#[derive(Clone, Copy, Debug)]
struct Admin(Option<SocketAddr>);

fn admin(text: &str) -> Result<Admin, String> {
    config::parse_admin(text).map(Admin)
}

/// `--health`'s value: an address, or `None` for `off`.
#[derive(Clone, Copy, Debug)]
struct Health(Option<SocketAddr>);

fn health(text: &str) -> Result<Health, String> {
    config::parse_health(text).map(Health)
}

impl ModuleArgs {
    fn module_layer(&self) -> ModuleLayer {
        ModuleLayer {
            isolation: self.isolation,
            max_memory: self.max_memory,
            max_call_time: self.max_call_time,
            // One module: the server's --max-body is its limit.
            max_body: None,
            allow_outbound: (!self.allow_outbound.is_empty())
                .then(|| AllowList::new(self.allow_outbound.clone())),
            stores: None,
        }
    }

    fn declared_stores(&self) -> Option<Vec<StoreConfig>> {
        (!self.stores.is_empty()).then(|| self.stores.clone())
    }

    /// The flags `snow check` takes: those of the module and the engine.
    pub fn flags(&self) -> Flags {
        Flags {
            server: ServerLayer {
                max_stack: self.max_stack,
                pool_size: self.pool_size,
                max_store_ops: self.max_store_ops,
                stores: self.declared_stores(),
                ..ServerLayer::default()
            },
            module: self.module_layer(),
        }
    }
}

impl ServerArgs {
    /// The flags given to `snow serve`.
    pub fn flags(&self, module: &ModuleArgs) -> Flags {
        Flags {
            server: ServerLayer {
                listen: self.listen,
                workers: self.workers,
                busy_poll: self.busy_poll,
                sched_slice: self.sched_slice,
                admin: self.admin.map(|Admin(admin)| admin),
                admin_token_file: self.admin_token_file.clone(),
                health: self.health.map(|Health(health)| health),
                max_body: self.max_body,
                header_timeout: self.header_timeout,
                idle_timeout: self.idle_timeout,
                send_timeout: self.send_timeout,
                stream_idle_timeout: self.stream_idle_timeout,
                request_timeout: self.request_timeout,
                grace: self.grace,
                drain_delay: self.drain_delay,
                max_parked: self.max_parked,
                max_connections: self.max_connections,
                max_stack: module.max_stack,
                pool_size: module.pool_size,
                compiler: self.compiler,
                max_store_ops: module.max_store_ops,
                stores: module.declared_stores(),
            },
            module: module.module_layer(),
        }
    }
}
