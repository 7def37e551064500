//! Moves the generated WIT records into the SDK's own types and back. Only
//! fields move: strings and byte buffers keep their allocations. Nothing
//! above this module sees a generated type except `app!`'s glue.

use crate::bindings::snow::http::types as wit;
use crate::body::BodyError;
use crate::completion::Completion;
use crate::executor::Step;
use crate::kv::{KeyPage, KvError, KvOutput};
use crate::outbound::FetchError;
use crate::response::Headers;
use crate::{Request, Response, Route};

pub(crate) fn request(req: wit::Request) -> Request {
    Request::from_head(req.head, req.body, req.body_complete)
}

pub(crate) fn poll(step: Step) -> wit::Poll {
    match step {
        Step::Ready(response) => wit::Poll::Ready(self::response(response)),
        Step::Pending => wit::Poll::Pending,
        Step::Streaming(head) => wit::Poll::Streaming(self::response(head)),
        Step::Finished { whole: true } => wit::Poll::Finished,
        Step::Relayed(response) => relay(response),
        // `ready` after the head: the host cuts the response off.
        Step::Finished { whole: false } => wit::Poll::Ready(self::response(
            Response::text("the stream's writer failed before its end").with_status(500),
        )),
    }
}

/// Hands a relayed response to the host; the call then answers
/// `finished`, as the contract asks.
fn relay(response: Response) -> wit::Poll {
    let (req, headers) = match response.into_relay() {
        Ok(relay) => relay,
        Err(response) => return wit::Poll::Ready(self::response(*response)),
    };
    match headers.into_block() {
        Ok(headers) => {
            relay_import(req, &headers);
            wit::Poll::Finished
        }
        Err(bad) => {
            eprintln!("invalid relayed response {bad}; answering 500");
            let text = format!("invalid response {bad}\n");
            wit::Poll::Ready(self::response(Response::text(text).with_status(500)))
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn relay_import(req: crate::outbound::OutgoingRequest, headers: &[u8]) {
    crate::host::relay(req, headers)
}

// Native builds test the boundary without a host to relay.
#[cfg(not(target_arch = "wasm32"))]
fn relay_import(_: crate::outbound::OutgoingRequest, _: &[u8]) {}

/// A response whose headers would not each stay one line of the block is
/// answered 500 instead, as the host would answer it.
fn response(response: Response) -> wit::Response {
    let (status, headers, body) = response.into_head_parts();
    match headers.into_block() {
        Ok(headers) => wit::Response {
            status,
            headers,
            body,
        },
        Err(bad) => {
            eprintln!("invalid response {bad}; answering 500");
            self::response(Response::text(format!("invalid response {bad}\n")).with_status(500))
        }
    }
}

// Only the wasm32 import takes it; native builds keep it for its test.
#[cfg(any(target_arch = "wasm32", test))]
pub(crate) fn outgoing(
    req: crate::outbound::OutgoingRequest,
) -> crate::bindings::snow::http::outbound::OutgoingRequest {
    crate::bindings::snow::http::outbound::OutgoingRequest {
        method: req.method,
        url: req.url,
        // `FetchRequest` checked them.
        headers: crate::fields::encode_checked(&req.headers),
        body: req.body,
        timeout_ms: req.timeout_ms,
        follow_redirects: req.follow_redirects,
        stream_response: req.stream_response,
        forward_body: req.forward_body,
    }
}

/// A host operation's outcome as the SDK's own completion.
pub(crate) fn completion(done: wit::Completion) -> Completion {
    match done {
        wit::Completion::Timer => Completion::Timer,
        wit::Completion::Fetch(result) => Completion::Fetch(fetched(result)),
        wit::Completion::Kv(result) => Completion::Kv(kv_result(result)),
        wit::Completion::Body(read) => Completion::Body(read.map_err(|err| match err {
            wit::BodyError::TooLarge(limit) => BodyError::TooLarge(limit),
            wit::BodyError::Broken(detail) => BodyError::Broken(detail),
        })),
        wit::Completion::Written(taken) => Completion::Written(taken),
        wit::Completion::FetchHead(head) => Completion::FetchHead(match head {
            Ok(head) => Ok((head.status, Headers::from_block(head.headers), head.body)),
            Err(err) => Err(fetch_error(err)),
        }),
    }
}

fn kv_result(result: Result<wit::KvOutput, wit::KvError>) -> Result<KvOutput, KvError> {
    match result {
        Ok(wit::KvOutput::Value(value)) => Ok(KvOutput::Value(value)),
        Ok(wit::KvOutput::Done) => Ok(KvOutput::Done),
        Ok(wit::KvOutput::Exists(exists)) => Ok(KvOutput::Exists(exists)),
        Ok(wit::KvOutput::Keys(page)) => Ok(KvOutput::Keys(KeyPage {
            keys: page.keys,
            cursor: page.cursor,
        })),
        Ok(wit::KvOutput::Number(n)) => Ok(KvOutput::Number(n)),
        Err(err) => Err(kv_error(err)),
    }
}

pub(crate) fn kv_error(err: wit::KvError) -> KvError {
    match err {
        wit::KvError::NoSuchStore(m) => KvError::NoSuchStore(m),
        wit::KvError::AccessDenied(m) => KvError::AccessDenied(m),
        wit::KvError::TooLarge(m) => KvError::TooLarge(m),
        wit::KvError::Unavailable(m) => KvError::Unavailable(m),
        wit::KvError::Conflict => KvError::Conflict,
        wit::KvError::Invalid(m) => KvError::Invalid(m),
    }
}

fn fetched(result: Result<wit::Response, wit::FetchError>) -> Result<Response, FetchError> {
    match result {
        Ok(res) => Ok(Response::from_headers(
            res.status,
            Headers::from_block(res.headers),
            res.body,
        )),
        Err(err) => Err(fetch_error(err)),
    }
}

fn fetch_error(err: wit::FetchError) -> FetchError {
    match err {
        wit::FetchError::Dns(detail) => FetchError::Dns(detail),
        wit::FetchError::Connect(detail) => FetchError::Connect(detail),
        wit::FetchError::Timeout => FetchError::Timeout,
        wit::FetchError::Tls(detail) => FetchError::Tls(detail),
        wit::FetchError::Protocol(detail) => FetchError::Protocol(detail),
        wit::FetchError::TooLarge => FetchError::TooLarge,
        wit::FetchError::Denied => FetchError::Denied,
        wit::FetchError::Invalid(detail) => FetchError::Invalid(detail),
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
    use crate::outbound::OutgoingRequest;
    use crate::Header;

    /// The completion a host would deliver for a fetch with this outcome.
    fn fetch_completion(result: Result<Response, FetchError>) -> wit::Completion {
        wit::Completion::Fetch(match result {
            Ok(res) => Ok(response(res)),
            Err(err) => Err(match err {
                FetchError::Dns(detail) => wit::FetchError::Dns(detail),
                FetchError::Connect(detail) => wit::FetchError::Connect(detail),
                FetchError::Timeout => wit::FetchError::Timeout,
                FetchError::Tls(detail) => wit::FetchError::Tls(detail),
                FetchError::Protocol(detail) => wit::FetchError::Protocol(detail),
                FetchError::TooLarge => wit::FetchError::TooLarge,
                FetchError::Denied => wit::FetchError::Denied,
                FetchError::Invalid(detail) => wit::FetchError::Invalid(detail),
            }),
        })
    }

    #[test]
    fn request_fields_move_across() {
        let req = request(wit::Request {
            head: b"POST\n/p\n/mount/p\na=1\nX-A: v\n".to_vec(),
            body: b"body".to_vec(),
            body_complete: false,
        });
        assert!(!req.body_complete());
        assert_eq!(
            (req.method(), req.path(), req.query(), req.body()),
            ("POST", "/p", "a=1", &b"body"[..])
        );
        assert_eq!(req.full_path(), "/mount/p");
        assert_eq!(req.header("x-a"), Some(&b"v"[..]));
    }

    #[test]
    fn responses_and_pending_move_back() {
        let wit::Poll::Ready(out) = poll(Step::Ready(Response::text("hi").with_status(201))) else {
            panic!("expected ready");
        };
        assert_eq!((out.status, out.body.as_slice()), (201, &b"hi"[..]));
        assert!(out.headers.starts_with(b"content-type: "));
        assert!(matches!(poll(Step::Pending), wit::Poll::Pending));
        assert!(matches!(
            poll(Step::Finished { whole: true }),
            wit::Poll::Finished
        ));
        // A writer that failed gives the stream up: `ready` after the head.
        assert!(matches!(
            poll(Step::Finished { whole: false }),
            wit::Poll::Ready(wit::Response { status: 500, .. })
        ));
        let wit::Poll::Streaming(head) = poll(Step::Streaming(Response::status(200))) else {
            panic!("expected a streamed head");
        };
        assert_eq!(head.status, 200);
    }

    #[test]
    fn a_response_header_a_client_could_split_answers_500() {
        let echoed = Response::text("hi").with_header("x-echo", "a\nset-cookie: admin=1");
        let wit::Poll::Ready(out) = poll(Step::Ready(echoed)) else {
            panic!("expected ready");
        };
        assert_eq!(out.status, 500);
        assert!(!out.headers.windows(10).any(|w| w == b"set-cookie"));
        let body = String::from_utf8(out.body).expect("utf-8");
        assert!(body.contains("\"x-echo\""), "{body}");
        // The same on a streamed head.
        let head = Response::status(200).with_header("set-cookie: admin=1; x", "v");
        let wit::Poll::Streaming(out) = poll(Step::Streaming(head)) else {
            panic!("expected a streamed head");
        };
        assert_eq!(out.status, 500);
    }

    #[test]
    fn outgoing_requests_move_across() {
        let out = outgoing(OutgoingRequest {
            method: "PUT".into(),
            url: "http://a/".into(),
            headers: vec![Header::new("x-a", "1")],
            body: b"b".to_vec(),
            timeout_ms: 7,
            follow_redirects: false,
            stream_response: true,
            forward_body: true,
        });
        assert!(out.stream_response && out.forward_body);
        assert_eq!(
            (out.method.as_str(), out.url.as_str()),
            ("PUT", "http://a/")
        );
        assert_eq!(out.headers, b"x-a: 1\n");
        assert_eq!(
            (out.body.as_slice(), out.timeout_ms, out.follow_redirects),
            (&b"b"[..], 7, false)
        );
    }

    #[test]
    fn timer_completions_move_across() {
        assert_eq!(completion(wit::Completion::Timer), Completion::Timer);
    }

    #[test]
    fn fetch_outcomes_round_trip() {
        let sent = Response::status(302)
            .append_header("set-cookie", "a=1")
            .append_header("set-cookie", "b=2")
            .with_body("moved");
        let wit::Completion::Fetch(result) = fetch_completion(Ok(sent.clone())) else {
            panic!("expected a fetch completion");
        };
        assert_eq!(fetched(result), Ok(sent));
        let errors = [
            FetchError::Dns("d".into()),
            FetchError::Connect("c".into()),
            FetchError::Timeout,
            FetchError::Tls("t".into()),
            FetchError::Protocol("p".into()),
            FetchError::TooLarge,
            FetchError::Denied,
            FetchError::Invalid("i".into()),
        ];
        for err in errors {
            let wit::Completion::Fetch(result) = fetch_completion(Err(err.clone())) else {
                panic!("expected a fetch completion");
            };
            assert_eq!(fetched(result), Err(err));
        }
    }
}
