//! An error a handler can return with `?`: it answers with its status and a
//! plain-text message, so bad input becomes a 4xx instead of a trap.

use std::fmt;

use crate::{IntoResponse, Response};

/// A status and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: u16,
    message: String,
}

impl Error {
    /// An error answered with `status` and `message` as the body.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Error {
            status,
            message: message.into(),
        }
    }

    /// A 400 Bad Request with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::new(400, message)
    }

    /// The status the error answers with.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The message sent as the body.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::str::Utf8Error> for Error {
    fn from(err: std::str::Utf8Error) -> Self {
        Error::bad_request(format!("body is not UTF-8: {err}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::bad_request(format!("invalid JSON body: {err}"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        Response::text(self.message).with_status(self.status)
    }
}
