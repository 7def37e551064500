//! What a module does once, before its first request: compile the routes
//! and leave memory the way a snapshot of it should be taken.
//!
//! Under request isolation the host snapshots the instance after this and
//! starts every request's instance from that image, copy-on-write: each
//! page a request writes costs a private copy for as long as the instance
//! lives. So start-up also makes the state every request would otherwise
//! create on its first use, and steers the allocations requests make into
//! as few pages as it can.

use std::sync::Once;

use crate::Router;

/// Runs the module's start-up; later calls only compile a router not yet
/// compiled.
pub fn start_up(router: &Router) {
    router.prepare();
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        crate::executor::prepare();
        // Natively the allocator is not the one a snapshot captures.
        #[cfg(target_arch = "wasm32")]
        heap::plug_holes();
        crate::alloc::fresh_start();
    });
    router.make_caches();
}

/// Start-up frees many small blocks between the ones it keeps (regex
/// compilation's scratch, the route list the host reads), and the
/// allocator hands those holes out first: one request's small allocations
/// would land in holes spread over several pages. Taking every hole below
/// the top with a small block that is never freed makes a request allocate
/// from the top instead, in consecutive memory. What it keeps is at most
/// what start-up had freed. The regexes' caches are made next, at the
/// top, beside the memory requests allocate; the executor's task table is
/// left to the first task, which allocates it there too.
///
/// With the SDK's allocator, small blocks come from its own chunks: the
/// plugs here take the standard allocator's holes (larger blocks still
/// come from it), and `alloc::fresh_start` then does the same for the
/// small blocks start-up freed.
#[cfg(target_arch = "wasm32")]
mod heap {
    use std::alloc::{GlobalAlloc, Layout, System};

    /// Larger than any hole start-up leaves in the heap, so that a block
    /// this size comes from the top of it, the free space no live block
    /// lies past.
    const PROBE: usize = 256 << 10;
    /// Bounds the plugging (16 bytes each: 1 MiB of holes at most).
    const MAX_PLUGS: usize = 1 << 16;

    pub fn plug_holes() {
        let Some(top) = top_block() else {
            return;
        };
        let Ok(plug) = Layout::from_size_align(8, 8) else {
            return;
        };
        for _ in 0..MAX_PLUGS {
            // SAFETY: `plug` has a non-zero size; a block at or above
            // `top` is freed at once, the others are kept for good.
            unsafe {
                let block = System.alloc(plug);
                if block.is_null() {
                    return;
                }
                if block as usize >= top {
                    System.dealloc(block, plug);
                    return;
                }
            }
        }
    }

    /// Where a block from the top of the heap would begin.
    fn top_block() -> Option<usize> {
        let probe = Layout::from_size_align(PROBE, 8).ok()?;
        // SAFETY: `probe` has a non-zero size; the block is freed unused.
        unsafe {
            let block = System.alloc(probe);
            if block.is_null() {
                return None;
            }
            System.dealloc(block, probe);
            Some(block as usize)
        }
    }
}
