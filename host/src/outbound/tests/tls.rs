//! HTTPS against a loopback server whose certificate comes from a CA made
//! for the test, trusted only through `ca_file`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsAcceptor;

use super::support::{client, client_with, get, ok, raw_server, serve_http, TestServer};
use crate::outbound::{Client, ClientConfig, FetchError};

pub(super) struct Pki {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

/// A CA and a server certificate for `localhost` signed by it.
fn pki() -> Pki {
    pki_offering(Vec::new())
}

/// As [`pki`], the server offering `alpn` protocols.
pub(super) fn pki_offering(alpn: Vec<Vec<u8>>) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Snow test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &*ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    config.alpn_protocols = alpn;
    Pki {
        ca_pem: ca.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

pub(super) async fn https_server(acceptor: TlsAcceptor) -> TestServer {
    raw_server(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(tls) = acceptor.accept(stream).await {
                serve_http(tls, |_| ok("secure")).await;
            }
        }
    })
    .await
}

/// A file removed when dropped.
pub(super) struct TempFile(PathBuf);

impl TempFile {
    pub fn with(contents: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "snow-outbound-{}-{}.pem",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(super) fn trusting(ca: &TempFile) -> Client {
    client_with(ClientConfig {
        ca_file: Some(ca.0.clone()),
        ..ClientConfig::default()
    })
}

#[tokio::test]
async fn a_certificate_from_the_ca_file_is_trusted() {
    let pki = pki();
    let server = https_server(pki.acceptor).await;
    let ca = TempFile::with(&pki.ca_pem);
    let client = trusting(&ca);
    let url = format!("https://localhost:{}/", server.addr.port());
    for _ in 0..2 {
        let response = client.fetch(get(&url)).await.unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"secure"[..])
        );
    }
    assert_eq!(server.accepts(), 1, "TLS connections are pooled too");
}

#[tokio::test]
async fn an_unknown_issuer_is_a_tls_error() {
    let pki = pki();
    let server = https_server(pki.acceptor).await;
    let url = format!("https://localhost:{}/", server.addr.port());
    let err = client().fetch(get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::Tls(_)), "{err:?}");
}

#[tokio::test]
async fn a_name_mismatch_is_a_tls_error() {
    let pki = pki();
    let server = https_server(pki.acceptor).await;
    let ca = TempFile::with(&pki.ca_pem);
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let err = trusting(&ca).fetch(get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::Tls(_)), "{err:?}");
}

#[tokio::test]
async fn a_plain_http_server_is_a_tls_error() {
    let server = raw_server(|mut stream| async move {
        let _ = stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
    })
    .await;
    let url = format!("https://localhost:{}/", server.addr.port());
    let err = client().fetch(get(&url)).await.unwrap_err();
    assert!(matches!(err, FetchError::Tls(_)), "{err:?}");
}

#[test]
fn a_missing_or_empty_ca_file_fails_at_start_up() {
    let config = |path: PathBuf| ClientConfig {
        ca_file: Some(path),
        ..ClientConfig::default()
    };
    let missing = std::env::temp_dir().join("snow-outbound-no-such-file.pem");
    assert!(Client::new(config(missing)).is_err());
    let empty = TempFile::with("no certificates here\n");
    assert!(Client::new(config(empty.0.clone())).is_err());
}
