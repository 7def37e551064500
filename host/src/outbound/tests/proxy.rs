//! Fetches through an HTTP proxy: absolute-form requests for `http`, a
//! `CONNECT` tunnel for `https`, and `no_proxy` exceptions.

use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::support::{client_with, get, http_server, ok, raw_server, read_request, TestServer};
use super::tls::{https_server, pki_offering, TempFile};
use crate::outbound::{ClientConfig, FetchError, ProxyConfig};

/// A proxy that answers plain requests itself, describing them, and
/// tunnels `CONNECT`s; it records every request line and credential.
struct Proxy {
    server: TestServer,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn url(&self) -> String {
        format!("http://user:pw@{}", self.server.addr)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn proxy() -> Proxy {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let server = raw_server(move |mut stream| {
        let log = Arc::clone(&log);
        async move {
            let mut buf = Vec::new();
            while let Some(asked) = read_request(&mut stream, &mut buf).await {
                let auth = asked
                    .header("proxy-authorization")
                    .unwrap_or("-")
                    .to_owned();
                let line = format!("{} {} {auth}", asked.method, asked.path);
                log.lock().unwrap().push(line.clone());
                if asked.method != "CONNECT" {
                    let _ = stream.write_all(&ok(&line)).await;
                    continue;
                }
                let Ok(mut upstream) = TcpStream::connect(asked.path.as_str()).await else {
                    let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = stream
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
                return;
            }
        }
    })
    .await;
    Proxy { server, seen }
}

fn via(proxy: &ProxyConfig) -> ClientConfig {
    ClientConfig {
        proxy: Some(proxy.clone()),
        ..ClientConfig::default()
    }
}

#[tokio::test]
async fn plain_requests_go_to_the_proxy_in_absolute_form() {
    let proxy = proxy().await;
    let client = client_with(via(&ProxyConfig {
        http: Some(proxy.url()),
        ..ProxyConfig::default()
    }));
    for _ in 0..2 {
        let response = client
            .fetch(get("http://origin.invalid:8080/x?y=1#frag"))
            .await
            .unwrap();
        assert_eq!(
            response.body,
            b"GET http://origin.invalid:8080/x?y=1 Basic dXNlcjpwdw=="
        );
    }
    assert_eq!(proxy.server.accepts(), 1, "the proxy connection is pooled");
}

#[tokio::test]
async fn tls_goes_through_a_connect_tunnel() {
    let pki = pki_offering(Vec::new());
    let upstream = https_server(pki.acceptor).await;
    let ca = TempFile::with(&pki.ca_pem);
    let proxy = proxy().await;
    let client = client_with(ClientConfig {
        ca_file: Some(ca.path().to_owned()),
        ..via(&ProxyConfig {
            https: Some(proxy.url()),
            ..ProxyConfig::default()
        })
    });
    let port = upstream.addr.port();
    let response = client
        .fetch(get(&format!("https://localhost:{port}/")))
        .await
        .unwrap();
    assert_eq!(response.body, b"secure");
    assert_eq!(
        proxy.seen(),
        [format!("CONNECT localhost:{port} Basic dXNlcjpwdw==")]
    );
}

#[tokio::test]
async fn no_proxy_destinations_are_reached_directly() {
    let proxy = proxy().await;
    let origin = http_server(|_| ok("direct")).await;
    let client = client_with(via(&ProxyConfig {
        http: Some(proxy.url()),
        https: Some(proxy.url()),
        no_proxy: "example.test, 127.0.0.0/8".to_owned(),
    }));
    let response = client.fetch(get(&origin.url("/"))).await.unwrap();
    assert_eq!(response.body, b"direct");
    assert_eq!(proxy.server.accepts(), 0);
}

#[tokio::test]
async fn an_unreachable_proxy_is_a_connect_error_naming_it() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = client_with(via(&ProxyConfig {
        http: Some(format!("http://{addr}")),
        https: Some(format!("http://{addr}")),
        ..ProxyConfig::default()
    }));
    for url in ["http://origin.invalid/", "https://origin.invalid/"] {
        let err = client.fetch(get(url)).await.unwrap_err();
        assert!(
            matches!(&err, FetchError::Connect(m) if m.contains(&format!("proxy {addr}"))),
            "{url}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_tunnel_is_a_connect_error() {
    let proxy = raw_server(|mut stream| async move {
        let mut buf = Vec::new();
        read_request(&mut stream, &mut buf).await;
        let _ = stream
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let client = client_with(via(&ProxyConfig {
        https: Some(format!("http://{}", proxy.addr)),
        ..ProxyConfig::default()
    }));
    let err = client
        .fetch(get("https://origin.invalid/"))
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Connect(_)), "{err:?}");
}
