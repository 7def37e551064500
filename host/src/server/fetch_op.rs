//! A module's `outbound.fetch`: checked against the module's allow-list
//! before any connection, then run on the workers' HTTP client; every
//! failure becomes a `fetch-error` value for the module.

use crate::http::BodyIn;
use crate::outbound::{self, AllowList, Client, Fetched};
use crate::runtime::bindings::{FetchError, OutgoingRequest, Response};
use crate::runtime::wit;

/// The streamed form of [`run`]: the head, with the body left to stream
/// unless it is short enough to come whole.
pub async fn run_head(
    client: &Client,
    allow: &AllowList,
    module: &str,
    req: OutgoingRequest,
    upload: Option<BodyIn>,
) -> Result<Fetched, FetchError> {
    let url = check(allow, module, &req.url)?;
    let req = wit::fetch_request(req)?;
    client
        .fetch_head_parsed(url, req, allow, WHOLE_BELOW, upload)
        .await
        .map_err(|err| failed(module, err))
}

/// A streamed fetch whose body is known to be this short comes whole: one
/// completion instead of a stream to set up and read.
const WHOLE_BELOW: u64 = crate::http::stream::CHUNK as u64;

/// The URL, parsed, when the module's allow-list permits it.
fn check(allow: &AllowList, module: &str, url: &str) -> Result<url::Url, FetchError> {
    let parsed =
        outbound::parse_url(url).map_err(|err| FetchError::Invalid(format!("{url}: {err}")))?;
    if !allow.allows(&parsed) {
        tracing::warn!(
            module,
            url,
            "outbound request denied: not on the module's allow-list"
        );
        return Err(FetchError::Denied);
    }
    Ok(parsed)
}

fn failed(module: &str, err: outbound::FetchError) -> FetchError {
    if err == outbound::FetchError::Denied {
        tracing::warn!(
            module,
            "outbound redirect denied: not on the module's allow-list"
        );
    }
    wit::fetch_error(err)
}

pub async fn run(
    client: &Client,
    allow: &AllowList,
    module: &str,
    req: OutgoingRequest,
) -> Result<Response, FetchError> {
    let url = check(allow, module, &req.url)?;
    let req = wit::fetch_request(req)?;
    client
        .fetch_parsed(url, req, allow)
        .await
        .map(wit::fetch_response)
        .map_err(|err| failed(module, err))
}
