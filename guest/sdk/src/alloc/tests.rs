use super::*;

impl SizeClasses {
    /// Whether `block` lies in one of this allocator's chunks.
    fn state_holds(&self, block: *mut u8) -> bool {
        // SAFETY: the tests make no call into the allocator meanwhile.
        unsafe { (*self.state.get()).chunks.holds(block as usize) }
    }
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).expect("a valid layout")
}

#[test]
fn sizes_fall_in_power_of_two_classes_up_to_4_kib() {
    let cases = [
        (1, Some(0)),
        (16, Some(0)),
        (17, Some(1)),
        (32, Some(1)),
        (33, Some(2)),
        (4095, Some(8)),
        (4096, Some(8)),
        (4097, None),
        (1 << 20, None),
    ];
    for (size, expected) in cases {
        assert_eq!(class(layout(size, 1)), expected, "size {size}");
    }
    assert_eq!(class(layout(8, 16)), Some(0));
    assert_eq!(class(layout(8, 32)), None, "more aligned than a block");
}

/// A pseudo-random sequence, the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below
    }
}

#[test]
fn live_blocks_never_overlap_and_keep_their_bytes_through_reuse() {
    let heap = SizeClasses::new();
    let mut rng = Lcg(7);
    let mut live: Vec<(*mut u8, Layout, u8)> = Vec::new();
    for round in 0..20_000u32 {
        if !live.is_empty() && rng.next(3) == 0 {
            let (block, layout, fill) = live.swap_remove(rng.next(live.len()));
            // SAFETY: a live block of this heap, with its layout.
            unsafe {
                let bytes = std::slice::from_raw_parts(block, layout.size());
                assert!(bytes.iter().all(|b| *b == fill), "a block was overwritten");
                heap.dealloc(block, layout);
            }
            continue;
        }
        // Mostly small, some past the largest class, some over-aligned.
        let size = match rng.next(10) {
            0 => 4097 + rng.next(20_000),
            _ => 1 + rng.next(4096),
        };
        let align = [1, 8, 16, 64][rng.next(4)];
        let layout = layout(size, align);
        let fill = round as u8;
        // SAFETY: a non-zero size.
        let block = unsafe { heap.alloc(layout) };
        assert!(!block.is_null());
        assert_eq!(block as usize % align, 0, "misaligned for {layout:?}");
        // SAFETY: the block is `size` bytes, ours.
        unsafe { block.write_bytes(fill, size) };
        live.push((block, layout, fill));
    }
    let mut spans: Vec<(usize, usize)> = live
        .iter()
        .map(|(b, l, _)| (*b as usize, *b as usize + l.size()))
        .collect();
    spans.sort();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "blocks overlap: {pair:?}");
    }
    for (block, layout, fill) in live {
        // SAFETY: as above.
        unsafe {
            let bytes = std::slice::from_raw_parts(block, layout.size());
            assert!(bytes.iter().all(|b| *b == fill), "a block was overwritten");
            heap.dealloc(block, layout);
        }
    }
}

#[test]
fn a_freed_block_is_the_next_one_of_its_class() {
    let heap = SizeClasses::new();
    // SAFETY: non-zero sizes; each block freed with its layout.
    unsafe {
        let a = heap.alloc(layout(24, 8));
        let b = heap.alloc(layout(24, 8));
        heap.dealloc(a, layout(24, 8));
        assert_eq!(heap.alloc(layout(30, 4)), a, "same class, last freed");
        assert_ne!(heap.alloc(layout(24, 8)), b);
    }
}

#[test]
fn realloc_keeps_the_bytes_across_classes_and_the_standard_allocator() {
    let heap = SizeClasses::new();
    let sizes = [10, 16, 17, 300, 4096, 5000, 100_000, 40, 3];
    // SAFETY: each step reallocates the live block with its own layout.
    unsafe {
        let mut size = 5;
        let mut block = heap.alloc(layout(size, 8));
        for (i, byte) in (0..size).zip(1u8..) {
            block.add(i).write(byte);
        }
        for new_size in sizes {
            let moved = heap.realloc(block, layout(size, 8), new_size);
            assert!(!moved.is_null());
            if class(layout(size, 8)).is_some()
                && class(layout(size, 8)) == class(layout(new_size, 8))
            {
                assert_eq!(moved, block, "{size} -> {new_size} stays in its block");
            }
            let kept = size.min(new_size).min(5);
            for (i, byte) in (0..kept).zip(1u8..) {
                assert_eq!(moved.add(i).read(), byte, "{size} -> {new_size}");
            }
            block = moved;
            size = new_size;
        }
        heap.dealloc(block, layout(size, 8));
    }
}

