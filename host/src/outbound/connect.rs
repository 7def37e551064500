//! Opening connections for hyper-util's client, as a stack of connectors:
//!
//! - [`Bounded`] — one deadline over the whole connect, TLS included;
//! - hyper-rustls — the TLS handshake for `https`, offering HTTP/2 and
//!   HTTP/1.1 through ALPN;
//! - [`Route`] — to the destination, or through a proxy (absolute-form
//!   requests for `http`, a `CONNECT` tunnel for `https`); it counts the
//!   connections, turns every failure into a typed [`FetchError`], and
//!   checks the address a direct connection reached against the module's
//!   allow-list;
//! - hyper-util's `HttpConnector` — TCP, trying IPv6 and IPv4 side by side
//!   (happy eyeballs), with names looked up by [`Resolver`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use tower_service::Service;

use super::conn::Conn;
use super::{AllowList, FetchError};

use super::error::BoxError;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Name lookup through the system resolver (on tokio's blocking pool), its
/// failures typed as [`FetchError::Dns`]. With an allow-list, internal
/// addresses that no rule names are dropped before any is tried.
#[derive(Clone, Debug, Default)]
pub(super) struct Resolver {
    allow: Option<Arc<AllowList>>,
}

impl Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = FetchError;
    type Future = BoxFuture<Result<Self::Response, FetchError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), FetchError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str();
            // Port 0: the connector puts in the URL's.
            let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
                .await
                .map_err(|err| FetchError::Dns(format!("{host}: {err}")))?
                .collect();
            if addrs.is_empty() {
                return Err(FetchError::Dns(format!("{host}: no addresses")));
            }
            if let Some(allow) = allow {
                addrs.retain(|addr| allow.may_reach(addr.ip()));
                if addrs.is_empty() {
                    tracing::warn!(
                        host,
                        "outbound connection denied: the name resolves only to internal addresses that no allow rule names"
                    );
                    return Err(FetchError::Denied);
                }
            }
            Ok(addrs.into_iter())
        })
    }
}

/// Where connections go: the destination, or a proxy on its behalf.
#[derive(Clone)]
pub(super) struct Route {
    tcp: HttpConnector<Resolver>,
    proxy: Option<Arc<Matcher>>,
    /// The module's rules, which direct connections must satisfy by the
    /// address they reach; `None` for `snow fetch`.
    allow: Option<Arc<AllowList>>,
    /// TCP connections established, whether or not TLS then succeeded.
    opened: Arc<AtomicU64>,
}

impl Route {
    pub fn new(
        connect_timeout: Duration,
        proxy: Option<Arc<Matcher>>,
        allow: Option<Arc<AllowList>>,
        opened: Arc<AtomicU64>,
    ) -> Route {
        let resolver = Resolver {
            allow: allow.clone(),
        };
        let mut tcp = HttpConnector::new_with_resolver(resolver);
        // hyper-rustls above decides between plain and TLS.
        tcp.enforce_http(false);
        // Requests go out in few writes; waiting for an ACK between them
        // (Nagle) would only add latency.
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(connect_timeout));
        Route {
            tcp,
            proxy,
            allow,
            opened,
        }
    }
}

impl Service<Uri> for Route {
    type Response = Conn;
    type Error = FetchError;
    type Future = BoxFuture<Result<Conn, FetchError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), FetchError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let tcp = self.tcp.clone();
        let opened = Arc::clone(&self.opened);
        let allow = self.allow.clone();
        let via = self
            .proxy
            .as_ref()
            .and_then(|matcher| matcher.intercept(&dst));
        Box::pin(async move {
            let conn = match via {
                None => Conn::new(direct(tcp, dst, allow.as_deref()).await?, false),
                Some(proxy) if dst.scheme() == Some(&http::uri::Scheme::HTTP) => {
                    Conn::new(to_proxy(tcp, &proxy).await?, true)
                }
                Some(proxy) => Conn::new(tunnel(tcp, &proxy, dst).await?, false),
            };
            opened.fetch_add(1, Ordering::Relaxed);
            Ok(conn)
        })
    }
}

type Tcp = hyper_util::rt::TokioIo<tokio::net::TcpStream>;

async fn direct(
    mut tcp: HttpConnector<Resolver>,
    dst: Uri,
    allow: Option<&AllowList>,
) -> Result<Tcp, FetchError> {
    let what = dst.authority().map_or_else(String::new, |a| a.to_string());
    let scheme = dst.scheme_str().unwrap_or("http").to_owned();
    let port = dst
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let io = tcp
        .call(dst)
        .await
        .map_err(|err| FetchError::from_tcp(&err, &what))?;
    if let Some(allow) = allow {
        // The address actually reached, so a name re-bound between the
        // lookup and the connection cannot slip through.
        let peer = io
            .inner()
            .peer_addr()
            .map_err(|err| FetchError::Connect(format!("{what}: {err}")))?;
        if let Err(kind) = allow.permits_address(&scheme, port, peer.ip()) {
            tracing::warn!(
                destination = %what,
                address = %peer.ip(),
                "outbound connection denied: {kind} address, and no allow rule for {scheme} port {port} names it"
            );
            return Err(FetchError::Denied);
        }
    }
    Ok(io)
}

/// A connection to the proxy itself, which takes absolute-form requests.
async fn to_proxy(mut tcp: HttpConnector<Resolver>, proxy: &Intercept) -> Result<Tcp, FetchError> {
    let what = format!("proxy {}", proxy_name(proxy));
    tcp.call(proxy.uri().clone())
        .await
        .map_err(|err| FetchError::from_tcp(&err, &what))
}

/// A `CONNECT` tunnel through the proxy to `dst`.
async fn tunnel(
    tcp: HttpConnector<Resolver>,
    proxy: &Intercept,
    dst: Uri,
) -> Result<Tcp, FetchError> {
    let what = format!("proxy {}", proxy_name(proxy));
    let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp);
    if let Some(auth) = proxy.basic_auth() {
        tunnel = tunnel.with_auth(auth.clone());
    }
    tunnel
        .call(dst)
        .await
        .map_err(|err| FetchError::from_tcp(&err, &what))
}

/// The proxy's address: hyper-util keeps its credentials apart.
fn proxy_name(proxy: &Intercept) -> String {
    proxy
        .uri()
        .authority()
        .map_or_else(String::new, ToString::to_string)
}

/// A connector whose connections must be made within `limit`.
#[derive(Clone)]
pub(super) struct Bounded<S> {
    pub inner: S,
    pub limit: Duration,
}

impl<S> Service<Uri> for Bounded<S>
where
    S: Service<Uri>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let limit = self.limit;
        Box::pin(async move {
            match tokio::time::timeout(limit, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(FetchError::Timeout.into()),
            }
        })
    }
}
