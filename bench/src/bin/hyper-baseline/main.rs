//! Native hyper + tokio server serving the same app as Snow's default module,
//! so Snow's numbers can be read against what plain Rust does on this machine.

mod listener;
mod routes;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use snow_bench::fd_limit::raise_nofile_limit;

use routes::Router;

#[derive(Parser)]
#[command(about = "Native hyper server with the routes of Snow's default app")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8013")]
    listen: SocketAddr,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Err(err) = raise_nofile_limit() {
        eprintln!("warning: could not raise RLIMIT_NOFILE: {err}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(serve(args.listen))
}

async fn serve(addr: SocketAddr) -> anyhow::Result<()> {
    let listener = listener::bind(addr)?;
    announce(listener.local_addr()?)?;
    let router = Arc::new(Router::new());
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
        // Small responses would otherwise sit behind Nagle waiting for an ACK.
        let _ = stream.set_nodelay(true);
        let router = Arc::clone(&router);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let router = Arc::clone(&router);
                async move { router.handle(req).await }
            });
            // A peer hanging up mid-request is routine under load, not worth a log line.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The bench script waits for this exact line, so it goes out unbuffered.
fn announce(addr: SocketAddr) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    out.flush()
}
