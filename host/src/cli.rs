//! The command line: `snow serve`, `snow check` and `snow fetch`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Isolation, ServeConfig};
use crate::deploy::{Deployer, ModuleConfig, MountTable, Registry, Source};
use crate::manifest::{parse_busy_poll, parse_size, Manifest};
use crate::outbound::{Client, ClientConfig};
use crate::runtime::engine::EPOCH_TICK;
use crate::runtime::{self, ArtifactCache, GuestLimits};
use crate::server::Reload;

/// The default app, built from `guest/hello` by the build script.
const DEFAULT_APP: &[u8] = include_bytes!(env!("SNOW_GUEST_HELLO"));
const DEFAULT_APP_NAME: &str = "hello";

#[derive(Parser)]
#[command(
    name = "snow",
    version,
    about = "Serves sandboxed WebAssembly route modules over HTTP/1.1"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a route module (the embedded default app when none is given).
    Serve(ServeArgs),
    /// Check that a module implements Snow's world and print its routes.
    Check(CheckArgs),
    /// Fetch URLs concurrently through the outbound client and report each.
    Fetch(crate::fetch_cmd::FetchArgs),
}

#[derive(Args, Clone)]
struct ModuleArgs {
    /// Linear memory one instance may use [default: 128MiB].
    #[arg(long, value_parser = parse_size)]
    max_memory: Option<u64>,
    /// CPU time one guest call may take before it is stopped [default: 100ms].
    #[arg(long, value_parser = humantime::parse_duration)]
    max_call_time: Option<Duration>,
    /// Wasm stack of a guest call; deeper recursion traps [default: 1MiB].
    #[arg(long, value_parser = parse_size)]
    max_stack: Option<u64>,
    /// `instance`: one long-lived instance per worker; `request`: a fresh
    /// instance for every request, sharing nothing.
    #[arg(long, value_enum, default_value = "instance")]
    isolation: Isolation,
    /// With `--isolation request`: instances alive at once [default: 1000].
    #[arg(long)]
    pool_size: Option<u32>,
    /// A destination the module may fetch from: `scheme://host[:port]`,
    /// `*.` for subdomains; repeat for more. None: every fetch is denied.
    #[arg(long = "allow-outbound", value_name = "RULE")]
    allow_outbound: Vec<String>,
    /// Extra PEM root certificates for outbound HTTPS (private networks).
    #[arg(long, value_name = "FILE")]
    outbound_ca: Option<PathBuf>,
    /// Directory of compiled modules [default: $SNOW_CACHE_DIR, else ~/.cache/snow].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Compile the module on every start instead of using the cache.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Args)]
struct ServeArgs {
    /// What to serve: a module (a wasm32-wasip2 component, mounted at `/`)
    /// or a manifest (`snow.toml`) mounting several.
    module: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8012].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Worker threads, each with its own instance [default: available cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Largest request body accepted; larger ones get 413 [default: 10MiB].
    #[arg(long, value_parser = parse_size)]
    max_body: Option<u64>,
    /// Time a client has to send a request head [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration)]
    header_timeout: Option<Duration>,
    /// Keep-alive connections with no request are closed after this [default: 60s].
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    /// A request not answered within this, parked time included, gets 504 [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration)]
    request_timeout: Option<Duration>,
    /// On SIGINT/SIGTERM, how long in-flight requests may take to finish [default: 30s].
    #[arg(long, value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
    /// Requests one instance may hold parked; more get 503 [default: 16384].
    #[arg(long)]
    max_parked: Option<usize>,
    /// Open connections beyond which new ones get 503 [default: 100000,
    /// lowered to fit the open-file limit].
    #[arg(long)]
    max_connections: Option<usize>,
    /// How long a busy worker keeps polling before it sleeps, yielding its
    /// core to other threads meanwhile; 0s turns it off [default: 15us, at most 1ms].
    #[arg(long, value_parser = parse_busy_poll)]
    busy_poll: Option<Duration>,
    /// Admin API (`/metrics`, `/healthz`, `/modules`), on loopback unless
    /// told otherwise; `off` disables it [default: 127.0.0.1:8013].
    #[arg(long)]
    admin: Option<String>,
    #[command(flatten)]
    module_args: ModuleArgs,
}

#[derive(Args)]
struct CheckArgs {
    /// Module to check.
    module: PathBuf,
    #[command(flatten)]
    module_args: ModuleArgs,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = crate::logging::init();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
        // Its own exit statuses: 1 when a URL failed, 2 for bad arguments.
        Command::Fetch(args) => return crate::fetch_cmd::main(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("snow: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let fd_limit = raise_fd_limit();
    let manifest = match &args.module {
        Some(path) if path.extension().is_some_and(|e| e == "toml") => Some(Manifest::load(path)?),
        _ => None,
    };
    let mut config = ServeConfig {
        admin: parse_admin(config::DEFAULT_ADMIN)?,
        ..ServeConfig::default()
    };
    if let Some(manifest) = &manifest {
        manifest.apply_to(&mut config);
    }
    // Flags given on the command line win over the manifest.
    apply_flags(&args, &mut config)?;
    config.max_connections = config
        .max_connections
        .min(fd_limit.saturating_sub(config::RESERVED_FDS))
        .max(1);
    let stack = manifest
        .as_ref()
        .and_then(|m| {
            m.modules
                .iter()
                .map(|spec| spec.max_stack_or_default())
                .max()
        })
        .unwrap_or_else(|| max_stack(&args.module_args));
    let (modules, reload): (Vec<ModuleConfig>, Option<Reload>) = match manifest {
        Some(manifest) => {
            let defaults = args.module_args.clone();
            let path = manifest.path.clone();
            let reload: Reload = Box::new(move || {
                let manifest = Manifest::load(&path)?;
                Ok(manifest_modules(&manifest, &defaults))
            });
            (manifest_modules(&manifest, &args.module_args), Some(reload))
        }
        None => (
            vec![single_module(args.module.as_ref(), &args.module_args)],
            None,
        ),
    };
    let (engine, _ticker) = engine(&args.module_args, &modules, stack)?;
    let deployer = Deployer::new(
        engine,
        cache(&args.module_args),
        Arc::new(Registry::default()),
    );
    mount_all(&deployer, modules)?;
    let client = Client::new(ClientConfig {
        ca_file: args.module_args.outbound_ca.clone(),
        ..ClientConfig::default()
    })
    .context("configuring the outbound HTTP client")?;
    crate::server::serve(config, deployer, reload, client)
}

fn apply_flags(args: &ServeArgs, config: &mut ServeConfig) -> Result<()> {
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(workers) = args.workers {
        config.workers = workers;
    }
    config.workers = config.workers.max(1);
    if let Some(max_body) = args.max_body {
        config.http.max_body = max_body;
    }
    let timeouts = [
        (args.header_timeout, &mut config.header_timeout),
        (args.idle_timeout, &mut config.idle_timeout),
        (args.request_timeout, &mut config.request_timeout),
        (args.grace, &mut config.grace),
    ];
    for (flag, setting) in timeouts {
        if let Some(value) = flag {
            *setting = value;
        }
    }
    if let Some(max_parked) = args.max_parked {
        config.max_parked = max_parked;
    }
    config.max_parked = config.max_parked.max(1);
    if let Some(max_connections) = args.max_connections {
        config.max_connections = max_connections;
    }
    if let Some(busy_poll) = args.busy_poll {
        config.busy_poll = busy_poll;
    }
    if let Some(admin) = &args.admin {
        config.admin = parse_admin(admin)?;
    }
    Ok(())
}

/// The manifest's modules; settings it leaves out come from the flags,
/// then the defaults.
fn manifest_modules(manifest: &Manifest, flags: &ModuleArgs) -> Vec<ModuleConfig> {
    manifest
        .modules
        .iter()
        .map(|spec| {
            let fallback = limits(flags);
            let call_time = spec
                .max_call_time
                .or(flags.max_call_time)
                .unwrap_or(config::DEFAULT_MAX_CALL_TIME);
            ModuleConfig {
                name: spec.name.clone(),
                prefix: spec.prefix.clone(),
                source: Source::File(spec.wasm.clone()),
                limits: GuestLimits {
                    max_memory: spec.max_memory.map_or(fallback.max_memory, |m| {
                        usize::try_from(m).unwrap_or(usize::MAX)
                    }),
                    call_ticks: call_ticks(call_time),
                    isolation: spec.isolation,
                    env: spec.env.clone(),
                    allow_outbound: spec.allow_outbound.iter().map(|r| r.to_string()).collect(),
                },
                watch: spec.watch,
            }
        })
        .collect()
}

fn check(args: CheckArgs) -> Result<()> {
    let module = single_module(Some(&args.module), &args.module_args);
    let stack = max_stack(&args.module_args);
    let (engine, _ticker) = engine(&args.module_args, std::slice::from_ref(&module), stack)?;
    let deployer = Deployer::new(engine, cache(&args.module_args), Arc::default());
    let wasm = read_source(&module.source)?;
    let mount = deployer.prepare(module, &wasm)?;
    println!(
        "{}: ok, {} routes",
        args.module.display(),
        mount.routes.len()
    );
    for route in &mount.routes {
        let methods = if route.methods.is_empty() {
            "*".to_string()
        } else {
            route.methods.join(",")
        };
        println!("  {methods:<10} {}", route.pattern);
    }
    Ok(())
}

/// Prepares every module before anything is served: at start-up a module
/// that does not load is an error, not a warning.
fn mount_all(deployer: &Deployer, modules: Vec<ModuleConfig>) -> Result<()> {
    let mut mounts = Vec::new();
    for module in modules {
        let name = module.name.clone();
        let wasm = read_source(&module.source)?;
        let mount = deployer
            .prepare(module, &wasm)
            .with_context(|| format!("loading module {name}"))?;
        mounts.push(Arc::new(mount));
    }
    deployer.registry().publish(MountTable::new(mounts));
    Ok(())
}

fn read_source(source: &Source) -> Result<Vec<u8>> {
    match source {
        Source::Embedded(bytes) => Ok(bytes.to_vec()),
        Source::File(path) => {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        }
    }
}

/// `snow serve MODULE.wasm` (or the embedded app) as a one-module table
/// mounted at `/`.
fn single_module(path: Option<&PathBuf>, args: &ModuleArgs) -> ModuleConfig {
    let (name, source) = match path {
        Some(path) => {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "module".into());
            (name, Source::File(path.clone()))
        }
        None => (DEFAULT_APP_NAME.to_string(), Source::Embedded(DEFAULT_APP)),
    };
    ModuleConfig {
        name,
        prefix: "/".into(),
        watch: path.is_some(),
        source,
        limits: limits(args),
    }
}

/// One engine serves every module, so engine-wide settings take the most
/// any module needs: the deepest stack, the pooling allocator if any module
/// is isolated per request, with slots as large as the largest memory.
fn engine(
    args: &ModuleArgs,
    modules: &[ModuleConfig],
    stack: usize,
) -> Result<(wasmtime::Engine, runtime::EpochTicker)> {
    let per_request = modules
        .iter()
        .any(|m| m.limits.isolation == Isolation::Request);
    let largest = modules
        .iter()
        .map(|m| m.limits.max_memory)
        .max()
        .unwrap_or_else(|| max_memory(args));
    let pool = per_request.then(|| runtime::Pool {
        instances: args.pool_size.unwrap_or(config::DEFAULT_POOL_SIZE).max(1),
        max_memory: largest,
    });
    let engine = runtime::new_engine(stack, pool)?;
    let ticker = runtime::EpochTicker::start(&engine)?;
    Ok((engine, ticker))
}

fn cache(args: &ModuleArgs) -> Option<ArtifactCache> {
    if args.no_cache {
        return None;
    }
    let dir = args.cache_dir.clone().or_else(ArtifactCache::default_dir)?;
    match ArtifactCache::open(&dir) {
        Ok(cache) => Some(cache),
        Err(err) => {
            tracing::warn!("compile cache disabled: {err:#}");
            None
        }
    }
}

fn limits(args: &ModuleArgs) -> GuestLimits {
    GuestLimits {
        max_memory: max_memory(args),
        isolation: args.isolation,
        env: Vec::new(),
        allow_outbound: args.allow_outbound.clone(),
        call_ticks: call_ticks(args.max_call_time.unwrap_or(config::DEFAULT_MAX_CALL_TIME)),
    }
}

/// Epoch ticks for a CPU-time limit; the deadline counts from the next
/// tick, so one more is allowed.
fn call_ticks(limit: Duration) -> u64 {
    (limit.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

fn max_stack(args: &ModuleArgs) -> usize {
    args.max_stack.map_or(config::DEFAULT_MAX_STACK, |s| {
        usize::try_from(s).unwrap_or(usize::MAX)
    })
}

fn max_memory(args: &ModuleArgs) -> usize {
    args.max_memory.map_or(config::DEFAULT_MAX_MEMORY, |m| {
        usize::try_from(m).unwrap_or(usize::MAX)
    })
}

fn parse_admin(text: &str) -> Result<Option<SocketAddr>> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .with_context(|| format!("--admin: `{text}` is not an address (or `off`)"))
}

/// Thousands of parked requests need thousands of sockets: lift the soft
/// descriptor limit to the hard one. Returns the limit in force.
fn raise_fd_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return usize::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                limit = wanted;
            } else {
                tracing::warn!("could not raise the open-file limit");
            }
        }
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}