#[test]
fn zeroed_blocks_are_zero_even_when_reused() {
    let heap = SizeClasses::new();
    // SAFETY: non-zero sizes; blocks freed with their layouts.
    unsafe {
        let dirty = heap.alloc(layout(100, 8));
        dirty.write_bytes(0xAB, 100);
        heap.dealloc(dirty, layout(100, 8));
        let clean = heap.alloc_zeroed(layout(100, 8));
        assert_eq!(clean, dirty, "the freed block comes back");
        assert!(std::slice::from_raw_parts(clean, 100)
            .iter()
            .all(|b| *b == 0));
        let large = heap.alloc_zeroed(layout(10_000, 8));
        assert!(std::slice::from_raw_parts(large, 10_000)
            .iter()
            .all(|b| *b == 0));
        heap.dealloc(clean, layout(100, 8));
        heap.dealloc(large, layout(10_000, 8));
    }
}

#[test]
fn the_rest_of_a_full_chunk_is_handed_out_not_lost() {
    let heap = SizeClasses::new();
    // SAFETY: non-zero sizes; the blocks are left to the test's end.
    unsafe {
        let first = heap.alloc(layout(64, 8)) as usize;
        let pages: Vec<usize> = (0..CHUNK / MAX_BLOCK)
            .map(|_| heap.alloc(layout(MAX_BLOCK, 8)) as usize)
            .collect();
        // 64 + 15 × 4 KiB fit in the first chunk; the 16th block opened a
        // second one, and the first one's last 4032 bytes became blocks.
        let in_first = |at: usize| (first..first + CHUNK).contains(&at);
        assert_eq!(pages.iter().filter(|p| in_first(**p)).count(), 15);
        for size in [2048, 1024, 512, 256, 128, 64] {
            let block = heap.alloc(layout(size, 8)) as usize;
            assert!(
                in_first(block),
                "a {size}-byte block from the first chunk's rest"
            );
        }
    }
}

#[test]
fn after_a_fresh_start_blocks_are_new_and_side_by_side() {
    let heap = SizeClasses::new();
    // SAFETY: non-zero sizes; blocks freed before the fresh start stay
    // unused, as `fresh_start` leaves them.
    unsafe {
        let old: Vec<*mut u8> = (0..8).map(|_| heap.alloc(layout(32, 8))).collect();
        for block in &old {
            heap.dealloc(*block, layout(32, 8));
        }
        heap.fresh_start();
        let new: Vec<usize> = (0..8).map(|_| heap.alloc(layout(32, 8)) as usize).collect();
        assert!(new.iter().all(|b| !old.contains(&(*b as *mut u8))));
        assert!(new.windows(2).all(|w| w[1] == w[0] + 32), "{new:x?}");
    }
}

#[test]
fn a_size_no_memory_can_hold_is_refused_not_faked() {
    let heap = SizeClasses::new();
    // SAFETY: a non-zero size; nothing to free when refused.
    let block = unsafe { heap.alloc(layout(isize::MAX as usize / 2, 8)) };
    assert!(block.is_null());
}

#[test]
fn a_block_the_standard_allocator_made_goes_back_to_it() {
    let heap = SizeClasses::new();
    let small = layout(24, 8);
    // SAFETY: non-zero sizes; every block freed once, by its maker.
    unsafe {
        // As `cabi_realloc` hands out an import's results during a call.
        let foreign = System.alloc(small);
        foreign.write_bytes(7, 24);
        let grown = heap.realloc(foreign, small, 30);
        assert!(!heap.state_holds(grown), "grown where it was made");
        assert!(std::slice::from_raw_parts(grown, 24)
            .iter()
            .all(|b| *b == 7));
        heap.dealloc(grown, layout(30, 8));
        // Freed to the standard allocator, not onto its class's list,
        // where the next block of that class would be this one.
        for _ in 0..64 {
            let block = heap.alloc(small);
            assert_ne!(block, grown);
            assert!(heap.state_holds(block));
        }
    }
}
