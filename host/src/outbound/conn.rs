//! The connection type the connectors hand to hyper: a TCP stream that
//! tells hyper-util whether it leads to a proxy, and counts its requests so
//! that the client knows whether a failed one was on a reused connection.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub(super) struct Conn {
    io: TokioIo<TcpStream>,
    /// Requests on this connection take the absolute form.
    proxied: bool,
    uses: Uses,
}

impl Conn {
    pub fn new(io: TokioIo<TcpStream>, proxied: bool) -> Conn {
        Conn {
            io,
            proxied,
            uses: Uses::default(),
        }
    }

    /// The TCP stream, for the plain path, which drives it itself.
    pub fn into_tcp(self) -> TcpStream {
        self.io.into_inner()
    }
}

/// Requests started on one connection, shared by every copy hyper-util
/// makes of the connection's metadata.
#[derive(Clone, Debug, Default)]
pub(super) struct Uses(Arc<AtomicU64>);

impl Uses {
    /// Counts one more request; true when there were others before it.
    pub fn reused(&self) -> bool {
        self.0.fetch_add(1, Ordering::Relaxed) > 0
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io
            .connected()
            .proxy(self.proxied)
            .extra(self.uses.clone())
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}
