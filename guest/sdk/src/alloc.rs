//! The module's memory allocator (feature `allocator`, on by default): a
//! free list per size class in front of the standard one.
//!
//! Every request allocates and frees a dozen small blocks: the strings and
//! lists the canonical ABI lowers into the module, and the response it
//! builds. Through the standard allocator each pair costs about 460
//! instructions on wasm32 (four call layers down to `dlmalloc`, which
//! splits and coalesces); `talc`, tried in its place, still about 330.
//! Here a small block is popped from and pushed back onto its class's
//! list. `bench/sh/allocator.sh` measures the three on `/home/`.
//!
//! Blocks of up to 4 KiB and alignment up to 16 come in nine power-of-two
//! classes, carved from 64 KiB chunks of the standard allocator; anything
//! larger or more aligned goes to the standard allocator as it is. A
//! freed small block stays in its class: an instance's memory never
//! shrinks anyway, and an instance that shifts from one block size to
//! another keeps at most what it had freed of the first.
//!
//! Memory the canonical ABI allocates (`cabi_realloc`) may be freed by
//! wasi-libc with its own `free`: it lifts what WASI imports return (the
//! environment, random bytes) into buffers it then owns. So `cabi_realloc`
//! takes size classes only while no export of the SDK runs, which is when
//! the host lowers a call's arguments, freed by the module's Rust code; an
//! import's results, lowered during a call, come from the standard
//! allocator. Every block a chunk holds is known by its address, so
//! freeing or growing a block goes to whichever allocator made it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr;

/// Blocks of `16 << class` bytes.
const CLASSES: usize = 9;
const MIN_BLOCK: usize = 16;
const MAX_BLOCK: usize = MIN_BLOCK << (CLASSES - 1);
/// Also the largest alignment a small block has.
const BLOCK_ALIGN: usize = 16;
const CHUNK: usize = 64 << 10;

/// The allocator; the module's global one with the `allocator` feature.
#[repr(C)]
pub struct SizeClasses {
    state: UnsafeCell<State>,
}

/// The lists and the current chunk first: a request writes them, and
/// under request isolation each page it writes is a private copy, so they
/// share one page; the chunk map after them is read.
#[repr(C)]
struct State {
    /// The first free block of each class; each holds the next one.
    free: [*mut u8; CLASSES],
    /// The unused rest of the current chunk.
    next: usize,
    end: usize,
    chunks: Chunks,
}

/// Which 64 KiB-aligned spans of memory are chunks: a bit for each on
/// wasm32 (8 KiB for its 4 GiB), a set elsewhere (the native tests).
#[cfg(target_pointer_width = "32")]
struct Chunks([u8; SPANS / 8]);

/// 64 KiB spans in a 32-bit address space.
#[cfg(target_pointer_width = "32")]
const SPANS: usize = 1 << (32 - CHUNK.trailing_zeros());

#[cfg(target_pointer_width = "32")]
impl Chunks {
    const fn new() -> Chunks {
        Chunks([0; SPANS / 8])
    }

    fn add(&mut self, chunk: usize) {
        let index = chunk / CHUNK;
        self.0[index / 8] |= 1 << (index % 8);
    }

    fn holds(&self, block: usize) -> bool {
        let index = block / CHUNK;
        self.0[index / 8] & (1 << (index % 8)) != 0
    }
}

#[cfg(not(target_pointer_width = "32"))]
struct Chunks(std::collections::BTreeSet<usize>);

#[cfg(not(target_pointer_width = "32"))]
impl Chunks {
    const fn new() -> Chunks {
        Chunks(std::collections::BTreeSet::new())
    }

    fn add(&mut self, chunk: usize) {
        self.0.insert(chunk / CHUNK);
    }

    fn holds(&self, block: usize) -> bool {
        self.0.contains(&(block / CHUNK))
    }
}

impl SizeClasses {
    /// An allocator with nothing in it yet.
    pub const fn new() -> SizeClasses {
        SizeClasses {
            state: UnsafeCell::new(State {
                free: [ptr::null_mut(); CLASSES],
                next: 0,
                end: 0,
                chunks: Chunks::new(),
            }),
        }
    }

    /// Leaves the free blocks where they are, never to hand them out, and
    /// takes a new chunk: later allocations lie next to one another from
    /// there on. For start-up (see `start_up`): what it freed is spread
    /// over the memory a snapshot captures, and a request that reused it
    /// would copy a page for each block it touched. What is left behind is
    /// at most what start-up freed.
    ///
    /// # Safety
    /// Not while another call into this allocator runs (a single-threaded
    /// instance never has one).
    pub unsafe fn fresh_start(&self) {
        // SAFETY: as the caller promises, nothing else borrows the state.
        let state = unsafe { &mut *self.state.get() };
        state.free = [ptr::null_mut(); CLASSES];
        state.next = 0;
        state.end = 0;
        // SAFETY: as above; a failure only leaves the chunk to later.
        unsafe { state.refill() };
    }
}

