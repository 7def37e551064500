use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Context};

/// Where a load tool sends its connections. Only loopback is accepted: these
/// tools open thousands of connections and must never point them at another
/// machine.
pub struct Target {
    pub addr: SocketAddr,
    host_header: String,
    /// The URL's path and query; `None` when the URL has none, so each tool
    /// can pick its own default route.
    pub path: Option<String>,
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("only http:// URLs are supported: {url}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let path = match path {
            "" | "/" => None,
            p => Some(p.to_string()),
        };
        let (host, port) = split_host_port(authority)?;
        let ip = match host {
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            h => h
                .parse::<IpAddr>()
                .with_context(|| format!("host must be a loopback IP or localhost: {h}"))?,
        };
        if !ip.is_loopback() {
            bail!("refusing non-loopback target {ip}");
        }
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            host_header: authority.to_string(),
            path,
        })
    }

    /// The request line and host header of a GET for `path`, without the
    /// blank line that ends the head.
    pub fn head_start(&self, path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nhost: {}\r\n", self.host_header)
    }

    /// A complete GET request for `path`; `close` asks the server to close
    /// the connection after answering.
    pub fn get(&self, path: &str, close: bool) -> Vec<u8> {
        let connection = if close { "connection: close\r\n" } else { "" };
        format!("{}{connection}\r\n", self.head_start(path)).into_bytes()
    }

    /// The head of a PUT to `path` with a body of `len` bytes, asking the
    /// server to close once it answered. No `expect: 100-continue`: the body
    /// follows at once rather than after a round trip.
    pub fn put_head(&self, path: &str, len: usize) -> Vec<u8> {
        format!(
            "PUT {path} HTTP/1.1\r\nhost: {}\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n",
            self.host_header
        )
        .into_bytes()
    }
}

fn split_host_port(authority: &str) -> anyhow::Result<(&str, u16)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .with_context(|| format!("unterminated IPv6 host: {authority}"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse()
            .with_context(|| format!("bad port in {authority}"))?,
        None => 80,
    };
    Ok((host, port))
}
