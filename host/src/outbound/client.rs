//! The client: one deadline over the whole fetch, redirects followed here
//! (so that the allow-list sees every hop), and one retry of a request that
//! a reused connection lost; the plain path or hyper-util's client does the
//! rest.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use bytes::Bytes;
use http::header::PROXY_AUTHORIZATION;
use http::{Extensions, Request};
use hyper::body::Body as _;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::client::legacy::{self, connect::CaptureConnection};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use url::Url;

use super::conn::Uses;
use super::connect::{Bounded, Route};
use super::error::find;
use super::plain::{Exchange, Failure, Plain};
use super::redirect::{next_hop, Hop};
use super::request::{self, is_idempotent};
use super::response::{self, UpstreamBody, MAX_HEAD, MAX_HEADERS};
use super::target::Target;
use super::{AllowList, ClientConfig, FetchError, FetchRequest, FetchResponse, Fetched};
use crate::http::{BodyIn, StreamedBody};

type Connector = Bounded<HttpsConnector<Route>>;
type Hyper = legacy::Client<Connector, StreamedBody>;

/// Cheap to clone: clones share the configuration, the pools and the
/// connection count.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    /// Settings of the hyper-util client of each pool.
    builder: legacy::Builder,
    /// The pools, one per allow-list, shared by every thread that fetches
    /// through this client.
    pools: Mutex<Vec<(Option<AllowList>, Arc<Local>)>>,
    tls: rustls::ClientConfig,
    proxy: Option<Arc<Matcher>>,
    opened: Arc<AtomicU64>,
}

/// Pools per [`Client`]; past this, the oldest goes (an allow-list
/// replaced by a deploy leaves its pool behind).
const MAX_POOLS: usize = 64;

/// A thread's handle on one pool: its clients, and the allow-list their
/// connections were checked against.
struct Pool {
    owner: Weak<Inner>,
    allow: Option<AllowList>,
    clients: Arc<Local>,
}

/// The clients of one allow-list.
struct Local {
    hyper: Hyper,
    plain: Plain,
}

thread_local! {
    /// This thread's handles on the pools of each live [`Client`], which
    /// spare a fetch the lock on the client's list. The pools themselves
    /// are shared: the server's workers take on one another's tasks, and
    /// pools of their own left each with half the connections it needed
    /// at times, opening and closing the difference (a new upstream
    /// connection for one proxied request in 25 at 64 connections).
    /// Each allow-list has its own pool, because a connection is checked
    /// against the list of the module that opened it: another module's
    /// list may not permit the address it reached.
    static LOCAL: RefCell<Vec<Pool>> = const { RefCell::new(Vec::new()) };
}

