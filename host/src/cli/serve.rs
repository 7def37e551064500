//! `snow serve`: one module, the embedded default app, or a manifest.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;

use super::flags::{ModuleArgs, ServerArgs};
use super::load::{cache, engine, mount_all, single_module};
use crate::config::{self, resolve, AdminToken, Flags, Resolved, Settings};
use crate::deploy::{Deployer, Registry};
use crate::health::Health;
use crate::kv::Stores;
use crate::manifest::Manifest;
use crate::metrics::Metrics;
use crate::outbound::{Client, ClientConfig};
use crate::server::Reload;

#[derive(Args)]
pub(super) struct ServeArgs {
    /// What to serve: a module (a wasm32-wasip2 component, mounted at `/`)
    /// or a manifest (`snow.toml`) mounting several.
    pub(super) module: Option<PathBuf>,
    #[command(flatten)]
    pub(super) options: ServeOptions,
}

/// Every flag of `snow serve` but what to serve; `snow dev` takes them too.
#[derive(Args)]
pub(super) struct ServeOptions {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    module_args: ModuleArgs,
    /// Extra PEM root certificates for outbound HTTPS (private networks).
    #[arg(long, value_name = "FILE")]
    outbound_ca: Option<PathBuf>,
}

impl ServeArgs {
    pub(super) fn flags(&self) -> Flags {
        let options = &self.options;
        options.server.flags(&options.module_args)
    }
}

pub(super) fn serve(args: ServeArgs) -> Result<()> {
    let fd_limit = raise_fd_limit();
    return_large_buffers();
    crate::runtime::background::compile_in_background();
    let manifest = match &args.module {
        Some(path) if is_manifest(path) => Some(Manifest::load(path)?),
        _ => None,
    };
    let flags = args.flags();
    let defaults = Settings::default();
    let Resolved { settings, modules } = resolve(&defaults, manifest.as_ref(), &flags);
    let mut config = settings.server.clone();
    config.max_connections = config
        .max_connections
        .min(fd_limit.saturating_sub(config::RESERVED_FDS))
        .max(1);
    config.admin_token = admin_token(config.admin, config.admin_token_file.as_deref())?;
    let options = &args.options;
    if manifest.is_some() && !options.module_args.stores.is_empty() {
        bail!("--store declares stores for a single module; with a manifest, declare them as [[store]] tables");
    }
    let (modules, reload) = match manifest {
        Some(manifest) => {
            // The same flags keep winning over the manifest when it is
            // re-read; its server-wide settings apply at start only.
            let path = manifest.path.clone();
            let stores = settings.stores.clone();
            let reload: Reload = Box::new(move || {
                let manifest = Manifest::load(&path)?;
                let resolved = resolve(&defaults, Some(&manifest), &flags);
                if resolved.settings.stores != stores {
                    bail!("the manifest's [[store]] tables changed: stores are opened at start, so restart to change them");
                }
                Ok(resolved.modules)
            });
            (modules, Some(reload))
        }
        None => (vec![single_module(args.module.as_deref(), &settings)], None),
    };
    let (engine, _ticker) = engine(&settings.engine, &modules)?;
    let metrics = Metrics::new();
    let stores = Stores::open(&settings.stores, &metrics)?;
    let deployer = Deployer::new(
        engine,
        cache(&options.module_args),
        Arc::new(Registry::default()),
        stores,
    );
    mount_all(&deployer, modules)?;
    let client = Client::new(ClientConfig {
        ca_file: options.outbound_ca.clone(),
        ..ClientConfig::default()
    })
    .context("configuring the outbound HTTP client")?;
    // Whatever needs a dependency up to serve registers its readiness
    // check here, before the server starts probing.
    let health = Health::new();
    for store in deployer.stores().iter() {
        let store = store.clone();
        health.add_check(format!("store {}", store.name), move || store.ready());
    }
    crate::server::serve(config, deployer, reload, client, metrics, health)
}

/// The admin token, when one is configured. Without one, the admin API may
/// listen on loopback only: off it, anyone who reaches the port could
/// replace the running code.
fn admin_token(
    admin: Option<std::net::SocketAddr>,
    file: Option<&Path>,
) -> Result<Option<AdminToken>> {
    let token = AdminToken::configured(file).map_err(|err| anyhow!(err))?;
    if let Some(addr) = admin {
        if token.is_none() && !addr.ip().is_loopback() {
            bail!(
                "the admin API on {addr} is not on loopback and has no token: anyone who \
                 reaches it could deploy code. Set {} or --admin-token-file, or bind it \
                 to 127.0.0.1",
                config::ADMIN_TOKEN_ENV
            );
        }
    }
    Ok(token)
}

pub(super) fn is_manifest(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
}

/// Large request and response bodies are allocated apart and given back to
/// the system when freed. Without this, glibc raises its mmap threshold to
/// the size of the first large buffer freed, and every later body of that
/// size stays in the heap once freed: connections closed for not reading
/// their answers would leave the process as large as when they were stuck.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_buffers() {
    /// Smaller allocations stay in the heap, where reuse is cheap.
    const LARGE: libc::c_int = 1 << 20;
    // SAFETY: mallopt only changes the allocator's parameters.
    if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE) } != 1 {
        tracing::warn!("could not set the allocator's mmap threshold");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_buffers() {}

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
