//! Native hyper + tokio server serving the same app as Snow's default module,
//! so Snow's numbers can be read against what plain Rust does on this machine.

mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use snow_bench::native_server;

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
    let runtime = native_server::runtime(args.workers)?;
    let router = Arc::new(Router::new());
    runtime.block_on(native_server::run(args.listen, move |stream| {
        let router = Arc::clone(&router);
        async move {
            let service = service_fn(move |req| {
                let router = Arc::clone(&router);
                async move { router.handle(req).await }
            });
            // A peer hanging up mid-request is routine under load, not worth a log line.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    }))
}
