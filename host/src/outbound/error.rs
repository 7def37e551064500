//! Why a fetch failed, one variant per case of the WIT `fetch-error`, and
//! how the errors of hyper, hyper-util and rustls map onto them.

use std::error::Error as StdError;
use std::io;

/// The error of a body being streamed from an upstream.
pub type BoxError = Box<dyn StdError + Send + Sync>;

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
    /// The peer broke HTTP or the connection ended early.
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

    /// The connection ended before the response did.
    pub(super) fn cut_short() -> FetchError {
        FetchError::protocol("connection closed before the response was complete")
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

    /// A failed `request` of hyper-util's client: no response head arrived.
    pub(super) fn from_client(err: &hyper_util::client::legacy::Error) -> FetchError {
        if err.is_connect() {
            // The connector below hyper-rustls reports its own failures as
            // `FetchError`s; anything else comes from the TLS handshake.
            return match find::<FetchError>(err) {
                Some(known) => known.clone(),
                None => FetchError::Tls(describe(err.source().unwrap_or(err))),
            };
        }
        match find::<hyper::Error>(err) {
            Some(hyper) => FetchError::from_hyper(hyper),
            None => FetchError::Protocol(describe(err)),
        }
    }

    /// An error of hyper itself, in the response head or the body.
    pub(super) fn from_hyper(err: &hyper::Error) -> FetchError {
        if err.is_parse_too_large() {
            return FetchError::TooLarge;
        }
        if err.is_incomplete_message() {
            return FetchError::cut_short();
        }
        match find::<io::Error>(err) {
            Some(io) if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => {
                FetchError::from_io(io)
            }
            _ => FetchError::Protocol(describe(err)),
        }
    }

    /// An error of a body being streamed: the plain path's own, or hyper's.
    pub(super) fn from_body(err: &(dyn StdError + 'static)) -> FetchError {
        if let Some(known) = find::<FetchError>(err) {
            return known.clone();
        }
        match find::<hyper::Error>(err) {
            Some(hyper) => FetchError::from_hyper(hyper),
            None => FetchError::Protocol(describe(err)),
        }
    }

    /// A failure of the TCP connector (name lookup and connecting), for the
    /// destination or the proxy named by `what`.
    pub(super) fn from_tcp(err: &(dyn StdError + 'static), what: &str) -> FetchError {
        if let Some(known) = find::<FetchError>(err) {
            return known.clone();
        }
        let timed_out = chain(err)
            .filter_map(|e| e.downcast_ref::<io::Error>())
            .any(|e| e.kind() == io::ErrorKind::TimedOut);
        if timed_out {
            return FetchError::Timeout;
        }
        FetchError::Connect(format!("{what}: {}", describe(err)))
    }
}

/// The error and its sources, outermost first.
pub(super) fn chain<'e>(
    err: &'e (dyn StdError + 'static),
) -> impl Iterator<Item = &'e (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

/// The first error of type `E` in the chain.
pub(super) fn find<'e, E: StdError + 'static>(err: &'e (dyn StdError + 'static)) -> Option<&'e E> {
    chain(err).find_map(|e| e.downcast_ref::<E>())
}

/// Every message of the chain, joined: hyper's own are terse ("tcp connect
/// error") and the cause is in the source.
pub(super) fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = String::new();
    for (i, e) in chain(err).enumerate() {
        let message = e.to_string();
        // Some errors repeat their source's message in their own.
        if text.contains(&message) {
            continue;
        }
        if i > 0 {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
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

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] io::Error);

    #[test]
    fn tcp_failures_keep_their_kind() {
        let refused = Outer(io::Error::from(io::ErrorKind::ConnectionRefused));
        let err = FetchError::from_tcp(&refused, "127.0.0.1:1");
        assert!(
            matches!(&err, FetchError::Connect(m) if m.starts_with("127.0.0.1:1: outer: ")),
            "{err:?}"
        );
        let slow = Outer(io::Error::new(io::ErrorKind::TimedOut, "connect timeout"));
        assert_eq!(FetchError::from_tcp(&slow, "x"), FetchError::Timeout);
        let dns = FetchError::Dns("nowhere: no addresses".into());
        assert_eq!(FetchError::from_tcp(&dns, "x"), dns);
    }
}
