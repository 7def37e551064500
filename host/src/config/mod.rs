//! Settings of `snow serve` and `snow check`: their defaults (here, and
//! nowhere else), the layers that override them (the manifest, then the
//! command line) and [`resolve`], the one step that merges them.

mod admin_token;
pub mod bounds;
mod layer;
mod resolve;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::http::Limits;
use crate::kv::{StoreConfig, DEFAULT_STORE};
use crate::outbound::AllowList;

pub use admin_token::{AdminToken, ADMIN_TOKEN_ENV};
pub use layer::{ModuleLayer, ServerLayer};
pub use resolve::{call_ticks, resolve, Flags, Resolved};
pub(crate) use values::saturate;
pub use values::{
    parse_admin, parse_busy_poll, parse_bytes, parse_health, parse_sched_slice, parse_size,
};

/// Default address: the original framework's port, on loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8012";
/// A client must send a whole request head (and each body read) this fast.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// A keep-alive connection with no request in flight is closed after this.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A client that accepts no byte of its answer for this long is closed.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A streaming body that moves no byte for this long is cut off.
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A handler (parked time included) must answer within this, else 504.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long shutdown waits for in-flight requests.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// How long SIGTERM keeps serving with `/readyz` at 503 before accepting
/// stops: none, so that a stop by hand stays instant.
pub const DEFAULT_DRAIN_DELAY: Duration = Duration::ZERO;
/// Linear memory one instance may use.
pub const DEFAULT_MAX_MEMORY: usize = 128 << 20;
/// CPU time one guest call may take before it is stopped.
pub const DEFAULT_MAX_CALL_TIME: Duration = Duration::from_millis(100);
/// Requests one instance may hold parked; more get 503.
pub const DEFAULT_MAX_PARKED: usize = 16 * 1024;
/// Open connections beyond which new ones get 503 and are closed; the
/// default also stays below the open-file limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;
/// Descriptors kept free for listeners, logs and the compile cache.
pub const RESERVED_FDS: usize = 64;
/// Instances the pooling allocator keeps for `--isolation request`: the most
/// requests that can be in flight (parked included) at once in that mode.
pub const DEFAULT_POOL_SIZE: u32 = 1000;
/// Wasm stack of a guest call; deeper recursion traps.
pub const DEFAULT_MAX_STACK: usize = 1 << 20;
/// Admin API address: loopback, next to the default public port.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8013";
/// How long a busy worker polls before it sleeps; see `server::busy_poll`.
pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(15);
/// Longer busy polls only burn CPU: a sleep and wake-up costs less.
pub const MAX_BUSY_POLL: Duration = Duration::from_millis(1);
/// The scheduling slice worker threads ask the kernel for; see
/// `server::sched_slice`. None by default: a 100 µs slice took 15% off
/// the p99 in some runs and 8% off the throughput in others.
pub const DEFAULT_SCHED_SLICE: Duration = Duration::ZERO;
/// The range Linux accepts for a slice (it clamps to it).
pub const MIN_SCHED_SLICE: Duration = Duration::from_micros(100);
pub const MAX_SCHED_SLICE: Duration = Duration::from_millis(100);
/// Store operations one request may start; more complete with an error.
pub const DEFAULT_MAX_STORE_OPS: usize = 1000;
/// Listen backlog; the kernel caps it at `net.core.somaxconn`.
pub const DEFAULT_BACKLOG: i32 = 65535;

/// Whether requests share their worker's instance or get one each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// One long-lived instance per worker; module state persists between
    /// requests.
    Instance,
    /// A fresh instance per request from the pooling allocator; nothing is
    /// shared between requests.
    Request,
}

/// Which compiler builds the code a module serves with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compiler {
    /// A module with no cached optimised build serves at once from Winch,
    /// wasmtime's baseline compiler, until Cranelift's build replaces it.
    Tiered,
    /// Wait for Cranelift's optimised build.
    Cranelift,
    /// Winch only: every deploy compiles in a fraction of the time, and
    /// the code runs slower. For edit-and-reload loops.
    Winch,
}

