//! A module's `outbound.fetch`: checked against the module's allow-list
//! before any connection, then run on the worker's HTTP client; every
//! failure becomes a `fetch-error` value for the module.

use std::time::Duration;

use crate::outbound::{self, AllowList, Client, FetchRequest};
use crate::runtime::bindings::{FetchError, Header, OutgoingRequest, Response};

pub async fn run(
    client: &Client,
    allow: &AllowList,
    module: &str,
    req: OutgoingRequest,
) -> Result<Response, FetchError> {
    let url = url::Url::parse(&req.url)
        .map_err(|err| FetchError::Invalid(format!("{}: {err}", req.url)))?;
    if !allow.allows(&url) {
        tracing::warn!(module, url = %req.url, "outbound request denied: not on the module's allow-list");
        return Err(FetchError::Denied);
    }
    let request = FetchRequest {
        method: req.method,
        url: req.url,
        headers: req.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        body: req.body,
        timeout: (req.timeout_ms > 0).then(|| Duration::from_millis(u64::from(req.timeout_ms))),
        follow_redirects: req.follow_redirects,
    };
    match client.fetch_allowed(request, Some(allow)).await {
        Ok(resp) => Ok(Response {
            status: resp.status,
            headers: resp
                .headers
                .into_iter()
                .map(|(name, value)| Header { name, value })
                .collect(),
            body: resp.body,
        }),
        Err(err) => {
            if err == outbound::FetchError::Denied {
                tracing::warn!(
                    module,
                    "outbound redirect denied: not on the module's allow-list"
                );
            }
            Err(to_wit(err))
        }
    }
}

fn to_wit(err: outbound::FetchError) -> FetchError {
    use outbound::FetchError as E;
    match err {
        E::Dns(m) => FetchError::Dns(m),
        E::Connect(m) => FetchError::Connect(m),
        E::Timeout => FetchError::Timeout,
        E::Tls(m) => FetchError::Tls(m),
        E::Protocol(m) => FetchError::Protocol(m),
        E::TooLarge => FetchError::TooLarge,
        E::Denied => FetchError::Denied,
        E::Invalid(m) => FetchError::Invalid(m),
    }
}
