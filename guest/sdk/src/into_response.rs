//! What a handler may return: anything that turns into a `Response`.

use crate::Response;

/// What a handler may return: anything that becomes a [`Response`].
pub trait IntoResponse {
    /// The response to send.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::bytes(self)
    }
}

/// A status with a body, e.g. `(201, "created")`.
impl<T: IntoResponse> IntoResponse for (u16, T) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => err.into_response(),
        }
    }
}

/// `?` on any error in a handler returning `anyhow::Result`: an
/// [`Error`](crate::Error) or a [`FetchError`](crate::FetchError) inside
/// answers as it would alone; anything else is the handler's own failure,
/// answered 500 with a generic body while the whole chain goes to the log.
impl IntoResponse for anyhow::Error {
    fn into_response(self) -> Response {
        if let Some(err) = self.downcast_ref::<crate::Error>() {
            return err.clone().into_response();
        }
        if let Some(err) = self.downcast_ref::<crate::FetchError>() {
            return crate::Error::from(err.clone()).into_response();
        }
        internal_error(&format!("{self:#}"))
    }
}

/// `?` in a handler returning `Result<T, Box<dyn std::error::Error>>`.
impl IntoResponse for Box<dyn std::error::Error> {
    fn into_response(self) -> Response {
        internal_error(&chain(&*self))
    }
}

/// `?` in a handler returning `Result<T, Box<dyn Error + Send + Sync>>`.
impl IntoResponse for Box<dyn std::error::Error + Send + Sync> {
    fn into_response(self) -> Response {
        internal_error(&chain(&*self))
    }
}

/// `err` and its sources, outermost first, as `anyhow` prints them.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The client learns only that the handler failed; the module's log (its
/// stderr, which the host tags with the module's name) gets why.
fn internal_error(why: &str) -> Response {
    eprintln!("handler failed: {why}");
    Response::text("internal error: the handler failed").with_status(500)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    #[test]
    fn conversions() {
        assert_eq!("a".into_response().body(), b"a");
        assert_eq!(String::from("b").into_response().body(), b"b");
        let bytes = vec![0u8, 1].into_response();
        assert_eq!(
            bytes.header("content-type"),
            Some(&b"application/octet-stream"[..])
        );
        let created = (201, "made").into_response();
        assert_eq!((created.status_code(), created.body()), (201, &b"made"[..]));
    }

    #[test]
    fn any_error_answers_500_and_known_ones_keep_their_status() {
        use anyhow::Context;

        let parsed: anyhow::Result<String> = "x"
            .parse::<u32>()
            .map(|n| n.to_string())
            .context("reading the count");
        let response = parsed.into_response();
        assert_eq!(response.status_code(), 500);
        assert_eq!(response.body(), b"internal error: the handler failed");

        let client: anyhow::Result<&str> = Err(Error::bad_request("no name").into());
        assert_eq!(client.into_response().status_code(), 400);
        let upstream: anyhow::Result<&str> = Err(crate::FetchError::Timeout.into());
        assert_eq!(upstream.into_response().status_code(), 504);

        let io: Result<&str, Box<dyn std::error::Error>> =
            Err(std::io::Error::other("disk on fire").into());
        assert_eq!(io.into_response().status_code(), 500);
        let sent: Result<&str, Box<dyn std::error::Error + Send + Sync>> = Err("plain".into());
        assert_eq!(sent.into_response().status_code(), 500);
    }

    #[test]
    fn chains_read_outermost_first() {
        let err = anyhow::anyhow!("inner").context("outer");
        let boxed: Box<dyn std::error::Error + Send + Sync> = err.into();
        assert_eq!(chain(&*boxed), "outer: inner");
    }

    #[test]
    fn results_pick_their_side() {
        let ok: Result<&'static str, Error> = Ok("fine");
        assert_eq!(ok.into_response().status_code(), 200);
        let err: Result<&'static str, Error> = Err(Error::bad_request("nope"));
        let response = err.into_response();
        assert_eq!(
            (response.status_code(), response.body()),
            (400, &b"nope"[..])
        );
    }
}
