//! Why a fetch failed, one variant per case of the WIT `fetch-error`.

use std::io;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The name did not resolve.
    #[error("name resolution failed: {0}")]
    Dns(String),
    /// No connection could be made.
    #[error("connection failed: {0}")]
    Connect(String),
    /// Connecting or the response took too long.
    #[error("timed out")]
    Timeout,
    /// The TLS handshake or certificate check failed.
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The peer broke HTTP/1.1 or the connection ended early.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The response exceeded the size limit.
    #[error("response too large")]
    TooLarge,
    /// The destination is not on the allow-list.
    #[error("destination not allowed")]
    Denied,
    /// The URL or request could not be used.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl FetchError {
    pub(super) fn protocol(reason: impl Into<String>) -> FetchError {
        FetchError::Protocol(reason.into())
    }

    pub(super) fn invalid(reason: impl Into<String>) -> FetchError {
        FetchError::Invalid(reason.into())
    }

    /// Classifies an I/O error on an established connection: rustls reports
    /// a bad record or alert as `InvalidData` wrapping its own error, which
    /// is a TLS failure rather than an HTTP one.
    pub(super) fn from_io(err: &io::Error) -> FetchError {
        match err.get_ref() {
            Some(inner) if inner.is::<rustls::Error>() => FetchError::Tls(inner.to_string()),
            _ => FetchError::Protocol(format!("connection failed mid-exchange: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_inside_io_errors_are_tls() {
        let err = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert!(matches!(FetchError::from_io(&err), FetchError::Tls(_)));
        let err = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(matches!(FetchError::from_io(&err), FetchError::Protocol(_)));
    }
}
