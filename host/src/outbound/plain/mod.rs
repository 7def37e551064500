//! The plain-`http` path: HTTP/1.1 on connections each pool keeps for
//! itself, one write for the request, httparse for the head and the
//! server's own chunked decoder for the body. It serves what modules fetch
//! most — plain `http`, no proxy, a body given whole — and hyper-util's
//! client serves the rest (TLS and HTTP/2, proxies, uploads that stream).
//! On a small proxied request hyper-util's pool checkout, its connection
//! task and the channel between them cost about as much CPU as all the
//! rest of the host's work; `bench/run.sh`'s proxy rows measure the two.

mod body;
mod head;
mod idle;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::{Buf, BufMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower_service::Service;

pub(super) use body::PlainBody;

use super::connect::Route;
use super::request::{announces_empty_body, Checked};
use super::target::Target;
use super::{AllowList, ClientConfig, FetchError, FetchResponse};
use head::Parsed;
use idle::{Conn, IdleSet, Key};

/// Most interim (1xx) heads before the final one.
const MAX_INTERIM: usize = 16;

/// What one request's exchange produced.
pub(super) enum Exchange {
    Whole(FetchResponse),
    /// The head, and the body to stream; `room` is what the size limit
    /// leaves for it.
    Head(FetchResponse, PlainBody, u64),
}

/// Why an exchange failed.
pub(super) enum Failure {
    /// For good.
    Fatal(FetchError),
    /// A reused connection turned out closed before any byte of a response
    /// came: the request may be sent again on a new one.
    Lost(FetchError),
}

impl From<FetchError> for Failure {
    fn from(err: FetchError) -> Failure {
        Failure::Fatal(err)
    }
}

/// One pool's plain connections and how to open more.
pub(super) struct Plain {
    idle: Arc<IdleSet>,
    route: Route,
    connect_timeout: std::time::Duration,
}

impl Plain {
    pub fn new(config: &ClientConfig, allow: Option<&AllowList>, opened: Arc<AtomicU64>) -> Plain {
        let allow = allow.map(|list| Arc::new(list.clone()));
        Plain {
            idle: IdleSet::new(config.max_idle_per_host, config.idle_timeout),
            route: Route::new(config.connect_timeout, None, allow, opened),
            connect_timeout: config.connect_timeout,
        }
    }

    /// Sends `request` with `body` to `target` and reads the response: the
    /// whole of it when its body is known to be at most `whole_below`
    /// bytes (`None`: always), else the head. `limit` bounds head and whole
    /// body together.
    pub async fn exchange(
        &self,
        target: &Target,
        request: &Checked,
        body: &[u8],
        whole_below: Option<u64>,
        limit: u64,
    ) -> Result<Exchange, Failure> {
        let key = Key {
            host: target.host.clone(),
            port: target.port,
        };
        let (mut conn, reused) = match self.idle.checkout(&key) {
            Some(conn) => (conn, true),
            None => (Conn::new(self.connect(target).await?), false),
        };
        let lost = |err: FetchError| {
            if reused {
                Failure::Lost(err)
            } else {
                Failure::Fatal(err)
            }
        };
        let message = encode(target, request, body);
        if let Err(err) = conn.stream.write_all(&message).await {
            return Err(lost(FetchError::from_io(&err)));
        }
        let method = request.method.as_str();
        let buf = &mut conn.buf;
        let mut interim = 0;
        let (head, len) = loop {
            match head::parse(buf, method, super::response::MAX_HEAD)? {
                Parsed::Final(head, len) => break (head, len),
                Parsed::Interim(len) if interim < MAX_INTERIM => {
                    interim += 1;
                    buf.advance(len);
                    continue;
                }
                Parsed::Interim(_) => {
                    return Err(FetchError::protocol("too many interim responses").into())
                }
                Parsed::Partial => {}
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(buf.capacity().max(4096));
            }
            let err = match conn.stream.read_buf(buf).await {
                Ok(0) => FetchError::cut_short(),
                Ok(_) => continue,
                Err(err) => FetchError::from_io(&err),
            };
            // Only a connection that answered nothing at all may have been
            // closed before it saw the request.
            return Err(if buf.is_empty() && interim == 0 {
                lost(err)
            } else {
                err.into()
            });
        };
        buf.advance(len);
        let room = limit.checked_sub(head.size).ok_or(FetchError::TooLarge)?;
        let home = head.reusable.then(|| (Arc::clone(&self.idle), key));
        let body = PlainBody::new(conn, head.framing, home);
        let response = FetchResponse {
            status: head.status,
            headers: head.headers,
            body: Vec::new(),
        };
        let short = match (head.framing, whole_below) {
            (_, None) | (head::Framing::Empty, _) => true,
            (head::Framing::Length(n), Some(below)) => n <= below,
            _ => false,
        };
        if !short {
            return Ok(Exchange::Head(response, body, room));
        }
        let body = body.read_whole(room).await?;
        Ok(Exchange::Whole(FetchResponse { body, ..response }))
    }