impl Client {
    /// Fails when the CA file cannot be read or holds no certificate.
    pub fn new(config: ClientConfig) -> anyhow::Result<Client> {
        let tls = super::tls::client_config(config.ca_file.as_deref())?;
        let proxy = config.proxy.as_ref().map(|proxy| Arc::new(proxy.matcher()));
        let mut builder = legacy::Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(config.idle_timeout)
            .pool_max_idle_per_host(config.max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http1_max_buf_size(MAX_HEAD)
            .http1_max_headers(MAX_HEADERS)
            // RFC 9112 §5.1 has recipients of responses tolerate this.
            .http1_allow_spaces_after_header_name_in_responses(true)
            .http2_max_header_list_size(MAX_HEAD as u32);
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                builder,
                tls,
                proxy,
                opened: Arc::new(AtomicU64::new(0)),
                pools: Mutex::default(),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Performs `req` without any destination check: the caller has
    /// checked the URL, and redirects are followed wherever they lead.
    pub async fn fetch(&self, req: FetchRequest) -> Result<FetchResponse, FetchError> {
        self.fetch_allowed(req, None).await
    }

    /// Performs `req`; with `allow`, the URL and every redirect target must
    /// be on the list, or the fetch ends with [`FetchError::Denied`] before
    /// connecting there.
    pub async fn fetch_allowed(
        &self,
        req: FetchRequest,
        allow: Option<&AllowList>,
    ) -> Result<FetchResponse, FetchError> {
        self.fetch_whole(req, None, allow).await
    }

    /// [`Self::fetch_allowed`] for a caller that has parsed `req.url`
    /// already, as `url`, to check it.
    pub async fn fetch_parsed(
        &self,
        url: Url,
        req: FetchRequest,
        allow: &AllowList,
    ) -> Result<FetchResponse, FetchError> {
        self.fetch_whole(req, Some(url), Some(allow)).await
    }

    async fn fetch_whole(
        &self,
        req: FetchRequest,
        url: Option<Url>,
        allow: Option<&AllowList>,
    ) -> Result<FetchResponse, FetchError> {
        match self.fetch_as(req, url, allow, Want::Whole, None).await? {
            Fetched::Whole(response) => Ok(response),
            Fetched::Head(..) => Err(FetchError::protocol(
                "a head where a whole response was due",
            )),
        }
    }

    /// Like [`Self::fetch_allowed`], but completes once the head is in and
    /// leaves the body to stream, unbounded: only the head counts against
    /// the size limit. A body known to be at most `whole_below` bytes is
    /// read at once and comes whole. With `upload`, the request's body is
    /// `req.body` and then that, sent as it arrives: such a request is
    /// never sent twice (no retry on a lost connection, and a 307 or 308
    /// redirect is the answer).
    pub async fn fetch_head_allowed(
        &self,
        req: FetchRequest,
        allow: Option<&AllowList>,
        whole_below: u64,
        upload: Option<BodyIn>,
    ) -> Result<Fetched, FetchError> {
        self.fetch_as(req, None, allow, Want::Head { whole_below }, upload)
            .await
    }

    /// [`Self::fetch_head_allowed`] for a caller that has parsed `req.url`
    /// already, as `url`, to check it.
    pub async fn fetch_head_parsed(
        &self,
        url: Url,
        req: FetchRequest,
        allow: &AllowList,
        whole_below: u64,
        upload: Option<BodyIn>,
    ) -> Result<Fetched, FetchError> {
        let want = Want::Head { whole_below };
        self.fetch_as(req, Some(url), Some(allow), want, upload)
            .await
    }

    /// The timeout covers the head, and a body read whole. `url`, when
    /// given, is `req.url` parsed.
    async fn fetch_as(
        &self,
        req: FetchRequest,
        url: Option<Url>,
        allow: Option<&AllowList>,
        want: Want,
        upload: Option<BodyIn>,
    ) -> Result<Fetched, FetchError> {
        let limit = req.timeout.unwrap_or(self.inner.config.response_timeout);
        let target = match url {
            Some(url) => Target::from_url(url)?,
            None => Target::parse(&req.url)?,
        };
        // Boxed: the exchange's state is kilobytes, and the task that awaits
        // a fetch would otherwise copy it whole each time tokio moves it.
        let follow = Box::pin(self.follow(target, req, allow, want, upload));
        tokio::time::timeout(limit, follow)
            .await
            .unwrap_or(Err(FetchError::Timeout))
    }

    /// How long a fetch without a timeout of its own may take.
    pub fn response_timeout(&self) -> std::time::Duration {
        self.inner.config.response_timeout
    }

    /// TCP connections opened so far, by this client and its clones.
    pub fn connections_opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    /// The hyper-util client and plain connections for `allow`, made on
    /// first use.
    fn local(&self, allow: Option<&AllowList>) -> Arc<Local> {
        LOCAL.with(|pools| {
            let mut pools = pools.borrow_mut();
            pools.retain(|pool| pool.owner.strong_count() > 0);
            let mine = Arc::as_ptr(&self.inner);
            let is_mine = |pool: &Pool| pool.owner.as_ptr() == mine;
            if let Some(pool) = pools
                .iter()
                .find(|pool| is_mine(pool) && pool.allow.as_ref() == allow)
            {
                return Arc::clone(&pool.clients);
            }
            if pools.iter().filter(|pool| is_mine(pool)).count() >= MAX_POOLS {
                if let Some(oldest) = pools.iter().position(is_mine) {
                    pools.remove(oldest);
                }
            }
            let clients = self.shared(allow);
            pools.push(Pool {
                owner: Arc::downgrade(&self.inner),
                allow: allow.cloned(),
                clients: Arc::clone(&clients),
            });
            clients
        })
    }

    /// The client's pool for `allow`, from the list all threads share.
    fn shared(&self, allow: Option<&AllowList>) -> Arc<Local> {
        let mut pools = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, local)) = pools.iter().find(|(list, _)| list.as_ref() == allow) {
            return Arc::clone(local);
        }
        if pools.len() >= MAX_POOLS {
            pools.remove(0);
        }
        let opened = Arc::clone(&self.inner.opened);
        let local = Arc::new(Local {
            hyper: self.inner.builder.build(self.connector(allow)),
            plain: Plain::new(&self.inner.config, allow, opened),
        });
        pools.push((allow.cloned(), Arc::clone(&local)));
        local
    }

