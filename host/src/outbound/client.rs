//! The client: one deadline over the whole fetch, redirects, and the choice
//! between a pooled connection and a new one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::connect::Connector;
use super::exchange::{exchange, Completed};
use super::pool::Pool;
use super::redirect::{next_hop, Hop};
use super::request_head::{self, is_idempotent};
use super::stream::Stream;
use super::target::{PoolKey, Target};
use super::{AllowList, ClientConfig, FetchError, FetchRequest, FetchResponse};

/// Cheap to clone: clones share the TLS configuration, the idle pool and
/// the connection count.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    connector: Connector,
    pool: Pool,
}

impl Client {
    /// Fails when the CA file cannot be read or holds no certificate.
    pub fn new(config: ClientConfig) -> anyhow::Result<Client> {
        let tls = super::tls::client_config(config.ca_file.as_deref())?;
        let connector = Connector {
            connect_timeout: config.connect_timeout,
            tls,
            opened: AtomicU64::new(0),
        };
        let pool = Pool::new(config.max_idle_per_host, config.idle_timeout);
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                connector,
                pool,
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
        let limit = req.timeout.unwrap_or(self.inner.config.response_timeout);
        tokio::time::timeout(limit, self.follow(req, allow))
            .await
            .unwrap_or(Err(FetchError::Timeout))
    }

    /// TCP connections opened so far, by this client and its clones.
    pub fn connections_opened(&self) -> u64 {
        self.inner.connector.opened.load(Ordering::Relaxed)
    }

    async fn follow(
        &self,
        req: FetchRequest,
        allow: Option<&AllowList>,
    ) -> Result<FetchResponse, FetchError> {
        let mut hop = Hop {
            target: Target::parse(&req.url)?,
            method: req.method,
            headers: req.headers,
            body: req.body,
        };
        let mut redirects = 0;
        loop {
            if allow.is_some_and(|list| !list.allows(&hop.target.url)) {
                return Err(FetchError::Denied);
            }
            let response = self.send(&hop).await?;
            if !req.follow_redirects {
                return Ok(response);
            }
            let Some(next) = next_hop(&hop, &response)? else {
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

    /// One request, on a pooled connection when there is one. A pooled
    /// connection can die between the liveness check and the request, so a
    /// failure there is retried once on a new connection where that is safe.
    async fn send(&self, hop: &Hop) -> Result<FetchResponse, FetchError> {
        let head = request_head::encode(&hop.method, &hop.target, &hop.headers, hop.body.len())?;
        let limit = self.inner.config.max_response_size;
        let key = hop.target.pool_key();
        if let Some(mut stream) = self.inner.pool.take(&key) {
            match exchange(&mut stream, &hop.method, &head, &hop.body, limit).await {
                Ok(done) => return Ok(self.finish(key, stream, done)),
                Err(failure) if failure.may_retry(is_idempotent(&hop.method)) => {
                    tracing::debug!(error = %failure.error, "reused connection failed; retrying");
                }
                Err(failure) => return Err(failure.error),
            }
        }
        let mut stream = self.inner.connector.open(&hop.target).await?;
        let done = exchange(&mut stream, &hop.method, &head, &hop.body, limit)
            .await
            .map_err(|failure| failure.error)?;
        Ok(self.finish(key, stream, done))
    }

    fn finish(&self, key: PoolKey, stream: Stream, done: Completed) -> FetchResponse {
        if done.reusable {
            self.inner.pool.put(key, stream);
        }
        done.response
    }
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
