//! The admin API on a listener of its own: `GET /metrics` for Prometheus,
//! `GET /healthz` for liveness checks, `GET /modules` to list the mounted
//! modules and `PUT /modules/NAME` to deploy a new version of one.
//!
//! With a token configured, every request but `/healthz` must carry it
//! (see `auth`). Both checks that can refuse a request, the token and the
//! bound on uploads at once, run on its head, before any of its body is
//! received.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::listener::accept;
use crate::config::AdminToken;
use crate::deploy::{Deployer, MAX_MODULE_SIZE};
use crate::http::{
    Connection, Framing, Limits, Request, RequestHead, Response, ResponseOptions, Timeouts,
};
use crate::metrics::Metrics;

mod auth;

/// Each request, from its first byte to the last byte of the response, must
/// finish within this; a keep-alive connection idle this long is closed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A scraper needs one connection. The cap bounds what a misbehaving local
/// client can hold; at the cap accepting pauses and the backlog queues.
const MAX_CONNECTIONS: usize = 64;

/// Uploads being received or compiled at once; more get 503 at once. Each
/// holds its whole module in memory, so this bounds what uploads hold to
/// about this many times [`MAX_MODULE_SIZE`], plus their compilation.
pub const MAX_CONCURRENT_UPLOADS: usize = 2;

/// How long a request refused before its body was read may go on sending
/// that body, read and dropped, before the connection is closed.
const LINGER: Duration = Duration::from_secs(2);

const METRICS_CONTENT_TYPE: &[u8] = b"text/plain; version=0.0.4; charset=utf-8";
const TEXT_PLAIN: &[u8] = b"text/plain; charset=utf-8";
const JSON: &[u8] = b"application/json";

const MODULES: &str = "/modules/";

/// Serves the admin API on `listener` until `stop` resolves.
///
/// Connections still open then are dropped with the tasks serving them.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with(listener, state, stop, REQUEST_TIMEOUT).await
}

/// What the admin endpoints act on.
#[derive(Clone)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    pub deployer: Arc<Deployer>,
    /// `None`: no token is asked for (the API is on loopback).
    pub token: Option<Arc<AdminToken>>,
    /// One permit per upload in progress.
    pub uploads: Arc<Semaphore>,
}

impl AdminState {
    pub fn new(metrics: Arc<Metrics>, deployer: Arc<Deployer>, token: Option<AdminToken>) -> Self {
        Self {
            metrics,
            deployer,
            token: token.map(Arc::new),
            uploads: Arc::new(Semaphore::new(MAX_CONCURRENT_UPLOADS)),
        }
    }
}

async fn serve_with(
    listener: TcpListener,
    state: AdminState,
    stop: impl Future<Output = ()>,
    request_timeout: Duration,
) -> anyhow::Result<()> {
    tokio::pin!(stop);
    // Dropping the set when this returns aborts the connections it holds.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = &mut stop => return Ok(()),
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(err) = done {
                    if err.is_panic() {
                        tracing::error!("admin connection panicked: {err}");
                    }
                }
            }
            stream = accept(&listener), if conns.len() < MAX_CONNECTIONS => {
                conns.spawn(serve_conn(stream, state.clone(), request_timeout));
            }
        }
    }
}

async fn serve_conn(stream: TcpStream, state: AdminState, request_timeout: Duration) {
    let limits = Limits {
        // A module's wasm arrives as a body.
        max_body: MAX_MODULE_SIZE,
        ..Limits::default()
    };
    let timeouts = Timeouts {
        idle: request_timeout,
        header: request_timeout,
        send: request_timeout,
    };
    let mut conn = Connection::new(stream, limits, timeouts);
    loop {
        conn.set_deadline(Instant::now() + request_timeout);
        let Some((head, received)) = conn.next_head().await else {
            break;
        };
        let mut opts = ResponseOptions {
            head_request: head.method == "HEAD",
            keep_alive: head.keep_alive,
            version: head.version,
        };
        let upload = match admit(&state, &head) {
            Ok(upload) => upload,
            Err(refusal) => {
                if matches!(head.framing, Framing::None | Framing::Length(0)) {
                    conn.write(refusal, &opts);
                    if opts.keep_alive {
                        continue;
                    }
                    break;
                }
                // Its body is left unread, so nothing can follow it.
                opts.keep_alive = false;
                conn.write(refusal, &opts);
                conn.close_lingering(LINGER).await;
                return;
            }
        };
        let Some(body) = conn.body_of(&head).await else {
            break;
        };
        let request = Request {
            head,
            body,
            received,
        };
        let response = route(&state, request).await;
        drop(upload);
        conn.write(response, &opts);
        if !opts.keep_alive {
            break;
        }
    }
    conn.close().await;
}