    async fn connect(&self, target: &Target) -> Result<tokio::net::TcpStream, FetchError> {
        let uri = target.uri()?;
        let connecting = self.route.clone().call(uri);
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(conn) => Ok(conn?.into_tcp()),
            Err(_) => Err(FetchError::Timeout),
        }
    }
}

/// The request as HTTP/1.1 text, body included: the fields `build` would
/// give hyper, in the same order, written without building its request.
fn encode(target: &Target, request: &Checked, body: &[u8]) -> Vec<u8> {
    let method = request.method.as_str();
    let mut out = Vec::with_capacity(256 + body.len());
    out.put_slice(method.as_bytes());
    out.put_u8(b' ');
    out.put_slice(target.path.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    if !request.has_host {
        out.put_slice(b"host: ");
        out.put_slice(target.authority.as_bytes());
        out.put_slice(b"\r\n");
    }
    for (name, value) in &request.fields {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    if body.is_empty() {
        if announces_empty_body(method) {
            out.put_slice(b"content-length: 0\r\n");
        }
    } else {
        out.put_slice(b"content-length: ");
        out.put_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"connection: keep-alive\r\n\r\n");
    out.put_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::super::request::{self, check};
    use super::*;

    fn fields(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
            .collect()
    }

    fn text(method: &str, list: &[(&str, &[u8])], body: &[u8]) -> String {
        let target = Target::parse("http://example.com:8080/a?b=c").expect("a valid URL");
        let checked = check(method, &fields(list)).expect("valid fields");
        String::from_utf8(encode(&target, &checked, body)).expect("text")
    }

    #[test]
    fn the_plain_path_writes_the_fields_build_gives_hyper() {
        let list: &[(&str, &[u8])] = &[
            ("X-One", b"1"),
            ("Connection", b"close"),
            ("Transfer-Encoding", b"chunked"),
            ("Content-Length", b"99"),
            ("x-two", b"2"),
        ];
        assert_eq!(
            text("GET", list, b""),
            "GET /a?b=c HTTP/1.1\r\nhost: example.com:8080\r\nx-one: 1\r\nx-two: 2\r\n\
             connection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            text("POST", &[("Host", b"other")], b""),
            "POST /a?b=c HTTP/1.1\r\nhost: other\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            text("PUT", &[], b"body"),
            "PUT /a?b=c HTTP/1.1\r\nhost: example.com:8080\r\ncontent-length: 4\r\n\
             connection: keep-alive\r\n\r\nbody"
        );
        // The same fields, in the same order, as the request hyper is given.
        let target = Target::parse("http://example.com:8080/a?b=c").expect("a valid URL");
        let built = request::build(
            "GET",
            &target,
            &fields(list),
            crate::http::StreamedBody::default(),
        )
        .expect("valid fields");
        let names: Vec<_> = built.headers().keys().map(|name| name.as_str()).collect();
        assert_eq!(names, ["x-one", "x-two", "connection"]);
    }

    #[test]
    fn hostile_fields_never_reach_the_wire() {
        let hostile: [(&str, &[u8]); 5] = [
            ("x-split", b"a\r\nx-injected: 1"),
            ("x-lf", b"a\nb"),
            ("x-nul", b"a\0b"),
            ("bad name", b"1"),
            ("x:colon", b"1"),
        ];
        for (name, value) in hostile {
            let fields = fields(&[(name, value)]);
            assert!(
                matches!(check("GET", &fields), Err(FetchError::Invalid(_))),
                "{name:?}: {value:?}"
            );
        }
        let two_hosts = fields(&[("host", b"a"), ("Host", b"b")]);
        assert!(check("GET", &two_hosts).is_err());
        assert!(check("CONNECT", &[]).is_err());
        assert!(check("G T", &[]).is_err());
    }
}
