//! The rustls client configuration: Mozilla's web roots plus the PEM roots
//! of an optional CA file, built once per client.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// A client configuration without ALPN protocols: hyper-rustls offers the
/// HTTP versions the client speaks.
pub(super) fn client_config(ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        add_pem_roots(&mut roots, path)?;
    }
    // An explicit provider keeps the choice of crypto independent of
    // whatever process-wide default another crate may install.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

fn add_pem_roots(roots: &mut RootCertStore, path: &Path) -> anyhow::Result<()> {
    let context = || format!("CA file {}", path.display());
    let mut added = 0usize;
    for cert in CertificateDer::pem_file_iter(path).with_context(context)? {
        let cert = cert.with_context(context)?;
        roots.add(cert).with_context(context)?;
        added += 1;
    }
    // A file without certificates is almost certainly the wrong file, and
    // failing at start-up beats TLS errors on every request later.
    anyhow::ensure!(
        added > 0,
        "CA file {} holds no certificates",
        path.display()
    );
    Ok(())
}
