//! Settings of the outbound client and their defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::ProxyConfig;

/// Default for [`ClientConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ClientConfig::response_timeout`].
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ClientConfig::max_response_size`]: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_SIZE: u64 = 16 * 1024 * 1024;
/// Default for [`ClientConfig::max_idle_per_host`]: what 64 clients of a
/// proxying module keep busy, with room to spare (as nginx's `keepalive
/// 64` in each of two workers).
pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 128;
/// Default for [`ClientConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`ClientConfig::max_redirects`].
pub const DEFAULT_MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Bound on opening a connection: the name lookup, TCP (hyper divides
    /// it among the resolved addresses, trying IPv4 and IPv6 side by side)
    /// and the TLS handshake together, as curl's `--connect-timeout`.
    pub connect_timeout: Duration,
    /// Bound on the whole fetch, connecting and redirects included, unless
    /// the request gives its own.
    pub response_timeout: Duration,
    /// Most bytes of one response: its head (counted as HTTP/1.1 text)
    /// and its body (after de-chunking).
    pub max_response_size: u64,
    /// Most idle connections kept per (scheme, host, port), for all the
    /// threads fetching through the client; 0 disables reuse. Beyond it,
    /// connections that come back are closed, and a load that needs more
    /// opens new ones all the while.
    pub max_idle_per_host: usize,
    /// Idle connections unused for longer than this are closed instead of reused.
    pub idle_timeout: Duration,
    /// Most redirects one fetch follows when the request asks to follow them.
    pub max_redirects: usize,
    /// PEM file of extra trust roots, added to the built-in web roots.
    pub ca_file: Option<PathBuf>,
    /// Proxies to go through; `None` connects to every destination
    /// directly. Only `snow fetch` sets it, from the environment: a module's
    /// allow-list names the destinations it may reach, and a proxy would
    /// receive every request whatever its destination.
    pub proxy: Option<ProxyConfig>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
            max_idle_per_host: DEFAULT_MAX_IDLE_PER_HOST,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            ca_file: None,
            proxy: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let config = ClientConfig::default();
        assert_eq!(config.connect_timeout, Duration::from_secs(10));
        assert_eq!(config.response_timeout, Duration::from_secs(30));
        assert_eq!(config.max_response_size, 16 << 20);
        assert_eq!(config.max_idle_per_host, 128);
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.max_redirects, 5);
        assert_eq!(config.ca_file, None);
        assert_eq!(config.proxy, None);
    }
}
