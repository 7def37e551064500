use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Context};

/// Where the parked requests go. Only loopback is accepted: this tool opens
/// thousands of connections and must never point them at another machine.
pub struct Target {
    pub addr: SocketAddr,
    host_header: String,
    path: String,
}

impl Target {
    pub fn parse(url: &str, default_ms: u64) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("only http:// URLs are supported: {url}"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let path = match path {
            "" | "/" => format!("/async/?ms={default_ms}"),
            p => p.to_string(),
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

    pub fn request(&self) -> Vec<u8> {
        format!(
            "GET {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.path, self.host_header
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
