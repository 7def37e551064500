use std::fmt;

/// What went wrong starting, driving or stopping `snow`, with the context a
/// test failure should show.
#[derive(Debug)]
pub struct Error {
    message: String,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }

    /// `err` with what was being done when it happened.
    pub(crate) fn io(doing: impl fmt::Display, err: std::io::Error) -> Self {
        Error::new(format!("{doing}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
