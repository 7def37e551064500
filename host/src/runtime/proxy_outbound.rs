//! A standard component's `wasi:http/outgoing-handler`: the request goes
//! through Snow's client, checked against the module's allow-list before
//! any connection and at every redirect, as a Snow module's fetch does.
//! Its body is read whole first (up to the module's memory limit). The
//! response's body streams to the component as it arrives, one that is
//! known to be short comes whole; errors map onto the standard's error
//! codes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use wasmtime_wasi::runtime::AbortOnDropJoinHandle;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::http::{stream::CHUNK, BodyIn, StreamedBody};
use crate::outbound::{AllowList, Client, FetchError, FetchRequest, Fetched};

pub struct Outbound {
    /// `None` denies every request: a probe's instance makes none.
    pub client: Option<Client>,
    pub allow: Arc<AllowList>,
    pub module: Arc<str>,
    /// The largest request body the module may send.
    pub max_body: usize,
    /// A response body that sends nothing this long breaks off, unless
    /// the request set its own between-bytes timeout.
    pub stream_idle: Duration,
}

impl Outbound {
    /// Denies every request: for instances that serve none (a deploy's
    /// probe, a start-up before its snapshot).
    pub fn denied(module: Arc<str>) -> Self {
        Self {
            client: None,
            allow: Arc::default(),
            module,
            max_body: 0,
            stream_idle: Duration::ZERO,
        }
    }
}

type Sent = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let Some(client) = self.client.clone() else {
            return Box::new(std::future::ready(Err(Error::HttpRequestDenied)));
        };
        let allow = self.allow.clone();
        let (module, max_body) = (self.module.clone(), self.max_body);
        let idle = options
            .as_ref()
            .and_then(|o| o.between_bytes_timeout)
            .unwrap_or(self.stream_idle);
        // The exchange runs as a task of its own, which the component's
        // future waits for; dropping that future aborts it.
        let task = tokio::spawn(async move {
            let req = fetch_request(request, options, max_body).await?;
            let url = req.url.clone();
            match crate::outbound::parse_url(&url) {
                Ok(parsed) if allow.allows(&parsed) => {}
                Ok(_) => {
                    tracing::warn!(module = %module, %url, "outbound request denied: not on the module's allow-list");
                    return Err(Error::HttpRequestDenied);
                }
                Err(_) => return Err(Error::HttpRequestUriInvalid),
            }
            let whole_below = CHUNK as u64;
            match client
                .fetch_head_allowed(req, Some(&allow), whole_below, None)
                .await
            {
                Ok(Fetched::Whole(resp)) => {
                    Ok(response(resp.status, resp.headers, whole(resp.body)))
                }
                Ok(Fetched::Head(head, body)) => {
                    let body = BodyIn::upstream(body.into_stream(), idle);
                    let body = StreamedBody::new(Bytes::new(), Some(body))
                        .map_err(Error::from)
                        .boxed_unsync();
                    Ok(response(head.status, head.headers, body))
                }
                Err(err) => {
                    if err == FetchError::Denied {
                        tracing::warn!(module = %module, "outbound redirect denied: not on the module's allow-list");
                    }
                    Err(error_code(err))
                }
            }
        });
        let task = AbortOnDropJoinHandle::from(task);
        Box::new(async move {
            let resp = task.await?;
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(std::future::ready(Ok(())));
            Ok((resp, done))
        })
    }
}

async fn fetch_request(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    max_body: usize,
) -> Result<FetchRequest, Error> {
    let (parts, body) = request.into_parts();
    let body = http_body_util::Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|_| Error::HttpRequestBodySize(None))?
        .to_bytes();
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != http::header::HOST)
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    Ok(FetchRequest {
        method: parts.method.as_str().to_owned(),
        url: parts.uri.to_string(),
        headers,
        body: body.to_vec(),
        timeout: options.and_then(|o| o.first_byte_timeout.or(o.connect_timeout)),
        // The standard returns redirects to the component.
        follow_redirects: false,
    })
}

fn whole(body: Vec<u8>) -> WasiBody {
    Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn response(
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: WasiBody,
) -> http::Response<WasiBody> {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder.body(body).unwrap_or_else(|_| {
        // The client gave fields hyper parsed, so they are valid; should
        // one not be, the component sees an empty 502 rather than a trap.
        let mut resp = http::Response::new(whole(Vec::new()));
        *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
        resp
    })
}

fn error_code(err: FetchError) -> Error {
    match err {
        FetchError::Dns(detail) => Error::DnsError {
            rcode: Some(detail),
            info_code: None,
        },
        FetchError::Connect(_) => Error::ConnectionRefused,
        FetchError::Timeout => Error::HttpResponseTimeout,
        FetchError::Tls(_) => Error::TlsProtocolError,
        FetchError::Protocol(_) => Error::HttpProtocolError,
        FetchError::TooLarge => Error::HttpResponseBodySize(None),
        FetchError::Denied => Error::HttpRequestDenied,
        FetchError::Invalid(detail) => Error::InternalError(Some(detail)),
    }
}
