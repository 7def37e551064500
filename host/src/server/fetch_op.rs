//! A module's `outbound.fetch`: checked against the module's allow-list
//! before any connection, then run on the worker's HTTP client; every
//! failure becomes a `fetch-error` value for the module.

use crate::outbound::{self, AllowList, Client};
use crate::runtime::bindings::{FetchError, OutgoingRequest, Response};
use crate::runtime::wit;

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
    match client
        .fetch_allowed(wit::fetch_request(req), Some(allow))
        .await
    {
        Ok(resp) => Ok(wit::fetch_response(resp)),
        Err(err) => {
            if err == outbound::FetchError::Denied {
                tracing::warn!(
                    module,
                    "outbound redirect denied: not on the module's allow-list"
                );
            }
            Err(wit::fetch_error(err))
        }
    }
}
