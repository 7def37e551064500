//! Tiered compilation: a module with no optimised build in the cache is
//! mounted as soon as Winch has compiled it, and Cranelift's build replaces
//! it when ready, as any new version would. Requests parked in the Winch
//! build finish there; new ones go to the replacement.

use std::sync::Arc;
use std::time::Instant;

use super::{probe, short, Deployer, Mount, MountTable};
use crate::runtime::LoadedModule;

impl Deployer {
    /// When `mount` runs Winch's build, compiles Cranelift's on a thread of
    /// its own and swaps it in, unless the module was redeployed or removed
    /// meanwhile.
    pub(super) fn tier_up_later(self: &Arc<Self>, mount: Arc<Mount>, wasm: Vec<u8>) {
        if !self.engines.tiers_up(mount.module.tier) {
            return;
        }
        let this = self.clone();
        let name = mount.config.name.clone();
        let spawned = std::thread::Builder::new()
            .name("snow-tier-up".into())
            .spawn(move || this.tier_up(&mount, &wasm));
        if let Err(err) = spawned {
            tracing::warn!(module = %name, "cannot start compiling the optimised build; the module stays on winch's: {err}");
        }
    }

    fn tier_up(&self, baseline: &Arc<Mount>, wasm: &[u8]) {
        let name = &baseline.config.name;
        let started = Instant::now();
        let built = crate::runtime::background::tier_up(|| {
            LoadedModule::load_optimized(
                &self.engines,
                name,
                wasm,
                self.cache.as_ref(),
                baseline.config.limits.clone(),
                baseline.module.grants.clone(),
            )
            .and_then(|module| Ok((probe(&module)?, module)))
        });
        let (routes, module) = match built {
            Ok(built) => built,
            Err(err) => {
                tracing::warn!(module = %name, "cranelift's build failed; the module stays on winch's: {err:#}");
                return;
            }
        };
        // Deployments hold this lock across their own swap; it is never
        // held across a compile, so the wait is short.
        let _serial = self.serial.blocking_lock();
        let current = self.registry.current();
        if !current
            .find(name)
            .is_some_and(|now| Arc::ptr_eq(now, baseline))
        {
            tracing::info!(
                module = %name,
                hash = %short(&baseline.module.hash),
                "cranelift's build dropped: the module was redeployed or removed meanwhile"
            );
            return;
        }
        let optimized = Arc::new(Mount {
            config: baseline.config.clone(),
            module,
            routes,
            loaded_at: baseline.loaded_at,
            in_flight: Default::default(),
        });
        let mut mounts = self.others(name);
        mounts.push(optimized);
        self.registry.publish(MountTable::new(mounts));
        tracing::info!(
            module = %name,
            hash = %short(&baseline.module.hash),
            ms = started.elapsed().as_millis() as u64,
            "cranelift's build replaced winch's"
        );
    }
}
