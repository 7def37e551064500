//! Loopback servers for the tests: raw ones that script every byte, and a
//! small keep-alive HTTP/1.1 server answering through a closure.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::outbound::{Client, ClientConfig, FetchRequest};

pub struct TestServer {
    pub addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

/// A server handing each accepted connection to `handler`.
pub async fn raw_server<F, Fut>(handler: F) -> TestServer
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepts);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(handler(stream));
        }
    });
    TestServer { addr, accepts }
}

/// A request as the test server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A keep-alive server answering each request with the bytes `respond`
/// returns; it closes the connection when the request asked for that.
pub async fn http_server<F>(respond: F) -> TestServer
where
    F: Fn(&Seen) -> Vec<u8> + Send + Sync + 'static,
{
    let respond = Arc::new(respond);
    raw_server(move |stream| {
        let respond = Arc::clone(&respond);
        async move { serve_http(stream, move |seen| respond(seen)).await }
    })
    .await
}

/// Answers requests on one connection until the client closes it.
pub async fn serve_http<S, F>(mut stream: S, respond: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(&Seen) -> Vec<u8>,
{
    let mut buf = Vec::new();
    while let Some(seen) = read_request(&mut stream, &mut buf).await {
        if stream.write_all(&respond(&seen)).await.is_err() {
            return;
        }
        let _ = stream.flush().await;
    }
    let _ = stream.shutdown().await;
}

/// Reads one request with a Content-Length body (or none); `None` at the
/// end of the stream.
pub async fn read_request<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> Option<Seen> {
    loop {
        let parsed = {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(len)) => Some((
                    Seen {
                        method: req.method.unwrap_or_default().to_owned(),
                        path: req.path.unwrap_or_default().to_owned(),
                        headers: req
                            .headers
                            .iter()
                            .map(|h| {
                                (
                                    h.name.to_owned(),
                                    String::from_utf8_lossy(h.value).into_owned(),
                                )
                            })
                            .collect(),
                        body: Vec::new(),
                    },
                    len,
                )),
                _ => None,
            }
        };
        if let Some((mut seen, len)) = parsed {
            buf.drain(..len);
            let length: usize = seen
                .header("content-length")
                .map_or(0, |v| v.parse().unwrap());
            while buf.len() < length {
                if !read_more(stream, buf).await {
                    return None;
                }
            }
            seen.body = buf.drain(..length).collect();
            return Some(seen);
        }
        if !read_more(stream, buf).await {
            return None;
        }
    }
}

async fn read_more<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// A complete `200 OK` with a Content-Length body.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub fn client() -> Client {
    client_with(ClientConfig::default())
}

pub fn client_with(config: ClientConfig) -> Client {
    Client::new(config).unwrap()
}

pub fn get(url: &str) -> FetchRequest {
    request("GET", url, b"")
}

pub fn request(method: &str, url: &str, body: &[u8]) -> FetchRequest {
    FetchRequest {
        method: method.to_owned(),
        url: url.to_owned(),
        headers: Vec::new(),
        body: body.to_vec(),
        timeout: Some(Duration::from_secs(10)),
        follow_redirects: false,
    }
}
