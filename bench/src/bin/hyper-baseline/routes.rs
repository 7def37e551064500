use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use regex::Regex;

const DEFAULT_ASYNC_MS: u64 = 5000;
const MAX_ASYNC_MS: u64 = 60_000;
const MAX_ECHO_BYTES: usize = 1 << 20;
/// The length of `/big/`: the large body relayed by the proxy benchmarks.
pub const BIG_BYTES: usize = 100 << 20;

#[derive(Clone, Copy)]
enum Route {
    Home,
    Async,
    Echo,
    Big,
}

/// Routes by regex like Snow's dispatcher does, so the baseline pays a
/// comparable matching cost on every request.
pub struct Router {
    table: Vec<(Method, Regex, Route)>,
    /// `/big/`'s body, made once and shared by every answer.
    big: Bytes,
}

impl Router {
    pub fn new() -> Self {
        let entry = |method, pattern, route| {
            let regex = Regex::new(pattern).expect("route patterns are constants");
            (method, regex, route)
        };
        Self {
            table: vec![
                entry(Method::GET, r"^/home/$", Route::Home),
                entry(Method::GET, r"^/async/$", Route::Async),
                entry(Method::POST, r"^/echo/$", Route::Echo),
                entry(Method::GET, r"^/big/$", Route::Big),
            ],
            big: Bytes::from((0..BIG_BYTES).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
        }
    }

    fn find(&self, method: &Method, path: &str) -> Option<Route> {
        self.table
            .iter()
            .find(|(m, regex, _)| m == method && regex.is_match(path))
            .map(|(_, _, route)| *route)
    }

    pub async fn handle(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let response = match self.find(req.method(), req.uri().path()) {
            Some(Route::Home) => text(StatusCode::OK, "home"),
            Some(Route::Async) => {
                let ms = requested_ms(req.uri().query());
                tokio::time::sleep(Duration::from_millis(ms)).await;
                text(StatusCode::OK, "done")
            }
            Some(Route::Echo) => echo(req).await,
            Some(Route::Big) => Response::new(Full::new(self.big.clone())),
            None => text(StatusCode::NOT_FOUND, "not found"),
        };
        Ok(response)
    }
}

/// `ms` from the query string; anything missing or unparsable falls back to
/// the default, and the cap keeps a client from parking a task for ever.
fn requested_ms(query: Option<&str>) -> u64 {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("ms="))
        .and_then(|value| value.parse::<u64>().ok())
        .unwrap_or(DEFAULT_ASYNC_MS)
        .min(MAX_ASYNC_MS)
}

async fn echo(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let content_type = req.headers().get(CONTENT_TYPE).cloned();
    let body = match Limited::new(req.into_body(), MAX_ECHO_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
        Err(_) => return text(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let mut response = Response::new(Full::new(body));
    let content_type =
        content_type.unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    response.headers_mut().insert(CONTENT_TYPE, content_type);
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}
