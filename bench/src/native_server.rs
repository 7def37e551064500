//! The listening side of the native servers (`hyper-baseline`,
//! `hyper-proxy`): one socket set up for load tests, an accept loop that
//! survives running out of descriptors, and the line the bench script waits
//! for.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Ramps of thousands of connects per second overflow the default backlog of
/// 1024 and turn into SYN retries that look like latency. The kernel still
/// caps this at net.core.somaxconn.
const BACKLOG: u32 = 65535;

/// A multi-threaded runtime of `workers` threads, with the descriptor limit
/// raised first for the thousands of connections some runs open.
pub fn runtime(workers: usize) -> io::Result<tokio::runtime::Runtime> {
    if let Err(err) = crate::fd_limit::raise_nofile_limit() {
        eprintln!("warning: could not raise RLIMIT_NOFILE: {err}");
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()
}

/// Binds `addr`, announces it, and runs `serve` on a task of its own for
/// every connection, with Nagle off: small responses would otherwise sit
/// behind it waiting for an ACK.
pub async fn run<F, Fut>(addr: SocketAddr, serve: F) -> anyhow::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = bind(addr)?;
    announce(listener.local_addr()?)?;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                // Out of descriptors is the usual cause; retrying at once
                // would spin a core that the clients need.
                eprintln!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream));
    }
}

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Lets back-to-back benchmark runs reuse a port still in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// The bench script waits for this exact line, so it goes out unbuffered.
fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()
}