impl Default for SizeClasses {
    fn default() -> Self {
        SizeClasses::new()
    }
}

/// The class of a layout, or none for the standard allocator.
fn class(layout: Layout) -> Option<usize> {
    if layout.size() > MAX_BLOCK || layout.align() > BLOCK_ALIGN {
        return None;
    }
    let size = layout.size().max(MIN_BLOCK);
    let bits = usize::BITS - (size - 1).leading_zeros();
    Some((bits - MIN_BLOCK.trailing_zeros()) as usize)
}

fn block_size(class: usize) -> usize {
    MIN_BLOCK << class
}

impl State {
    /// Pushes `block`, of `class`'s size, onto its free list.
    ///
    /// # Safety
    /// `block` is a block of that class, not in use.
    unsafe fn push(&mut self, class: usize, block: *mut u8) {
        // SAFETY: a free block is at least 16 bytes and 16-aligned.
        unsafe { block.cast::<*mut u8>().write(self.free[class]) };
        self.free[class] = block;
    }

    /// Starts a new chunk; the rest of the old one becomes free blocks, so
    /// none of it is lost. False when the standard allocator has no memory.
    ///
    /// # Safety
    /// As [`SizeClasses::fresh_start`].
    unsafe fn refill(&mut self) -> bool {
        // The rest is a multiple of 16: every block carved is.
        while self.end - self.next >= MIN_BLOCK {
            let rest = self.end - self.next;
            let fits = (usize::BITS - 1 - rest.leading_zeros()) as usize;
            let class = (fits - MIN_BLOCK.trailing_zeros() as usize).min(CLASSES - 1);
            // SAFETY: the block lies in the chunk, unused.
            unsafe { self.push(class, self.next as *mut u8) };
            self.next += block_size(class);
        }
        // Aligned to its size, so that an address tells its chunk.
        // SAFETY: a non-zero size and a power-of-two alignment.
        let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(CHUNK, CHUNK)) };
        if chunk.is_null() {
            return false;
        }
        self.chunks.add(chunk as usize);
        self.next = chunk as usize;
        self.end = self.next + CHUNK;
        true
    }
}

// SAFETY: the state is only reached through these calls, which never call
// back into the allocator while they hold it; the global allocator is
// only installed where an instance has one thread (see `ALLOCATOR`).
unsafe impl GlobalAlloc for SizeClasses {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else {
            // SAFETY: the caller's layout, as `GlobalAlloc` requires.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: single-threaded, and not re-entered (see the impl).
        let state = unsafe { &mut *self.state.get() };
        let head = state.free[class];
        if !head.is_null() {
            // SAFETY: a free block holds the next one's address.
            state.free[class] = unsafe { head.cast::<*mut u8>().read() };
            return head;
        }
        let size = block_size(class);
        // SAFETY: as above.
        if state.end - state.next < size && !unsafe { state.refill() } {
            return ptr::null_mut();
        }
        let block = state.next as *mut u8;
        state.next += size;
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: single-threaded, and not re-entered (see the impl).
        let state = unsafe { &mut *self.state.get() };
        match class(layout) {
            // SAFETY: a block of a chunk, of the layout it was allocated
            // with, so of that class.
            Some(class) if state.chunks.holds(block as usize) => unsafe {
                state.push(class, block)
            },
            // SAFETY: the standard allocator's block (large, or from
            // `cabi_realloc` during a call), as `GlobalAlloc` requires.
            _ => unsafe { System.dealloc(block, layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if class(layout).is_none() {
            // SAFETY: as in `alloc`; fresh memory from it may be zero
            // already, which it knows and this does not.
            return unsafe { System.alloc_zeroed(layout) };
        }
        // SAFETY: as in `alloc`; a block of at least `layout.size()`.
        unsafe {
            let block = self.alloc(layout);
            if !block.is_null() {
                block.write_bytes(0, layout.size());
            }
            block
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `GlobalAlloc::realloc` promises a valid layout for it.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: single-threaded, and not re-entered (see the impl).
        let ours = unsafe { (*self.state.get()).chunks.holds(block as usize) };
        match (class(layout), class(new)) {
            (Some(old), Some(new)) if ours && old == new => block,
            // SAFETY: the standard allocator's block, grown or shrunk
            // there (a small one stays there too).
            _ if !ours => unsafe { System.realloc(block, layout, new_size) },
            // SAFETY: a new block, the old one's bytes, then the old one
            // freed with its own layout.
            _ => unsafe {
                let moved = self.alloc(new);
                if !moved.is_null() {
                    ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                    self.dealloc(block, layout);
                }
                moved
            },
        }
    }
}

/// The module's global allocator, where an instance is single-threaded:
/// `wasm32` without the `atomics` feature, as `wasm32-wasip2` builds are.
#[cfg(all(
    feature = "allocator",
    target_arch = "wasm32",
    not(target_feature = "atomics")
))]
mod global {
    use super::*;

