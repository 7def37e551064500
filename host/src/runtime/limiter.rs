//! The store's resource limits, remembering when they refused a memory
//! growth. A guest that cannot grow its memory usually dies by its own
//! allocator's abort (`unreachable`), which would otherwise read as a
//! panic; with this record, the trap is counted as the memory limit it is.

use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};

pub struct Limiter {
    inner: StoreLimits,
    /// The size a refused growth asked for, since the last [`Self::take_refusal`].
    refused: Option<usize>,
}

impl Limiter {
    pub fn new(max_memory: usize) -> Self {
        let inner = StoreLimitsBuilder::new()
            .memory_size(max_memory)
            .instances(64)
            .tables(64)
            .memories(16)
            .build();
        Self {
            inner,
            refused: None,
        }
    }

    /// The size of the last refused memory growth, clearing it.
    pub fn take_refusal(&mut self) -> Option<usize> {
        self.refused.take()
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.refused = Some(desired);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The pooling allocator's slot is full: the same limit, enforced
        // below the store.
        tracing::debug!("memory growth failed: {error}");
        self.refused = Some(usize::MAX);
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
