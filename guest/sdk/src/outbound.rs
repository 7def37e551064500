//! An outbound HTTP exchange in the SDK's own types: the request exactly as
//! the host receives it, and why one failed. `boundary` converts both to and
//! from WIT; `fetch` builds the one and returns the other.

use std::fmt;

use crate::{Error, Header};

/// A request exactly as handed to the host's `outbound.fetch`; native tests
/// see it through `testing::fetches`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest {
    /// e.g. `GET`.
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Sent after the host's own fields; framing fields are dropped.
    pub headers: Vec<Header>,
    /// The request body.
    pub body: Vec<u8>,
    /// 0 leaves the limit to the host.
    pub timeout_ms: u32,
    /// Follow redirects (up to the host's limit) instead of returning them.
    pub follow_redirects: bool,
    /// Leave the response body at the host, to stream.
    pub stream_response: bool,
    /// Send the rest of the request's body after `body`, as it arrives.
    pub forward_body: bool,
}

impl OutgoingRequest {
    /// The first header with this name, compared case-insensitively.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        Header::find(&self.headers, name)
    }
}

/// Why an outbound request failed; mirrors the WIT `fetch-error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The name did not resolve.
    Dns(String),
    /// No connection could be made.
    Connect(String),
    /// Connecting or the response took too long.
    Timeout,
    /// The TLS handshake or certificate check failed.
    Tls(String),
    /// The peer broke the HTTP protocol.
    Protocol(String),
    /// The response exceeded the host's size limit.
    TooLarge,
    /// The destination is not on this module's allow-list.
    Denied,
    /// The URL or request could not be used.
    Invalid(String),
}

impl FetchError {
    /// The WIT case name (`dns`, `timeout`, `too-large`...), stable enough
    /// to report in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Dns(_) => "dns",
            FetchError::Connect(_) => "connect",
            FetchError::Timeout => "timeout",
            FetchError::Tls(_) => "tls",
            FetchError::Protocol(_) => "protocol",
            FetchError::TooLarge => "too-large",
            FetchError::Denied => "denied",
            FetchError::Invalid(_) => "invalid",
        }
    }

    /// The host's explanation, for the cases that carry one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            FetchError::Dns(detail)
            | FetchError::Connect(detail)
            | FetchError::Tls(detail)
            | FetchError::Protocol(detail)
            | FetchError::Invalid(detail) => Some(detail),
            FetchError::Timeout | FetchError::TooLarge | FetchError::Denied => None,
        }
    }
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.detail() {
            Some(detail) => write!(f, "{}: {detail}", self.kind()),
            None => f.write_str(self.kind()),
        }
    }
}

impl std::error::Error for FetchError {}

/// An upstream failure is the gateway's problem, not the client's: 502, or
/// 504 when the upstream was too slow.
impl From<FetchError> for Error {
    fn from(err: FetchError) -> Self {
        let status = match err {
            FetchError::Timeout => 504,
            _ => 502,
        };
        Error::new(status, format!("upstream request failed: {err}"))
    }
}

/// `location` (a redirect's) relative to `base`: absolute, host-relative
/// or path-relative. Snow's host follows redirects itself; a module built
/// for `wasi:http` follows them with this.
#[cfg_attr(
    not(all(feature = "wasi-http", target_arch = "wasm32")),
    allow(dead_code)
)]
pub(crate) fn resolve(base: &str, location: &str) -> Option<String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Some(location.to_owned());
    }
    let (scheme, rest) = base.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if location.starts_with("//") {
        return Some(format!("{scheme}:{location}"));
    }
    if let Some(path) = location.strip_prefix('/') {
        return Some(format!("{scheme}://{authority}/{path}"));
    }
    let target = rest.split(['?', '#']).next()?;
    let dir = match target.rfind('/') {
        Some(at) => target[..=at].to_owned(),
        None => format!("{authority}/"),
    };
    Some(format!("{scheme}://{dir}{location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_locations_resolve_against_the_request() {
        let base = "http://a.test:8/x/y?q=1";
        assert_eq!(resolve(base, "https://b/").as_deref(), Some("https://b/"));
        assert_eq!(resolve(base, "/z").as_deref(), Some("http://a.test:8/z"));
        assert_eq!(resolve(base, "//c/d").as_deref(), Some("http://c/d"));
        assert_eq!(resolve(base, "w").as_deref(), Some("http://a.test:8/x/w"));
        assert_eq!(resolve("http://a", "w").as_deref(), Some("http://a/w"));
        assert_eq!(resolve("http://a?x/y", "/z").as_deref(), Some("http://a/z"));
        assert_eq!(resolve("http://a?x/y", "w").as_deref(), Some("http://a/w"));
        assert_eq!(resolve("nonsense", "/z"), None);
    }

    #[test]
    fn errors_display_and_map_to_gateway_statuses() {
        assert_eq!(FetchError::Timeout.to_string(), "timeout");
        assert_eq!(FetchError::TooLarge.to_string(), "too-large");
        assert_eq!(
            FetchError::Dns("no such host".into()).to_string(),
            "dns: no such host"
        );
        assert_eq!(Error::from(FetchError::Timeout).status_code(), 504);
        let denied = Error::from(FetchError::Denied);
        assert_eq!(denied.status_code(), 502);
        assert_eq!(denied.message(), "upstream request failed: denied");
        let boxed: Box<dyn std::error::Error> = Box::new(FetchError::Connect("refused".into()));
        assert_eq!(boxed.to_string(), "connect: refused");
    }
}