    fn connector(&self, allow: Option<&AllowList>) -> Connector {
        let inner = &self.inner;
        let route = Route::new(
            inner.config.connect_timeout,
            inner.proxy.clone(),
            allow.map(|list| Arc::new(list.clone())),
            Arc::clone(&inner.opened),
        );
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(inner.tls.clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(route);
        Bounded {
            inner: https,
            limit: inner.config.connect_timeout,
        }
    }

    async fn follow(
        &self,
        target: Target,
        req: FetchRequest,
        allow: Option<&AllowList>,
        want: Want,
        upload: Option<BodyIn>,
    ) -> Result<Fetched, FetchError> {
        let mut hop = Hop {
            target,
            method: req.method,
            headers: req.headers,
            body: req.body,
            upload,
            streamed: false,
        };
        let clients = self.local(allow);
        let mut redirects = 0;
        loop {
            if allow.is_some_and(|list| !list.allows(&hop.target.url)) {
                return Err(FetchError::Denied);
            }
            let response = if self.goes_plain(&hop) {
                self.send_plain(&clients.plain, &hop, want).await?
            } else {
                self.send(&clients.hyper, &mut hop, want).await?
            };
            if !req.follow_redirects {
                return Ok(response);
            }
            let Some(next) = next_hop(&hop, response.head())? else {
                return Ok(response);
            };
            if redirects == self.inner.config.max_redirects {
                return Err(FetchError::protocol(format!(
                    "more than {redirects} redirects"
                )));
            }
            redirects += 1;
            tracing::debug!(from = %hop.target.url, to = %next.target.url, "following redirect");
            hop = next;
        }
    }

    /// One request and its response. hyper-util sends a request again by
    /// itself when a pooled connection closed before taking it; a request
    /// that went out on a reused connection which then closed without an
    /// answer (the server's idle timeout racing the request) is sent once
    /// more here, when its method makes that safe.
    async fn send(&self, hyper: &Hyper, hop: &mut Hop, want: Want) -> Result<Fetched, FetchError> {
        let body = Bytes::copy_from_slice(&hop.body);
        let mut retried = false;
        loop {
            let upload = hop.upload.take();
            hop.streamed |= upload.is_some();
            let body = StreamedBody::new(body.clone(), upload);
            let mut request = request::build(&hop.method, &hop.target, &hop.headers, body)?;
            self.add_proxy_credentials(&mut request);
            let captured = capture_connection(&mut request);
            match hyper.request(request).await {
                Ok(response) => {
                    if let Some(uses) = response.extensions().get::<Uses>() {
                        uses.reused();
                    }
                    let limit = self.inner.config.max_response_size;
                    if let Want::Head { whole_below } = want {
                        if response
                            .body()
                            .size_hint()
                            .exact()
                            .is_none_or(|n| n > whole_below)
                        {
                            let (head, body) = response::head(response, limit)?;
                            return Ok(Fetched::Head(head, body));
                        }
                    }
                    let response = response::read(response, limit).await;
                    // The end of the body has just woken the task that puts
                    // the connection back in the pool; letting it run first
                    // spares the next request a second connection.
                    tokio::task::yield_now().await;
                    return response.map(Fetched::Whole);
                }
                Err(err) => {
                    let lost =
                        find::<hyper::Error>(&err).is_some_and(hyper::Error::is_incomplete_message);
                    let again = !hop.streamed && is_idempotent(&hop.method);
                    if lost && !retried && was_reused(&captured) && again {
                        tracing::debug!(error = %err, "reused connection closed; retrying");
                        retried = true;
                        continue;
                    }
                    return Err(FetchError::from_client(&err));
                }
            }
        }
    }

    /// Whether `hop` takes the plain path: plain `http`, no proxy, a body
    /// given whole.
    fn goes_plain(&self, hop: &Hop) -> bool {
        !hop.target.tls && self.inner.proxy.is_none() && hop.upload.is_none() && !hop.streamed
    }

    /// One request and its response on the plain path, sent once more on a
    /// new connection when a reused one turns out closed before answering
    /// and the method makes that safe.
    async fn send_plain(
        &self,
        plain: &Plain,
        hop: &Hop,
        want: Want,
    ) -> Result<Fetched, FetchError> {
        let request = request::check(&hop.method, &hop.headers)?;
        let whole_below = match want {
            Want::Whole => None,
            Want::Head { whole_below } => Some(whole_below),
        };
        let limit = self.inner.config.max_response_size;
        let mut retried = false;
        loop {
            let exchange = plain.exchange(&hop.target, &request, &hop.body, whole_below, limit);
            return match exchange.await {
                Ok(Exchange::Whole(response)) => Ok(Fetched::Whole(response)),
                Ok(Exchange::Head(head, body, room)) => {
                    Ok(Fetched::Head(head, UpstreamBody::plain(body, room)))
                }
                Err(Failure::Lost(err)) if !retried && is_idempotent(&hop.method) => {
                    tracing::debug!(error = %err, "reused connection closed; retrying");
                    retried = true;
                    continue;
                }
                Err(Failure::Lost(err) | Failure::Fatal(err)) => Err(err),
            };
        }
    }

    /// Plain requests through a proxy carry its credentials; tunnelled ones
    /// give them to the proxy in the `CONNECT`.
    fn add_proxy_credentials(&self, request: &mut Request<StreamedBody>) {
        let Some(matcher) = &self.inner.proxy else {
            return;
        };
        if request.uri().scheme() != Some(&http::uri::Scheme::HTTP) {
            return;
        }
        if let Some(auth) = matcher
            .intercept(request.uri())
            .and_then(|via| via.basic_auth().cloned())
        {
            request.headers_mut().insert(PROXY_AUTHORIZATION, auth);
        }
    }
}

/// How much of a response a fetch waits for.
#[derive(Debug, Clone, Copy)]
enum Want {
    Whole,
    /// The head, and the body too when it is known to be this short.
    Head {
        whole_below: u64,
    },
}

/// Whether the request went out on a connection that had carried another.
fn was_reused(captured: &CaptureConnection) -> bool {
    let metadata = captured.connection_metadata();
    let Some(connected) = metadata.as_ref() else {
        return false;
    };
    let mut extras = Extensions::new();
    connected.get_extras(&mut extras);
    extras.get::<Uses>().is_some_and(Uses::reused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: T) {}

    #[test]
    fn clients_and_their_fetches_can_cross_threads() {
        let client = Client::new(ClientConfig::default()).unwrap();
        assert_send_sync(&client);
        let allow = AllowList::default();
        let req = FetchRequest {
            method: "GET".into(),
            url: "http://example.com/".into(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            follow_redirects: true,
        };
        // Never polled: only the future's type matters.
        assert_send(client.fetch_allowed(req, Some(&allow)));
    }
}
