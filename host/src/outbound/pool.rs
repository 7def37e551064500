//! Idle keep-alive connections, per (scheme, host, port), newest reused first.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::stream::Stream;
use super::target::PoolKey;

pub(super) struct Pool {
    max_idle_per_host: usize,
    idle_timeout: Duration,
    state: Mutex<State>,
}

struct State {
    idle: HashMap<PoolKey, Vec<Idle>>,
    /// When every host was last cleared of expired connections: hosts that
    /// are never asked for again would otherwise hold sockets forever.
    last_sweep: Instant,
}

struct Idle {
    stream: Stream,
    since: Instant,
}

impl Pool {
    pub fn new(max_idle_per_host: usize, idle_timeout: Duration) -> Pool {
        Pool {
            max_idle_per_host,
            idle_timeout,
            state: Mutex::new(State {
                idle: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// A live idle connection for `key`, if there is one.
    pub fn take(&self, key: &PoolKey) -> Option<Stream> {
        loop {
            let Idle { mut stream, since } = {
                let mut state = self.lock();
                let list = state.idle.get_mut(key)?;
                let newest = list.pop();
                if list.is_empty() {
                    state.idle.remove(key);
                }
                newest?
            };
            // Checked outside the lock; a dead or stale one is dropped here.
            if since.elapsed() <= self.idle_timeout && stream.is_reusable() {
                return Some(stream);
            }
        }
    }

    /// Keeps `stream` for reuse, evicting the oldest idle connection to
    /// `key` when there are already as many as allowed.
    pub fn put(&self, key: PoolKey, stream: Stream) {
        if self.max_idle_per_host == 0 {
            return;
        }
        let now = Instant::now();
        // Dropped after the lock is released.
        let mut evicted = Vec::new();
        {
            let mut state = self.lock();
            if now.duration_since(state.last_sweep) > self.idle_timeout {
                state.last_sweep = now;
                let timeout = self.idle_timeout;
                state.idle.retain(|_, list| {
                    evicted.extend(take_expired(list, now, timeout));
                    !list.is_empty()
                });
            }
            let list = state.idle.entry(key).or_default();
            evicted.extend(take_expired(list, now, self.idle_timeout));
            if list.len() >= self.max_idle_per_host {
                let excess = list.len() + 1 - self.max_idle_per_host;
                evicted.extend(list.drain(..excess));
            }
            list.push(Idle { stream, since: now });
        }
        drop(evicted);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements, so a panic in
        // another thread does not make it unusable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Removes the connections idle for longer than `timeout`; the list is
/// oldest first, so they form a prefix.
fn take_expired(list: &mut Vec<Idle>, now: Instant, timeout: Duration) -> Vec<Idle> {
    let expired = list
        .iter()
        .take_while(|idle| now.duration_since(idle.since) > timeout)
        .count();
    list.drain(..expired).collect()
}
