//! The idle connections of one pool: kept per host and port, handed out
//! newest first, checked on the way out so that one the server closed
//! while it sat idle is never written to, and closed after the idle
//! timeout or beyond the per-host limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Read buffers larger than this (grown by a streamed body) are not kept
/// with an idle connection.
const KEPT_BUFFER: usize = 16 * 1024;

/// A connection and its read buffer, which it keeps while idle so that a
/// request costs no allocation of one.
#[derive(Debug)]
pub(super) struct Conn {
    pub stream: TcpStream,
    pub buf: BytesMut,
}

impl Conn {
    pub fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::new(),
        }
    }
}

/// Where a connection leads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub host: url::Host<String>,
    pub port: u16,
}

#[derive(Debug)]
pub(super) struct IdleSet {
    conns: Mutex<Conns>,
    max_per_host: usize,
    timeout: Duration,
}

#[derive(Debug, Default)]
struct Conns {
    /// foldhash rather than SipHash: two lookups a request, and the keys
    /// (hosts a module may reach) are few and bounded by the connections.
    by_key: HashMap<Key, Vec<Idle>, foldhash::fast::RandomState>,
    /// Whether a task closes expired connections.
    reaping: bool,
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

impl Idle {
    fn is_fresh(&self, timeout: Duration) -> bool {
        self.since.elapsed() < timeout
    }
}

impl IdleSet {
    pub fn new(max_per_host: usize, timeout: Duration) -> Arc<IdleSet> {
        Arc::new(IdleSet {
            conns: Mutex::default(),
            max_per_host,
            timeout,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Conns> {
        // Nothing held under the lock can be left half-changed by a panic.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The newest live connection to `key`, if any.
    pub fn checkout(&self, key: &Key) -> Option<Conn> {
        let mut conns = self.lock();
        let idle = conns.by_key.get_mut(key)?;
        while let Some(idle) = idle.pop() {
            if idle.is_fresh(self.timeout) && is_quiet(&idle.conn.stream) {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `key`; beyond the limit the
    /// oldest goes.
    pub fn checkin(self: &Arc<Self>, key: Key, mut conn: Conn) {
        if self.max_per_host == 0 {
            return;
        }
        conn.buf.clear();
        if conn.buf.capacity() > KEPT_BUFFER {
            conn.buf = BytesMut::new();
        }
        let mut conns = self.lock();
        let idle = conns.by_key.entry(key).or_default();
        idle.push(Idle {
            conn,
            since: Instant::now(),
        });
        if idle.len() > self.max_per_host {
            idle.remove(0);
        }
        if !conns.reaping {
            conns.reaping = spawn_reaper(Arc::downgrade(self), self.timeout);
        }
    }

    /// Closes the connections idle for longer than the timeout; true while
    /// any remain.
    fn reap(&self) -> bool {
        let mut conns = self.lock();
        conns.by_key.retain(|_, idle| {
            idle.retain(|idle| idle.is_fresh(self.timeout));
            !idle.is_empty()
        });
        conns.reaping = !conns.by_key.is_empty();
        conns.reaping
    }
}

/// A task on the current runtime that closes expired connections, so that
/// a host fetched from once does not hold its connection for ever; it ends
/// with the set, or when the set is empty. False outside a runtime.
fn spawn_reaper(set: Weak<IdleSet>, every: Duration) -> bool {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            match set.upgrade() {
                Some(set) if set.reap() => continue,
                _ => break,
            }
        }
    });
    true
}

/// Whether an idle connection has nothing to read: a server that closed it
/// (or, out of turn, sent bytes on it) has made it unusable. Costs no
/// system call unless the reactor saw it become readable.
fn is_quiet(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => matches!(
            stream.try_read(&mut [0; 1]),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock
        ),
    }
}
