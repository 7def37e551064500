//! Settings of the outbound client and their defaults.

use std::path::PathBuf;
use std::time::Duration;

/// Default for [`ClientConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ClientConfig::response_timeout`].
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ClientConfig::max_response_size`]: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_SIZE: u64 = 16 * 1024 * 1024;
/// Default for [`ClientConfig::max_idle_per_host`].
pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 32;
/// Default for [`ClientConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`ClientConfig::max_redirects`].
pub const DEFAULT_MAX_REDIRECTS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Bound on each step of opening a connection: the name lookup, each TCP
    /// attempt (one per resolved address) and the TLS handshake.
    pub connect_timeout: Duration,
    /// Bound on the whole fetch, connecting and redirects included, unless
    /// the request gives its own.
    pub response_timeout: Duration,
    /// Most bytes read for one response, head and body as framed on the
    /// wire (interim `1xx` heads included).
    pub max_response_size: u64,
    /// Most idle connections kept per (scheme, host, port); 0 disables reuse.
    pub max_idle_per_host: usize,
    /// Idle connections unused for longer than this are closed instead of reused.
    pub idle_timeout: Duration,
    /// Most redirects one fetch follows when the request asks to follow them.
    pub max_redirects: usize,
    /// PEM file of extra trust roots, added to the built-in web roots.
    pub ca_file: Option<PathBuf>,
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
        assert_eq!(config.max_idle_per_host, 32);
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.max_redirects, 5);
        assert_eq!(config.ca_file, None);
    }
}
