//! HTTP/2 with upstreams that offer it through ALPN: a hyper server on
//! TLS with a certificate from the test CA.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::support::{client_with, get, raw_server, request, TestServer};
use super::tls::{pki_offering, trusting, TempFile};
use crate::outbound::{Client, ClientConfig, FetchError};

/// What the test server's handler sees of a request.
struct Asked {
    parts: http::request::Parts,
    body: Bytes,
}

type Respond = dyn Fn(&Asked) -> http::Response<Full<Bytes>> + Send + Sync;

/// An HTTPS server speaking HTTP/2 only, and the CA file that trusts it.
async fn h2_server(respond: Arc<Respond>) -> (TestServer, TempFile) {
    let pki = pki_offering(vec![b"h2".to_vec()]);
    let acceptor = pki.acceptor;
    let server = raw_server(move |stream| {
        let (acceptor, respond) = (acceptor.clone(), Arc::clone(&respond));
        async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let respond = Arc::clone(&respond);
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    // Long enough for concurrent requests to overlap.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok::<_, Infallible>(respond(&Asked { parts, body }))
                }
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        }
    })
    .await;
    (server, TempFile::with(&pki.ca_pem))
}

fn text(body: impl Into<Bytes>) -> http::Response<Full<Bytes>> {
    http::Response::new(Full::new(body.into()))
}

/// Answers with the version, method, path, `x-a` and body it received.
fn describe(asked: &Asked) -> http::Response<Full<Bytes>> {
    let x_a = asked
        .parts
        .headers
        .get("x-a")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let mut response = text(format!(
        "{:?} {} {} {x_a} {}",
        asked.parts.version,
        asked.parts.method,
        asked.parts.uri.path(),
        String::from_utf8_lossy(&asked.body)
    ));
    response
        .headers_mut()
        .insert("X-Reply", http::HeaderValue::from_static("yes"));
    response
}

fn url(server: &TestServer, path: &str) -> String {
    format!("https://localhost:{}{path}", server.addr.port())
}

#[tokio::test]
async fn upstreams_offering_h2_are_spoken_to_in_http2() {
    let (server, ca) = h2_server(Arc::new(describe)).await;
    let client = trusting(&ca);
    for _ in 0..3 {
        let response = client.fetch(get(&url(&server, "/a?b=c"))).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"HTTP/2.0 GET /a  ");
        assert_eq!(response.header("x-reply"), Some(&b"yes"[..]));
    }
    assert_eq!(server.accepts(), 1, "one connection carries every request");
}

#[tokio::test]
async fn bodies_and_fields_go_out_over_http2() {
    let (server, ca) = h2_server(Arc::new(describe)).await;
    let mut req = request("POST", &url(&server, "/echo"), b"payload");
    req.headers.push(("X-A".into(), b"value".to_vec()));
    // Connection-specific fields have no place in HTTP/2; the client must
    // not send them, or the server refuses the stream.
    req.headers.push(("Connection".into(), b"close".to_vec()));
    let response = trusting(&ca).fetch(req).await.unwrap();
    assert_eq!(response.body, b"HTTP/2.0 POST /echo value payload");
}

#[tokio::test]
async fn concurrent_fetches_share_one_http2_connection() {
    let (server, ca) = h2_server(Arc::new(describe)).await;
    let client = trusting(&ca);
    // Until ALPN has chosen HTTP/2, the client cannot know that one
    // connection will do; once it has, every fetch rides on it.
    let first = client.fetch(get(&url(&server, "/first"))).await.unwrap();
    assert_eq!(first.body, b"HTTP/2.0 GET /first  ");
    let fetches: Vec<_> = (0..8)
        .map(|i| {
            let (client, url) = (client.clone(), url(&server, &format!("/{i}")));
            tokio::spawn(async move { client.fetch(get(&url)).await })
        })
        .collect();
    for (i, fetch) in fetches.into_iter().enumerate() {
        let response = fetch.await.unwrap().unwrap();
        assert_eq!(response.body, format!("HTTP/2.0 GET /{i}  ").as_bytes());
    }
    assert_eq!(client.connections_opened(), 1);
    assert_eq!(server.accepts(), 1);
}

#[tokio::test]
async fn http2_responses_over_the_limit_are_too_large() {
    let (server, ca) = h2_server(Arc::new(|_: &Asked| text(vec![b'x'; 4096]))).await;
    let client = client_with(ClientConfig {
        max_response_size: 1024,
        ca_file: Some(ca.path().to_owned()),
        ..ClientConfig::default()
    });
    let err = client.fetch(get(&url(&server, "/"))).await.unwrap_err();
    assert_eq!(err, FetchError::TooLarge);
}

#[tokio::test]
async fn oversized_http2_heads_fail_and_leave_the_client_usable() {
    let respond = |asked: &Asked| {
        if asked.parts.uri.path() == "/huge" {
            let mut response = text("never");
            let filler = http::HeaderValue::from_str(&"v".repeat(8192)).unwrap();
            for i in 0..16 {
                response.headers_mut().insert(
                    http::HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap(),
                    filler.clone(),
                );
            }
            response
        } else {
            text("fine")
        }
    };
    let (server, ca) = h2_server(Arc::new(respond)).await;
    let client: Client = trusting(&ca);
    let err = client.fetch(get(&url(&server, "/huge"))).await.unwrap_err();
    assert!(
        matches!(err, FetchError::TooLarge | FetchError::Protocol(_)),
        "{err:?}"
    );
    let response = client.fetch(get(&url(&server, "/small"))).await.unwrap();
    assert_eq!(response.body, b"fine");
}