    use std::sync::atomic::{AtomicBool, Ordering};

    #[global_allocator]
    pub static ALLOCATOR: Global = Global {
        in_call: AtomicBool::new(true),
        heap: SizeClasses::new(),
    };

    /// The canonical ABI's allocator, in place of the standard library's
    /// (a weak definition), which allocates from the global allocator.
    ///
    /// # Safety
    /// As the canonical ABI calls it: `old` is null or a block of
    /// `old_len` bytes and alignment `align` from this function.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn cabi_realloc(
        old: *mut u8,
        old_len: usize,
        align: usize,
        new_len: usize,
    ) -> *mut u8 {
        let lowering_arguments = !ALLOCATOR.in_call.load(Ordering::Relaxed);
        // SAFETY: the canonical ABI passes a power-of-two alignment and,
        // when `old_len` is not zero, the block and layout it was given.
        let block = unsafe {
            if old_len == 0 {
                if new_len == 0 {
                    return align as *mut u8;
                }
                let layout = Layout::from_size_align_unchecked(new_len, align);
                if lowering_arguments {
                    ALLOCATOR.heap.alloc(layout)
                } else {
                    System.alloc(layout)
                }
            } else {
                let layout = Layout::from_size_align_unchecked(old_len, align);
                // Grown where it was made: a block of a chunk stays the
                // size classes', any other the standard allocator's.
                ALLOCATOR.heap.realloc(old, layout, new_len)
            }
        };
        if block.is_null() {
            core::arch::wasm32::unreachable();
        }
        block
    }

    /// [`SizeClasses`], shareable where only one thread exists, and the
    /// call mark beside its state, on the page a request writes anyway.
    #[repr(C)]
    pub struct Global {
        /// Whether an export of the SDK runs (see `set_in_call`). True
        /// until the first call ends: code that implements the exports
        /// by itself never ends one, and keeps every canonical ABI
        /// allocation where wasi-libc may free it.
        pub in_call: AtomicBool,
        pub heap: SizeClasses,
    }

    // SAFETY: an instance without threads (see the module's `cfg`).
    unsafe impl Sync for Global {}

    // SAFETY: forwards to `SizeClasses`.
    unsafe impl GlobalAlloc for Global {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded as received.
            unsafe { self.heap.alloc(layout) }
        }
        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            // SAFETY: forwarded as received.
            unsafe { self.heap.dealloc(block, layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: forwarded as received.
            unsafe { self.heap.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: forwarded as received.
            unsafe { self.heap.realloc(block, layout, new_size) }
        }
    }
}

/// Marks whether one of the SDK's exports runs. While one does,
/// `cabi_realloc` serves imports' results from the standard allocator;
/// between calls, the host's lowering of the next call's arguments takes
/// size classes. (A standard `wasi:http` component makes no such marks:
/// its one export takes resources, and all its canonical ABI memory is
/// the standard allocator's.)
#[cfg_attr(feature = "wasi-http", allow(dead_code))]
pub(crate) fn set_in_call(running: bool) {
    #[cfg(all(
        feature = "allocator",
        target_arch = "wasm32",
        not(target_feature = "atomics")
    ))]
    global::ALLOCATOR
        .in_call
        .store(running, std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(all(
        feature = "allocator",
        target_arch = "wasm32",
        not(target_feature = "atomics")
    )))]
    let _ = running;
}

/// Start-up's fresh start (see [`SizeClasses::fresh_start`]), when this
/// allocator is the module's.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn fresh_start() {
    #[cfg(all(
        feature = "allocator",
        target_arch = "wasm32",
        not(target_feature = "atomics")
    ))]
    // SAFETY: start-up runs alone in its instance.
    unsafe {
        global::ALLOCATOR.heap.fresh_start()
    };
}

#[cfg(test)]
mod tests;
