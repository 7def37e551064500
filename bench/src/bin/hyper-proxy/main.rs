//! Native reverse proxy on hyper + tokio: what plain Rust does in front of
//! the same upstream as Snow's proxying module and nginx's `proxy_pass`, so
//! the proxy rows can be read against a native baseline built in the same
//! run. No module runs per request: what Snow's host would be on the
//! runtime and HTTP crates it uses, with hyper's connection and pool
//! machinery in place of its own (`bare-proxy` is the floor under both).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use snow_bench::native_server;

#[derive(Parser)]
#[command(about = "Native hyper reverse proxy in front of one upstream")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8015")]
    listen: SocketAddr,
    /// The upstream, host:port; every request goes there with its path.
    #[arg(long)]
    upstream: String,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Idle upstream connections kept (nginx's bench configuration keeps 64
    /// per worker).
    #[arg(long, default_value_t = 128)]
    keep_alive: usize,
}

type Body = http_body_util::combinators::BoxBody<Bytes, hyper::Error>;
type Upstream = Client<HttpConnector, Incoming>;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = native_server::runtime(args.workers)?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Upstream = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(args.keep_alive)
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector);
    let upstream: Arc<str> = args.upstream.into();
    native_server::run(args.listen, move |stream| {
        let (client, upstream) = (client.clone(), upstream.clone());
        async move {
            let service = service_fn(move |req| forward(client.clone(), upstream.clone(), req));
            // A peer hanging up mid-request is routine under load.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await
}

/// Sends `req` on to the upstream and answers with its response, the body
/// streaming through.
async fn forward(
    client: Upstream,
    upstream: Arc<str>,
    mut req: Request<Incoming>,
) -> Result<Response<Body>, hyper::Error> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = match Uri::builder()
        .scheme("http")
        .authority(&*upstream)
        .path_and_query(path)
        .build()
    {
        Ok(uri) => uri,
        Err(err) => return Ok(plain(StatusCode::BAD_REQUEST, err.to_string())),
    };
    *req.uri_mut() = uri;
    req.headers_mut().remove(hyper::header::HOST);
    match client.request(req).await {
        Ok(resp) => Ok(resp.map(BodyExt::boxed)),
        Err(err) => Ok(plain(StatusCode::BAD_GATEWAY, err.to_string())),
    }
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}
