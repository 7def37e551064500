//! What a Redis failure means for the module: a refusal about its data
//! (the server answered), or the store being unavailable (it did not).

use redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::kv::op::KvError;

/// Why an attempt at an operation failed.
#[derive(Debug)]
pub enum Failure {
    /// The server answered, refusing: the module's answer as it stands.
    Refused(KvError),
    /// The server did not answer, or not usefully: the connection, a
    /// timeout, a server that is loading or read-only.
    Down(RedisError),
}

impl From<RedisError> for Failure {
    fn from(err: RedisError) -> Self {
        classify(err)
    }
}

impl From<KvError> for Failure {
    fn from(err: KvError) -> Self {
        Failure::Refused(err)
    }
}

/// Sorts a Redis error into what the module is told.
pub fn classify(err: RedisError) -> Failure {
    let detail = err.detail().unwrap_or_default();
    let code = err.code().unwrap_or_default();
    let answered = matches!(
        err.kind(),
        ErrorKind::Server(ServerErrorKind::ResponseError | ServerErrorKind::ExecAbort)
            | ErrorKind::Extension
    );
    if !answered {
        return Failure::Down(err);
    }
    // Script errors carry the error of the call that failed in their
    // detail, so codes are looked for there too.
    let says = |text: &str| code == text || detail.contains(text);
    if says("WRONGTYPE") {
        Failure::Refused(KvError::Invalid(
            "the key holds a Redis value that is not a string".into(),
        ))
    } else if detail.contains("not an integer") || detail.contains("would overflow") {
        Failure::Refused(KvError::Invalid(
            "increment of a value that is not an integer, or past a 64-bit one".into(),
        ))
    } else if says("OOM") {
        Failure::Refused(KvError::TooLarge(
            "the Redis server is out of memory (maxmemory)".into(),
        ))
    } else {
        Failure::Down(err)
    }
}

/// Whether the command surely never reached the server: safe to retry
/// whatever it was.
pub fn never_sent(err: &RedisError) -> bool {
    err.is_connection_refusal()
}

/// Whether the connection is gone: a read, or a write that sets rather
/// than adds, is safe to try again on a new one.
pub fn connection_lost(err: &RedisError) -> bool {
    err.is_connection_dropped() || err.is_unrecoverable_error()
}

/// Whether the connection may be stuck (a server that stopped answering
/// without closing it): a fresh one is the way out.
pub fn stuck(err: &RedisError) -> bool {
    err.is_timeout() || err.kind() == ErrorKind::AuthenticationFailed
}

/// The error for the module: short, with no URL in it (the client's
/// messages name addresses at most, never passwords, but say no more than
/// needed).
pub fn shown(err: &RedisError) -> String {
    let mut text = match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_owned(),
        _ => err.to_string(),
    };
    const MOST: usize = 200;
    if text.len() > MOST {
        let mut cut = MOST;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}
