use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Ramps of thousands of connects per second overflow the default backlog of
/// 1024 and turn into SYN retries that look like latency. The kernel still
/// caps this at net.core.somaxconn.
const BACKLOG: u32 = 65535;

pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Lets back-to-back benchmark runs reuse a port still in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}