/// What the server itself runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub backlog: i32,
    pub http: Limits,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    /// Between the chunks of a body streaming in or out.
    pub stream_idle_timeout: Duration,
    /// Until a response's head, parked time and the reading of a streaming
    /// request body included (each chunk read restarts it).
    pub request_timeout: Duration,
    pub grace: Duration,
    /// On SIGTERM, how long to go on serving, `/readyz` answering 503,
    /// before accepting stops and `grace` begins.
    pub drain_delay: Duration,
    pub max_parked: usize,
    pub max_connections: usize,
    /// Store operations one request may start.
    pub max_store_ops: usize,
    pub busy_poll: Duration,
    /// Worker threads' scheduling slice; zero leaves the kernel's default.
    pub sched_slice: Duration,
    /// Where the admin API (metrics) listens; `None` disables it.
    pub admin: Option<SocketAddr>,
    /// Where `/healthz` and `/readyz` alone are served, without a token,
    /// for balancers on other machines; `None` (the default): nowhere but
    /// the admin API.
    pub health: Option<SocketAddr>,
    /// Native stack of a worker thread: guest calls run on it, so it holds
    /// the whole wasm stack on top of the host's own frames.
    pub worker_stack: usize,
    /// File holding the admin API's bearer token.
    pub admin_token_file: Option<PathBuf>,
    /// The token every admin request but `/healthz` must carry: read by
    /// `snow serve` from `admin_token_file` or the environment.
    pub admin_token: Option<AdminToken>,
}

/// Native stack a worker needs besides the wasm stack it runs guests on.
pub const WORKER_STACK_HEADROOM: usize = 2 << 20;

/// A worker thread's stack for a wasm stack limit of `max_stack`.
pub fn worker_stack(max_stack: usize) -> usize {
    max_stack.saturating_add(WORKER_STACK_HEADROOM)
}

/// Settings of the one wasmtime engine every module runs on, which cannot
/// differ between modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Wasm stack of a guest call (wasmtime's `max_wasm_stack`).
    pub max_stack: usize,
    /// Pooling-allocator slots, when a module is isolated per request.
    pub pool_size: u32,
    pub compiler: Compiler,
}

/// What a module runs with when neither its manifest entry nor a flag says
/// otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleSettings {
    /// `None`: the module's world decides (see [`GuestLimits::isolation`]).
    ///
    /// [`GuestLimits::isolation`]: crate::runtime::GuestLimits::isolation
    pub isolation: Option<Isolation>,
    pub max_memory: usize,
    pub max_call_time: Duration,
    /// The longest request body the module takes, streamed or whole; `None`
    /// leaves it to the server's `max_body`.
    pub max_body: Option<u64>,
    /// Empty: every outbound request is denied.
    pub allow_outbound: AllowList,
    /// Names of the stores the module may open; empty denies them all.
    pub stores: Vec<String>,
}

/// Every setting with a value: the defaults, or the outcome of [`resolve`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServeConfig,
    pub engine: EngineConfig,
    pub module: ModuleSettings,
    /// The stores the server opens; with no configuration, one memory
    /// store named `default`.
    pub stores: Vec<StoreConfig>,
}

impl Default for Settings {
    /// The defaults of every setting.
    fn default() -> Self {
        Settings {
            server: ServeConfig {
                listen: DEFAULT_LISTEN.parse().expect("a valid constant address"),
                workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
                backlog: DEFAULT_BACKLOG,
                http: Limits::default(),
                header_timeout: DEFAULT_HEADER_TIMEOUT,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                send_timeout: DEFAULT_SEND_TIMEOUT,
                stream_idle_timeout: DEFAULT_STREAM_IDLE_TIMEOUT,
                request_timeout: DEFAULT_REQUEST_TIMEOUT,
                grace: DEFAULT_GRACE,
                drain_delay: DEFAULT_DRAIN_DELAY,
                max_parked: DEFAULT_MAX_PARKED,
                max_connections: DEFAULT_MAX_CONNECTIONS,
                max_store_ops: DEFAULT_MAX_STORE_OPS,
                busy_poll: DEFAULT_BUSY_POLL,
                sched_slice: DEFAULT_SCHED_SLICE,
                admin: Some(DEFAULT_ADMIN.parse().expect("a valid constant address")),
                health: None,
                worker_stack: worker_stack(DEFAULT_MAX_STACK),
                admin_token_file: None,
                admin_token: None,
            },
            engine: EngineConfig {
                max_stack: DEFAULT_MAX_STACK,
                pool_size: DEFAULT_POOL_SIZE,
                compiler: Compiler::Tiered,
            },
            module: ModuleSettings {
                isolation: None,
                max_body: None,
                max_memory: DEFAULT_MAX_MEMORY,
                max_call_time: DEFAULT_MAX_CALL_TIME,
                allow_outbound: AllowList::default(),
                stores: vec![DEFAULT_STORE.to_owned()],
            },
            stores: vec![StoreConfig::default_memory()],
        }
    }
}