/// Decides on a request from its head alone: whether its token is right
/// and, for an upload, whether its module exists and a permit is free
/// (returned, to be held until the upload is answered).
fn admit(state: &AdminState, head: &RequestHead) -> Result<Option<OwnedSemaphorePermit>, Response> {
    if head.path != "/healthz" {
        auth::authorize(state.token.as_deref(), head)?;
    }
    let Some(name) = head.path.strip_prefix(MODULES) else {
        return Ok(None);
    };
    if head.method != "PUT" {
        return Ok(None);
    }
    if state.deployer.registry().current().find(name).is_none() {
        return Err(not_mounted(name));
    }
    match state.uploads.clone().try_acquire_owned() {
        Ok(permit) => Ok(Some(permit)),
        Err(_) => {
            tracing::warn!(module = %name, "upload refused: {MAX_CONCURRENT_UPLOADS} already in progress");
            Err(Response::plain_with(
                503,
                "other uploads are in progress; retry shortly",
                &[("retry-after", b"1")],
            ))
        }
    }
}

async fn route(state: &AdminState, request: Request) -> Response {
    let Request { head, body, .. } = request;
    match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/metrics") => constant(200, METRICS_CONTENT_TYPE, state.metrics.render()),
        ("GET", "/healthz") => constant(200, TEXT_PLAIN, "ok".into()),
        ("GET", "/modules") => json(200, &state.deployer.list()),
        (_, "/metrics" | "/healthz" | "/modules") => not_allowed("GET", "use GET"),
        ("PUT", path) if path.starts_with(MODULES) => {
            deploy(state, &path[MODULES.len()..], body).await
        }
        (_, path) if path.starts_with(MODULES) => not_allowed("PUT", "PUT the module's wasm"),
        _ => constant(
            404,
            TEXT_PLAIN,
            "404 Not Found: the admin API serves /metrics, /healthz and /modules\n".into(),
        ),
    }
}

/// `PUT /modules/NAME`: replaces a mounted module's code.
async fn deploy(state: &AdminState, name: &str, wasm: Vec<u8>) -> Response {
    if state.deployer.registry().current().find(name).is_none() {
        return not_mounted(name);
    }
    match state.deployer.replace(name, wasm).await {
        Ok(mount) => json(
            200,
            &serde_json::json!({
                "name": mount.config.name,
                "prefix": mount.config.prefix,
                "hash": mount.module.hash,
                "routes": mount.routes.iter().map(|r| r.pattern.clone()).collect::<Vec<_>>(),
            }),
        ),
        Err(err) => {
            tracing::error!(module = %name, "deployment refused; the running version stays: {err:#}");
            json(422, &serde_json::json!({ "error": format!("{err:#}") }))
        }
    }
}

fn not_mounted(name: &str) -> Response {
    json(
        404,
        &serde_json::json!({ "error": format!("no module named {name} is mounted") }),
    )
}

fn not_allowed(allow: &str, hint: &str) -> Response {
    let body = format!("405 Method Not Allowed: {hint}\n");
    let headers = vec![
        ("allow".to_string(), allow.as_bytes().to_vec()),
        ("content-type".to_string(), TEXT_PLAIN.to_vec()),
    ];
    checked(405, headers, body.into_bytes())
}

fn constant(status: u16, content_type: &[u8], body: String) -> Response {
    let headers = vec![("content-type".to_string(), content_type.to_vec())];
    checked(status, headers, body.into_bytes())
}

fn json(status: u16, value: &impl serde::Serialize) -> Response {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    let headers = vec![("content-type".to_string(), JSON.to_vec())];
    checked(status, headers, body)
}

/// The admin API's own headers are constants, so this never answers 500.
fn checked(status: u16, headers: Vec<(String, Vec<u8>)>, body: Vec<u8>) -> Response {
    Response::new(status, headers, body).unwrap_or_else(|err| {
        tracing::error!("admin response could not be written: {err}");
        Response::plain(500, "invalid admin response")
    })
}

#[cfg(test)]
mod tests;
