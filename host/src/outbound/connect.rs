//! Opens a connection: name lookup off the async threads, one TCP attempt
//! per resolved address, then the TLS handshake for `https`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use url::Host;

use super::stream::Stream;
use super::target::Target;
use super::FetchError;

pub(super) struct Connector {
    pub connect_timeout: Duration,
    pub tls: Arc<rustls::ClientConfig>,
    /// TCP connections established, whether or not TLS then succeeded.
    pub opened: AtomicU64,
}

impl Connector {
    pub async fn open(&self, target: &Target) -> Result<Stream, FetchError> {
        let addrs = self.resolve(target).await?;
        let tcp = self.connect_any(&addrs).await?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        // Requests go out in at most two writes; waiting for an ACK between
        // them (Nagle) would only add latency. Failing to set it is harmless.
        let _ = tcp.set_nodelay(true);
        if !target.tls {
            return Ok(Stream::Plain(tcp));
        }
        let name = server_name(&target.host)?;
        let handshake = TlsConnector::from(Arc::clone(&self.tls)).connect(name, tcp);
        match timeout(self.connect_timeout, handshake).await {
            Ok(Ok(tls)) => Ok(Stream::Tls(Box::new(tls))),
            Ok(Err(err)) => Err(FetchError::Tls(err.to_string())),
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn resolve(&self, target: &Target) -> Result<Vec<SocketAddr>, FetchError> {
        let domain = match &target.host {
            Host::Domain(domain) => domain.as_str(),
            Host::Ipv4(ip) => return Ok(vec![SocketAddr::new(IpAddr::V4(*ip), target.port)]),
            Host::Ipv6(ip) => return Ok(vec![SocketAddr::new(IpAddr::V6(*ip), target.port)]),
        };
        let lookup = tokio::net::lookup_host((domain, target.port));
        let addrs: Vec<SocketAddr> = match timeout(self.connect_timeout, lookup).await {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(err)) => return Err(FetchError::Dns(format!("{domain}: {err}"))),
            Err(_) => return Err(FetchError::Timeout),
        };
        if addrs.is_empty() {
            return Err(FetchError::Dns(format!("{domain}: no addresses")));
        }
        Ok(addrs)
    }

    /// Tries each address in turn, so that a name with an unreachable IPv6
    /// address still works over IPv4.
    async fn connect_any(&self, addrs: &[SocketAddr]) -> Result<TcpStream, FetchError> {
        let mut refused: Option<(SocketAddr, io::Error)> = None;
        for &addr in addrs {
            match timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(tcp)) => return Ok(tcp),
                Ok(Err(err)) => {
                    refused.get_or_insert((addr, err));
                }
                Err(_) => {}
            }
        }
        // A timeout is reported only when no address gave a clearer answer.
        match refused {
            Some((addr, err)) => Err(FetchError::Connect(format!("{addr}: {err}"))),
            None => Err(FetchError::Timeout),
        }
    }
}

fn server_name(host: &Host<String>) -> Result<ServerName<'static>, FetchError> {
    match host {
        Host::Domain(domain) => ServerName::try_from(domain.clone())
            .map_err(|err| FetchError::Tls(format!("{domain} cannot be a TLS name: {err}"))),
        Host::Ipv4(ip) => Ok(ServerName::IpAddress(IpAddr::V4(*ip).into())),
        Host::Ipv6(ip) => Ok(ServerName::IpAddress(IpAddr::V6(*ip).into())),
    }
}
