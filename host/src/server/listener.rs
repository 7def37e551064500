//! Listening sockets and the accept-with-backoff the public listener and
//! the admin API share; the public acceptor hands each new connection to
//! the workers, whose threads share it.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;

use crate::http;
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

/// The workers as the acceptor sees them.
pub struct WorkerInbox {
    pub sender: mpsc::UnboundedSender<std::net::TcpStream>,
    /// Open connections, kept by the workers.
    pub load: Arc<AtomicUsize>,
}

/// The next connection on `listener`. A failed accept (e.g. out of file
/// descriptors) is retried after a pause, so the loop does not spin while
/// the condition lasts.
pub async fn accept(listener: &tokio::net::TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(err) => {
                tracing::warn!(listener = ?listener.local_addr().ok(), "accept failed: {err}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Serves the public listener until `stop` resolves, then drops it: each new
/// connection goes to the workers, or is refused with 503 over
/// `max_connections`.
pub async fn serve_public(
    listener: TcpListener,
    workers: WorkerInbox,
    max_connections: usize,
    metrics: &Metrics,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener).context("registering listener")?;
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut stop => return Ok(()),
            stream = accept(&listener) => stream,
        };
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        if workers.load.load(Ordering::Relaxed) >= max_connections {
            metrics.refused(Refusal::Connections);
            refuse(stream);
            continue;
        }
        workers.load.fetch_add(1, Ordering::Relaxed);
        if workers.sender.send(stream).is_err() {
            workers.load.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!("the workers are gone; dropping connection");
        }
    }
}

/// Answers 503, best effort, to a connection over `--max-connections`,
/// which is then closed.
fn refuse(mut stream: std::net::TcpStream) {
    use std::io::Write;
    tracing::warn!("refusing a connection: --max-connections reached");
    let mut out = Vec::new();
    over_capacity().write(&mut out, &OVER_CAPACITY_OPTS);
    // The socket is non-blocking and fresh: the response fits its buffer.
    let _ = stream.write(&out);
}

fn over_capacity() -> http::Response {
    http::Response::plain_with(
        503,
        "too many open connections; retry",
        &[("retry-after", b"1")],
    )
}

const OVER_CAPACITY_OPTS: http::ResponseOptions = http::ResponseOptions {
    head_request: false,
    keep_alive: false,
    version: http::Version::Http11,
};
