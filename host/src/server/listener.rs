//! One listening socket per worker on the same address (`SO_REUSEPORT`):
//! the kernel spreads connections, and no worker waits on another to accept.

use std::net::{SocketAddr, TcpListener};

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};

pub fn bind_all(addr: SocketAddr, count: usize, backlog: i32) -> Result<Vec<TcpListener>> {
    let first = bind_one(addr, backlog)?;
    // With port 0 the kernel picks a port for the first socket; the others
    // must join that one.
    let bound = first.local_addr().context("reading the bound address")?;
    let mut all = vec![first];
    for _ in 1..count {
        all.push(bind_one(bound, backlog)?);
    }
    Ok(all)
}

fn bind_one(addr: SocketAddr, backlog: i32) -> Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .context("creating a socket")?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("binding {addr}"))?;
    socket
        .listen(backlog)
        .with_context(|| format!("listening on {addr}"))?;
    Ok(socket.into())
}
