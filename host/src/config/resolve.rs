//! The one precedence rule: flags given on the command line win over the
//! manifest, which wins over the defaults. Per-module flags apply to every
//! module of the manifest.

use std::time::Duration;

use super::{ModuleLayer, ModuleSettings, ServerLayer, Settings};
use crate::deploy::{ModuleConfig, Source};
use crate::manifest::Manifest;
use crate::runtime::engine::EPOCH_TICK;
use crate::runtime::GuestLimits;

/// What the command line sets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flags {
    pub server: ServerLayer,
    /// Applies to the module given on the command line and to every module
    /// of a manifest.
    pub module: ModuleLayer,
}

/// The settings a run uses.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `module` is what a module given without a manifest runs with.
    pub settings: Settings,
    /// The manifest's modules, in its order; empty without a manifest.
    pub modules: Vec<ModuleConfig>,
}

/// Merges `defaults`, the manifest and the flags, each overriding the one
/// before.
pub fn resolve(defaults: &Settings, manifest: Option<&Manifest>, flags: &Flags) -> Resolved {
    let mut settings = defaults.clone();
    if let Some(manifest) = manifest {
        manifest.server.apply(&mut settings);
    }
    flags.server.apply(&mut settings);
    flags.module.apply(&mut settings.module);
    settings.server.worker_stack = super::worker_stack(settings.engine.max_stack);
    let modules = manifest.map_or_else(Vec::new, |manifest| {
        manifest
            .modules
            .iter()
            .map(|spec| {
                let mut module = defaults.module.clone();
                if manifest.server.stores.is_some() {
                    module.stores = Vec::new();
                }
                spec.settings.apply(&mut module);
                flags.module.apply(&mut module);
                ModuleConfig {
                    name: spec.name.clone(),
                    prefix: spec.prefix.clone(),
                    source: Source::File(spec.wasm.clone()),
                    limits: module.limits(spec.env.clone()),
                    watch: spec.watch,
                }
            })
            .collect()
    });
    Resolved { settings, modules }
}

impl ModuleSettings {
    /// The limits an instance runs under, with `env` as its environment.
    pub fn limits(&self, env: Vec<(String, String)>) -> GuestLimits {
        GuestLimits {
            max_memory: self.max_memory,
            max_body: self.max_body,
            call_ticks: call_ticks(self.max_call_time),
            isolation: self.isolation,
            env,
            allow_outbound: self.allow_outbound.clone(),
            stores: self.stores.clone(),
        }
    }
}

/// Epoch ticks for a CPU-time limit; the deadline counts from the next
/// tick, so one more is allowed.
pub fn call_ticks(limit: Duration) -> u64 {
    (limit.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}
