//! Outbound HTTP client: the host's side of the `outbound` WIT interface,
//! and the client of `snow fetch`.
//!
//! A [`Client`] sends plain-`http` requests with bodies given whole on its
//! own HTTP/1.1 path (`plain`), and the rest through hyper-util's pooled
//! client over hyper-rustls: HTTP/1.1, or HTTP/2 with upstreams that offer
//! it through ALPN. Around both, this
//! module keeps what Snow promises its modules: typed errors, redirects
//! followed here so that every hop is checked against an [`AllowList`]
//! (by [`Client::fetch_allowed`]), one deadline per fetch, a size limit on
//! responses, and requests that cannot split or reframe a message.
//!
//! Map of the module, in the order a fetch meets it:
//! - `client`    — [`Client`], deadlines, redirects, the per-thread pools;
//! - `target`    — URL checks, origins and the URI sent;
//! - `request`   — the request, with header validation;
//! - `redirect`  — where a redirect leads and what it keeps;
//! - `plain`     — plain `http` on this module's own connections: the
//!   exchange, the response head, the body, the idle connections;
//! - `connect`   — the connector stack: deadline, TLS, proxy or direct, TCP;
//! - `conn`      — the connection type hyper drives;
//! - `tls`       — trust roots and the rustls configuration;
//! - `response`  — reading the response under the size limit;
//! - `allow_list` — destination rules; `proxy` — proxies from the
//!   environment, for `snow fetch` only;
//! - `config`, `error` — settings and failure kinds.

mod allow_list;
mod client;
mod config;
mod conn;
mod connect;
mod error;
mod internal;
mod plain;
mod proxy;
mod redirect;
mod request;
mod response;
mod target;
mod tls;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use allow_list::{AllowList, AllowRule};
pub use client::Client;
pub use config::ClientConfig;
pub use error::FetchError;
pub use proxy::ProxyConfig;
pub use response::{UpstreamBody, UpstreamStream};
pub use target::parse_url;

/// One outbound request as a module asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// e.g. `GET`; must be an HTTP token.
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    /// Sent in order after the client's own fields. Framing and
    /// connection-management fields (`content-length`, `transfer-encoding`,
    /// `connection`, ...) are dropped: the client frames the message itself.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Limit for the whole exchange, redirects included; `None` takes
    /// [`ClientConfig::response_timeout`]. `Some(Duration::ZERO)` expires at
    /// once, so the WIT's `timeout-ms: 0` must become `None`.
    pub timeout: Option<Duration>,
    /// Follow redirects up to [`ClientConfig::max_redirects`] instead of
    /// returning them.
    pub follow_redirects: bool,
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    pub status: u16,
    /// As received, except `transfer-encoding`, which no longer describes the
    /// (de-chunked) body; names in lower case, as hyper gives them (and as
    /// HTTP/2 sends them). Trailer fields are not included.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// What a head-first fetch produced.
#[derive(Debug)]
pub enum Fetched {
    /// The body was short and came with the head.
    Whole(FetchResponse),
    /// The head (its `body` empty) and the body, to stream.
    Head(FetchResponse, UpstreamBody),
}

impl Fetched {
    /// The status and headers.
    pub fn head(&self) -> &FetchResponse {
        match self {
            Fetched::Whole(response) | Fetched::Head(response, _) => response,
        }
    }
}

impl FetchResponse {
    /// Value of the first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}
