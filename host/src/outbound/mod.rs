//! Outbound HTTP/1.1 client: the host's side of the `outbound` WIT interface.
//!
//! A [`Client`] resolves names without blocking, keeps idle connections per
//! destination, speaks TLS through rustls and reads responses with the same
//! care the server takes with requests: every length, count and wait is
//! bounded. Destinations are checked against an [`AllowList`] by the caller;
//! [`Client::fetch_allowed`] repeats the check for every redirect it follows.
//!
//! Map of the module, in the order a fetch meets it:
//! - `client`        — [`Client`], deadlines and redirect following;
//! - `target`        — URL checks and the pieces a connection needs;
//! - `request_head`  — the request bytes, with header validation;
//! - `pool`          — idle keep-alive connections;
//! - `connect`       — name resolution, TCP and the TLS handshake;
//! - `tls`           — trust roots and the rustls configuration;
//! - `stream`        — plain or TLS connection behind one type;
//! - `exchange`      — one request and its response on one connection;
//! - `response_head` — status line, header fields and body framing;
//! - `response_body` — reading the body under the size limit;
//! - `redirect`      — where a redirect leads and what it keeps;
//! - `allow_list`    — destination rules;
//! - `config`, `error` — settings and failure kinds.

mod allow_list;
mod client;
mod config;
mod connect;
mod error;
mod exchange;
mod pool;
mod redirect;
mod request_head;
mod response_body;
mod response_head;
mod stream;
mod target;
mod tls;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use allow_list::{AllowList, AllowRule};
pub use client::Client;
pub use config::ClientConfig;
pub use error::FetchError;

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
    /// (de-chunked) body. Trailer fields are not included.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
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
