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
