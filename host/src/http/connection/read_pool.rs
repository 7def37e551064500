//! Read buffers that connections give back while they wait for an answer
//! (see `watch_close`), kept by each thread for the next request it reads.
//!
//! Without it a request that waits (a relay, a fetch, a timer) freed its
//! connection's 4 KiB buffer and the next request allocated it again, and
//! glibc takes its slow path for blocks of that size (the fast bins are
//! consolidated first): about 850 instructions of a proxied request's
//! 47,000, and as many to free it.

use std::cell::RefCell;

use bytes::BytesMut;

use super::READ_CHUNK;

/// Buffers kept per thread. Past it they are freed, so ten thousand
/// waiting connections still hold no read buffer between them.
const KEPT: usize = 64;

thread_local! {
    static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer of at least [`READ_CHUNK`] bytes.
pub(super) fn take() -> BytesMut {
    let kept = FREE
        .try_with(|free| free.try_borrow_mut().ok().and_then(|mut free| free.pop()))
        .ok()
        .flatten();
    kept.unwrap_or_else(|| BytesMut::with_capacity(READ_CHUNK))
}

/// Keeps `buf` for [`take`] when it is empty and of the usual size; a buffer
/// a large request grew goes back to the allocator.
pub(super) fn give(mut buf: BytesMut) {
    if !buf.is_empty() || buf.capacity() > 2 * READ_CHUNK {
        return;
    }
    // Bytes read and consumed are reclaimed here, off the next request's path.
    buf.reserve(READ_CHUNK);
    if buf.capacity() > 2 * READ_CHUNK {
        return;
    }
    let _ = FREE.try_with(|free| {
        if let Ok(mut free) = free.try_borrow_mut() {
            if free.len() < KEPT {
                free.push(buf);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_buffer_is_taken_again_empty_and_whole() {
        let mut buf = take();
        buf.extend_from_slice(&[7; 100]);
        bytes::Buf::advance(&mut buf, 100);
        let at = buf.as_ptr() as usize;
        give(buf);
        let again = take();
        assert!(again.is_empty());
        assert!(again.capacity() >= READ_CHUNK);
        // The same block, its consumed bytes reclaimed.
        assert_eq!(again.as_ptr() as usize, at - 100);
    }

    #[test]
    fn grown_or_holding_buffers_are_not_kept() {
        let mut held = BytesMut::with_capacity(READ_CHUNK);
        held.extend_from_slice(b"GET");
        give(held);
        let big = BytesMut::with_capacity(8 * READ_CHUNK);
        give(big);
        let next = take();
        assert!(next.is_empty());
        assert!(next.capacity() < 8 * READ_CHUNK);
    }

    #[test]
    fn at_most_kept_buffers_stay() {
        for _ in 0..KEPT + 10 {
            give(BytesMut::with_capacity(READ_CHUNK));
        }
        assert_eq!(FREE.with(|free| free.borrow().len()), KEPT);
        FREE.with(|free| free.borrow_mut().clear());
    }
}
