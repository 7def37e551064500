//! The listening socket and the acceptor, which hands each new connection to
//! the worker with the fewest open connections.
//!
//! One acceptor balances better than a listener per worker with
//! `SO_REUSEPORT`: the kernel's hash can leave one worker with twice the
//! connections of another, which at 64 keep-alive clients halves a core.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;

use crate::metrics::{Metrics, Refusal};

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

pub fn bind(addr: SocketAddr, backlog: i32) -> Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .context("creating a socket")?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding {addr}"))?;
    socket
        .listen(backlog)
        .with_context(|| format!("listening on {addr}"))?;
    Ok(socket.into())
}

/// A worker as the acceptor sees it.
pub struct WorkerInbox {
    pub sender: mpsc::UnboundedSender<std::net::TcpStream>,
    /// Open connections, kept by the worker.
    pub load: Arc<AtomicUsize>,
}

/// Sent, best effort, to a connection over `--max-connections` before it is
/// closed.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 38\r\nconnection: close\r\nretry-after: 1\r\n\r\n503: too many open connections; retry\n";

/// Accepts until `stop` resolves, then drops the listener.
pub async fn accept_loop(
    listener: TcpListener,
    workers: Vec<WorkerInbox>,
    max_connections: usize,
    metrics: &Metrics,
    stop: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener).context("registering listener")?;
    tokio::pin!(stop);
    let mut next = 0usize;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let Ok(stream) = stream.into_std() else { continue };
                    let open: usize = workers.iter().map(|w| w.load.load(Ordering::Relaxed)).sum();
                    if open >= max_connections {
                        metrics.refused(Refusal::Connections);
                        refuse(stream);
                        continue;
                    }
                    let target = pick(&workers, next);
                    next = target + 1;
                    let inbox = &workers[target];
                    inbox.load.fetch_add(1, Ordering::Relaxed);
                    if inbox.sender.send(stream).is_err() {
                        inbox.load.fetch_sub(1, Ordering::Relaxed);
                        tracing::warn!(worker = target, "worker is gone; dropping connection");
                    }
                }
                Err(err) => {
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            () = &mut stop => return Ok(()),
        }
    }
}

/// The least-loaded worker, searching from `start` so ties rotate.
fn pick(workers: &[WorkerInbox], start: usize) -> usize {
    let n = workers.len();
    (0..n)
        .map(|i| (start + i) % n)
        .min_by_key(|&i| workers[i].load.load(Ordering::Relaxed))
        .unwrap_or(0)
}

fn refuse(mut stream: std::net::TcpStream) {
    use std::io::Write;
    tracing::warn!("refusing a connection: --max-connections reached");
    // The socket is non-blocking and fresh: the response fits its buffer.
    let _ = stream.write(OVER_CAPACITY);
}
