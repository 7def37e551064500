//! The admin API on a listener of its own: `GET /metrics` for Prometheus,
//! `GET /healthz` for liveness and `GET /readyz` for readiness probes,
//! `GET /modules` to list the mounted modules and `PUT /modules/NAME` to
//! deploy a new version of one.
//!
//! The health listener is served by the same code with no admin API
//! behind it ([`AdminState::health_only`]): the probes and nothing else.
//!
//! With a token configured, every request but the probes must carry it
//! (see `auth`). Every check that can refuse a request, the token, the
//! bound on uploads at once and the bound on other requests' bodies, runs
//! on its head, before any of its body is received.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::listener::accept;
use crate::config::AdminToken;
use crate::deploy::{Deployer, MAX_MODULE_SIZE};
use crate::health::Health;
use crate::http::response::TEXT_PLAIN;
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
const JSON: &[u8] = b"application/json";

const MODULES: &str = "/modules/";

/// Liveness and readiness: served without a token, wherever probes come
/// from.
const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";

/// The largest body a request other than an upload may announce; larger
/// ones, and chunked ones, get 413 from their head. No such endpoint takes
/// a body, and the probes answer anyone: without this, a client with no
/// token could make the server buffer [`MAX_MODULE_SIZE`] per connection.
const MAX_OTHER_BODY: u64 = 1024;

/// Serves the admin API (or only the probes) on `listener` until `stop`
/// resolves.
///
/// Connections still open then are dropped with the tasks serving them.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    serve_with(listener, state, stop, REQUEST_TIMEOUT).await
}

/// What a listener's endpoints act on.
#[derive(Clone)]
pub struct AdminState {
    pub health: Arc<Health>,
    /// `None` on the health listener: nothing but the probes is served.
    pub api: Option<AdminApi>,
}

/// What the admin endpoints beyond the probes act on.
#[derive(Clone)]
pub struct AdminApi {
    pub metrics: Arc<Metrics>,
    pub deployer: Arc<Deployer>,
    /// `None`: no token is asked for (the API is on loopback).
    pub token: Option<Arc<AdminToken>>,
    /// One permit per upload in progress.
    pub uploads: Arc<Semaphore>,
}

impl AdminState {
    /// The whole admin API.
    pub fn new(
        metrics: Arc<Metrics>,
        deployer: Arc<Deployer>,
        token: Option<AdminToken>,
        health: Arc<Health>,
    ) -> Self {
        let api = AdminApi {
            metrics,
            deployer,
            token: token.map(Arc::new),
            uploads: Arc::new(Semaphore::new(MAX_CONCURRENT_UPLOADS)),
        };
        Self {
            health,
            api: Some(api),
        }
    }

    /// `/healthz` and `/readyz` alone: no admin state is even reachable.
    pub fn health_only(health: Arc<Health>) -> Self {
        Self { health, api: None }
    }

    /// What the logs call this listener.
    pub fn name(&self) -> &'static str {
        match self.api {
            Some(_) => "admin API",
            None => "health listener",
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
                        tracing::error!("{} connection panicked: {err}", state.name());
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
        // A module's wasm arrives as a body; `admit` bounds the others'
        // from their heads, on the health listener too, so that its
        // answer to anything but a probe is 404 whatever the body.
        max_body: MAX_MODULE_SIZE,
        ..Limits::default()
    };
    let timeouts = Timeouts {
        idle: request_timeout,
        header: request_timeout,
        send: request_timeout,
        stream_idle: request_timeout,
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
            rest: None,
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

/// Decides on a request from its head alone: whether it is for this
/// listener, whether its token is right, whether its body is small enough
/// and, for an upload, whether its module exists and a permit is free
/// (returned, to be held until the upload is answered).
fn admit(state: &AdminState, head: &RequestHead) -> Result<Option<OwnedSemaphorePermit>, Response> {
    let probe = matches!(head.path.as_str(), HEALTHZ | READYZ);
    let api = match &state.api {
        _ if probe => None,
        Some(api) => {
            auth::authorize(api.token.as_deref(), head)?;
            Some(api)
        }
        None => return Err(health_only_not_found()),
    };
    let upload = api.zip(head.path.strip_prefix(MODULES));
    let Some((api, name)) = upload.filter(|_| head.method == "PUT") else {
        return small_body(head).map(|()| None);
    };
    if api.deployer.registry().current().find(name).is_none() {
        return Err(not_mounted(name));
    }
    match api.uploads.clone().try_acquire_owned() {
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

/// A request that is neither an upload nor small enough to read whole is
/// refused before its body arrives.
fn small_body(head: &RequestHead) -> Result<(), Response> {
    match head.framing {
        Framing::None => Ok(()),
        Framing::Length(n) if n <= MAX_OTHER_BODY => Ok(()),
        Framing::Length(_) | Framing::Chunked => Err(Response::plain(
            413,
            "only PUT /modules/NAME takes a body of more than 1KiB",
        )),
    }
}

async fn route(state: &AdminState, request: Request) -> Response {
    let Request { head, body, .. } = request;
    match (head.method.as_str(), head.path.as_str()) {
        ("GET" | "HEAD", HEALTHZ) => constant(200, TEXT_PLAIN, "ok".into()),
        ("GET" | "HEAD", READYZ) => match state.health.readiness().await {
            Ok(()) => constant(200, TEXT_PLAIN, "ok".into()),
            Err(reason) => constant(503, TEXT_PLAIN, reason),
        },
        (_, HEALTHZ | READYZ) => not_allowed("GET, HEAD", "use GET or HEAD"),
        _ => match &state.api {
            Some(api) => route_api(api, head.method.as_str(), head.path.as_str(), body).await,
            None => health_only_not_found(),
        },
    }
}

/// The admin API beyond the probes.
async fn route_api(api: &AdminApi, method: &str, path: &str, body: Vec<u8>) -> Response {
    match (method, path) {
        ("GET", "/metrics") => constant(200, METRICS_CONTENT_TYPE, api.metrics.render()),
        ("GET", "/modules") => json(200, &api.deployer.list()),
        (_, "/metrics" | "/modules") => not_allowed("GET", "use GET"),
        ("PUT", path) if path.starts_with(MODULES) => {
            deploy(api, &path[MODULES.len()..], body).await
        }
        (_, path) if path.starts_with(MODULES) => not_allowed("PUT", "PUT the module's wasm"),
        _ => constant(
            404,
            TEXT_PLAIN,
            "404 Not Found: the admin API serves /metrics, /healthz, /readyz and /modules\n".into(),
        ),
    }
}

/// Whatever the health listener is asked but the probes; it says nothing
/// of the admin API.
fn health_only_not_found() -> Response {
    constant(
        404,
        TEXT_PLAIN,
        "404 Not Found: this listener serves /healthz and /readyz\n".into(),
    )
}

/// `PUT /modules/NAME`: replaces a mounted module's code.
async fn deploy(state: &AdminApi, name: &str, wasm: Vec<u8>) -> Response {
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
                "compiler": mount.module.tier.compiler(),
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
