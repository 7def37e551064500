//! Moves the generated WIT records into the SDK's own types and back. Only
//! fields move: strings and byte buffers keep their allocations.

use std::task::Poll;

use crate::bindings::snow::http::types as wit;
use crate::{Header, Request, Response, Route};

pub(crate) fn request(req: wit::Request) -> Request {
    let headers = req
        .headers
        .into_iter()
        .map(|header| Header {
            name: header.name,
            value: header.value,
        })
        .collect();
    Request::from_parts(req.method, req.path, req.query, headers, req.body)
}

pub(crate) fn poll(poll: Poll<Response>) -> wit::Poll {
    match poll {
        Poll::Ready(response) => wit::Poll::Ready(self::response(response)),
        Poll::Pending => wit::Poll::Pending,
    }
}

fn response(response: Response) -> wit::Response {
    let (status, headers, body) = response.into_parts();
    wit::Response {
        status,
        headers: headers
            .into_iter()
            .map(|header| wit::Header {
                name: header.name,
                value: header.value,
            })
            .collect(),
        body,
    }
}

pub(crate) fn route(route: &Route) -> wit::Route {
    wit::Route {
        pattern: route.pattern().to_owned(),
        methods: route.allowed_methods().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_fields_move_across() {
        let req = request(wit::Request {
            method: "POST".into(),
            path: "/p".into(),
            query: "a=1".into(),
            headers: vec![wit::Header {
                name: "X-A".into(),
                value: b"v".to_vec(),
            }],
            body: b"body".to_vec(),
        });
        assert_eq!(
            (req.method(), req.path(), req.query(), req.body()),
            ("POST", "/p", "a=1", &b"body"[..])
        );
        assert_eq!(req.header("x-a"), Some(&b"v"[..]));
    }

    #[test]
    fn responses_and_pending_move_back() {
        let wit::Poll::Ready(out) = poll(Poll::Ready(Response::text("hi").with_status(201))) else {
            panic!("expected ready");
        };
        assert_eq!((out.status, out.body.as_slice()), (201, &b"hi"[..]));
        assert_eq!(out.headers[0].name, "content-type");
        assert!(matches!(poll(Poll::Pending), wit::Poll::Pending));
    }
}
