//! The Redis backend: a store shared by every host that names the same
//! server, its keys under the store's key prefix.
//!
//! The store owns a small tokio runtime (one thread) where its connection
//! lives and every operation runs: callers are workers on runtimes of
//! their own, and a connection's I/O must not belong to whichever of them
//! happened to touch it first. Callers await a `JoinHandle`, which any
//! runtime can.
//!
//! The connection is a `ConnectionManager`, made lazily: a server that is
//! down when Snow starts is not an error, only operations that fail as
//! unavailable until it is up. Every operation is bounded by the store's
//! timeout, connecting included, so a module never hangs on a server that
//! is gone; a connection that stops answering is replaced, and one the
//! server closed is reconnected by the manager, so a server that comes
//! back is used again without a restart of Snow.
//!
//! `rediss://` URLs are served with rustls and ring, the host's TLS stack,
//! trusting the same built-in roots as outbound fetches.

mod commands;
mod errors;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Runtime;

use super::op::{KvError, Op, Output};
use super::{Backend, Pending};
use errors::Failure;

pub struct RedisStore {
    shared: Arc<Shared>,
    /// `None` only while dropping.
    runtime: Option<Runtime>,
    handle: tokio::runtime::Handle,
}

struct Shared {
    client: redis::Client,
    key_prefix: String,
    timeout: Duration,
    /// The URL without its password, for logs.
    shown_url: String,
    connection: Mutex<Connection>,
    /// Whether the last operation reached the server: logs say when that
    /// changes, not on every failure.
    reachable: AtomicBool,
}

/// The current connection and how many replaced it before, so that many
/// operations timing out on one connection replace it once.
#[derive(Clone)]
struct Connection {
    generation: u64,
    manager: ConnectionManager,
}

impl RedisStore {
    /// A store on the server at `url`; fails only for a URL that cannot
    /// be used, never because the server is down.
    pub fn new(url: &str, key_prefix: &str, timeout: Duration) -> Result<Self> {
        let shown_url = redact(url);
        super::config::check_redis_url(url)
            .map_err(|why| anyhow!("the Redis URL {shown_url}: {why}"))?;
        let client = redis::Client::open(url).map_err(|err| {
            anyhow!(
                "the Redis URL {shown_url} cannot be used: {}",
                errors::shown(&err)
            )
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kv-redis")
            .enable_all()
            .build()
            .context("starting the Redis store's I/O thread")?;
        let handle = runtime.handle().clone();
        let manager = {
            // The manager spawns its tasks where it is made: on the store's
            // runtime, whatever runtime (if any) calls this.
            let _inside = runtime.enter();
            connect(&client, timeout)
                .with_context(|| format!("preparing a connection to {shown_url}"))?
        };
        tracing::info!(url = %shown_url, key_prefix, ?timeout, "redis store configured");
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                key_prefix: key_prefix.to_owned(),
                timeout,
                shown_url,
                connection: Mutex::new(Connection {
                    generation: 0,
                    manager,
                }),
                reachable: AtomicBool::new(true),
            }),
            runtime: Some(runtime),
            handle,
        })
    }
}

/// A manager that connects on first use, each attempt bounded by
/// `timeout`, and retries by being asked again rather than on its own: an
/// operation waits for one attempt at most.
fn connect(client: &redis::Client, timeout: Duration) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(0);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// `url` with its password replaced, fit for logs and errors.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // Only fails for URLs that cannot have a password.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(a URL that does not parse)".into(),
    }
}

impl Shared {
    fn current(&self) -> Connection {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the connection `generation`, if it is still the current
    /// one. Runs on the store's runtime, where the new manager's tasks
    /// belong.
    fn replace(&self, generation: u64) {
        let mut current = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.generation != generation {
            return;
        }
        match connect(&self.client, self.timeout) {
            Ok(manager) => {
                *current = Connection {
                    generation: generation + 1,
                    manager,
                };
            }
            Err(err) => tracing::warn!(
                url = %self.shown_url,
                error = %errors::shown(&err),
                "could not prepare a new Redis connection"
            ),
        }
    }

    /// Runs `op` within the timeout: one attempt, and a second on a new
    /// connection when the first surely did nothing (or did what doing
    /// again does not change).
    async fn run(&self, op: Op) -> Result<Output, KvError> {
        let repeatable = matches!(
            op,
            Op::Get { .. }
                | Op::Exists { .. }
                | Op::Set { .. }
                | Op::Delete { .. }
                | Op::ListKeys { .. }
        );
        let keys = commands::Keys {
            prefix: &self.key_prefix,
        };
        self.bounded(repeatable, |mut conn| {
            let keys = &keys;
            let op = &op;
            async move { keys.run(&mut conn, op).await }
        })
        .await
    }

    async fn ping(&self) -> Result<(), KvError> {
        self.bounded(
            true,
            |mut conn| async move { commands::ping(&mut conn).await },
        )
        .await
    }

    async fn bounded<T, F, Fut>(&self, repeatable: bool, attempt: F) -> Result<T, KvError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut tried = false;
        loop {
            let Connection {
                generation,
                manager,
            } = self.current();
            let outcome = tokio::time::timeout_at(deadline, attempt(manager)).await;
            let err = match outcome {
                Ok(Ok(value)) => {
                    self.reached(true);
                    return Ok(value);
                }
                Ok(Err(Failure::Refused(err))) => {
                    self.reached(true);
                    return Err(err);
                }
                Ok(Err(Failure::Down(err))) => err,
                Err(_) => {
                    self.replace(generation);
                    self.reached(false);
                    return Err(KvError::Unavailable(format!(
                        "Redis did not answer within {:?}",
                        self.timeout
                    )));
                }
            };
            let again = errors::never_sent(&err) || (repeatable && errors::connection_lost(&err));
            if again && !tried {
                // The manager has started a new connection for the next
                // attempt; a stale one fails here, once.
                tried = true;
                continue;
            }
            if errors::stuck(&err) {
                self.replace(generation);
            }
            self.reached(false);
            tracing::debug!(url = %self.shown_url, error = %errors::shown(&err), "redis operation failed");
            return Err(KvError::Unavailable(format!(
                "Redis: {}",
                errors::shown(&err)
            )));
        }
    }

    fn reached(&self, now: bool) {
        let before = self.reachable.swap(now, Ordering::Relaxed);
        if before != now {
            if now {
                tracing::info!(url = %self.shown_url, "redis store answering again");
            } else {
                tracing::warn!(url = %self.shown_url, "redis store unavailable; operations fail until it answers");
            }
        }
    }
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        // A store may be dropped on a worker's runtime, where a runtime
        // cannot be shut down by waiting; nothing of it needs waiting for.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Backend for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn run(&self, op: Op) -> Pending<Result<Output, KvError>> {
        let shared = self.shared.clone();
        let task = self.handle.spawn(async move { shared.run(op).await });
        Box::pin(async move {
            task.await.unwrap_or_else(|err| {
                Err(KvError::Unavailable(format!(
                    "the Redis store stopped: {err}"
                )))
            })
        })
    }

    fn ready(&self) -> Pending<Result<(), String>> {
        let shared = self.shared.clone();
        let task = self.handle.spawn(async move { shared.ping().await });
        Box::pin(async move {
            match task.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(err.to_string()),
                Err(err) => Err(format!("the Redis store stopped: {err}")),
            }
        })
    }
}
