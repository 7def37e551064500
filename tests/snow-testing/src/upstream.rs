//! A fake upstream for modules that fetch: a loopback HTTP/1.1 server whose
//! answers come from the test, which also sees every request it got.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::http::{read_header_lines, Response};
use crate::Error;

/// A request the upstream received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// The method.
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    /// Header lines in order.
    pub headers: Vec<(String, String)>,
    /// The body (`content-length` framed).
    pub body: Vec<u8>,
}

impl UpstreamRequest {
    /// The first header called `name`, in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::http::find_header(&self.headers, name)
    }
}

type Handler = dyn Fn(&UpstreamRequest) -> Response + Send + Sync;

/// A loopback HTTP/1.1 server answering with a closure. Let the module
/// reach it with `--allow-outbound` and [`Upstream::allow_rule`].
///
/// ```no_run
/// use snow_testing::{Response, Snow, Upstream};
///
/// # fn main() -> Result<(), snow_testing::Error> {
/// let upstream = Upstream::start(|req| Response {
///     status: 200,
///     headers: vec![("content-type".into(), "text/plain".into())],
///     body: format!("you asked for {}", req.target).into_bytes(),
/// })?;
/// let server = Snow::module("proxy.wasm")
///     .args(["--allow-outbound", &upstream.allow_rule()])
///     .start()?;
/// let answer = server.get(&format!("/proxy/?url={}", upstream.url("/x")));
/// assert_eq!(upstream.requests()[0].target, "/x");
/// # Ok(())
/// # }
/// ```
pub struct Upstream {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<UpstreamRequest>>>,
}

impl Upstream {
    /// Starts answering every request with `handler`, on a thread per
    /// connection, with keep-alive.
    pub fn start(
        handler: impl Fn(&UpstreamRequest) -> Response + Send + Sync + 'static,
    ) -> Result<Upstream, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::io("binding the fake upstream", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the fake upstream's address", e))?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (handler, seen) = (handler.clone(), seen.clone());
                std::thread::spawn(move || serve(stream, &*handler, &seen));
            }
        });
        Ok(Upstream { addr, requests })
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The allow-list rule that lets a module reach this upstream.
    pub fn allow_rule(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<UpstreamRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

fn serve(stream: TcpStream, handler: &Handler, seen: &Mutex<Vec<UpstreamRequest>>) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut out = stream;
    while let Some(request) = read_request(&mut reader) {
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = handler(&request);
        seen.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(request);
        if out.write_all(&encode(&response)).is_err() || close {
            return;
        }
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<UpstreamRequest> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let headers = read_header_lines(reader)?;
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(Some(0), |(_, v)| v.parse::<usize>().ok())?;
    let mut body = Vec::new();
    reader.take(length as u64).read_to_end(&mut body).ok()?;
    (body.len() == length).then_some(UpstreamRequest {
        method,
        target,
        headers,
        body,
    })
}

fn encode(response: &Response) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} -\r\n", response.status).into_bytes();
    for (name, value) in &response.headers {
        if !name.eq_ignore_ascii_case("content-length") {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", response.body.len()).as_bytes());
    out.extend_from_slice(&response.body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_from_the_closure_and_records_requests() -> Result<(), Error> {
        let upstream = Upstream::start(|req| Response {
            status: 201,
            headers: vec![("x-target".into(), req.target.clone())],
            body: req.body.clone(),
        })?;
        let response = crate::request(upstream.addr, "POST", "/a?b=1", &[], b"hello")?;
        assert_eq!(response.status, 201);
        assert_eq!(response.header("x-target"), Some("/a?b=1"));
        assert_eq!(response.body, b"hello");
        let seen = upstream.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(
            (seen[0].method.as_str(), &seen[0].body[..]),
            ("POST", &b"hello"[..])
        );
        Ok(())
    }

    #[test]
    fn a_bad_length_ends_the_connection_unanswered() -> Result<(), Error> {
        let upstream = Upstream::start(|_| Response {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        })?;
        let mut stream =
            TcpStream::connect(upstream.addr).map_err(|e| Error::io("connecting", e))?;
        stream
            .write_all(b"GET / HTTP/1.1\r\ncontent-length: lots\r\n\r\n")
            .map_err(|e| Error::io("writing", e))?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(answer.is_empty());
        assert!(upstream.requests().is_empty());
        Ok(())
    }
}
