//! `wasi:io/streams` and `wasi:io/poll` for guests that run on a reactor
//! thread: blocking calls may never wait.
//!
//! wasmtime-wasi's synchronous bindings run blocking calls with
//! `Handle::block_on`, which panics on a thread that is already driving a
//! tokio runtime — as every Snow worker is. Here the non-blocking calls are
//! delegated unchanged, and each blocking call tries its operation once: the
//! guest's stdout and stderr are always ready, so writes succeed; a wait that
//! could not finish at once (`std::thread::sleep`, polling a timer) traps with
//! a message pointing at the asynchronous API instead of stalling the worker.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sync::io::poll::{self, Pollable};
use wasmtime_wasi::p2::bindings::sync::io::streams::{self, InputStream, OutputStream};
use wasmtime_wasi::p2::{StreamError, StreamResult};
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    HostInputStream as AsyncInput, HostOutputStream as AsyncOutput,
};

const WOULD_BLOCK: &str = "a Snow module may not block its worker (blocking wait on a \
    pollable or stream); await snow_guest::sleep or another host operation instead";

/// The resource table, seen through the non-blocking implementations.
pub struct NonBlocking<'a>(pub &'a mut ResourceTable);

pub struct NonBlockingIo;

/// The plain table, for interfaces that never block (`wasi:io/error`).
pub struct Table;

impl HasData for Table {
    type Data<'a> = &'a mut ResourceTable;
}

impl HasData for NonBlockingIo {
    type Data<'a> = NonBlocking<'a>;
}

/// Store data that owns the WASI resource table.
pub trait HasTable: 'static {
    fn table(&mut self) -> &mut ResourceTable;
}

fn view<T: HasTable>(t: &mut T) -> NonBlocking<'_> {
    NonBlocking(t.table())
}

/// Adds the non-blocking `wasi:io/poll` and `wasi:io/streams` to `linker`.
pub fn add_to_linker<T: HasTable>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    poll::add_to_linker::<T, NonBlockingIo>(linker, view::<T>)?;
    streams::add_to_linker::<T, NonBlockingIo>(linker, view::<T>)?;
    Ok(())
}

/// Polls `fut` exactly once.
fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}

fn would_block() -> wasmtime::Error {
    wasmtime::Error::msg(WOULD_BLOCK)
}

impl poll::Host for NonBlocking<'_> {
    fn poll(&mut self, pollables: Vec<Resource<Pollable>>) -> wasmtime::Result<Vec<u32>> {
        poll_once(async_poll::Host::poll(self.0, pollables)).unwrap_or_else(|| Err(would_block()))
    }
}

impl poll::HostPollable for NonBlocking<'_> {
    fn ready(&mut self, pollable: Resource<Pollable>) -> wasmtime::Result<bool> {
        poll_once(async_poll::HostPollable::ready(self.0, pollable))
            .unwrap_or_else(|| Err(would_block()))
    }

    fn block(&mut self, pollable: Resource<Pollable>) -> wasmtime::Result<()> {
        poll_once(async_poll::HostPollable::block(self.0, pollable))
            .unwrap_or_else(|| Err(would_block()))
    }

    fn drop(&mut self, pollable: Resource<Pollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.0, pollable)
    }
}

impl streams::Host for NonBlocking<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        streams::Host::convert_stream_error(self.0, err)
    }
}

/// Runs a blocking stream operation once; waiting would stall the worker.
fn once<T>(fut: impl Future<Output = StreamResult<T>>) -> StreamResult<T> {
    poll_once(fut).unwrap_or_else(|| Err(StreamError::Trap(would_block())))
}

impl streams::HostOutputStream for NonBlocking<'_> {
    fn drop(&mut self, stream: Resource<OutputStream>) -> wasmtime::Result<()> {
        poll_once(AsyncOutput::drop(self.0, stream)).unwrap_or(Ok(()))
    }

    fn check_write(&mut self, stream: Resource<OutputStream>) -> StreamResult<u64> {
        streams::HostOutputStream::check_write(self.0, stream)
    }

    fn write(&mut self, stream: Resource<OutputStream>, bytes: Vec<u8>) -> StreamResult<()> {
        streams::HostOutputStream::write(self.0, stream, bytes)
    }

    fn blocking_write_and_flush(
        &mut self,
        stream: Resource<OutputStream>,
        bytes: Vec<u8>,
    ) -> StreamResult<()> {
        once(AsyncOutput::blocking_write_and_flush(self.0, stream, bytes))
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        stream: Resource<OutputStream>,
        len: u64,
    ) -> StreamResult<()> {
        once(AsyncOutput::blocking_write_zeroes_and_flush(
            self.0, stream, len,
        ))
    }

    fn subscribe(
        &mut self,
        stream: Resource<OutputStream>,
    ) -> wasmtime::Result<Resource<Pollable>> {
        streams::HostOutputStream::subscribe(self.0, stream)
    }

    fn write_zeroes(&mut self, stream: Resource<OutputStream>, len: u64) -> StreamResult<()> {
        streams::HostOutputStream::write_zeroes(self.0, stream, len)
    }

    fn flush(&mut self, stream: Resource<OutputStream>) -> StreamResult<()> {
        streams::HostOutputStream::flush(self.0, stream)
    }

    fn blocking_flush(&mut self, stream: Resource<OutputStream>) -> StreamResult<()> {
        once(AsyncOutput::blocking_flush(self.0, stream))
    }

    fn splice(
        &mut self,
        dst: Resource<OutputStream>,
        src: Resource<InputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        streams::HostOutputStream::splice(self.0, dst, src, len)
    }

    fn blocking_splice(
        &mut self,
        dst: Resource<OutputStream>,
        src: Resource<InputStream>,
        len: u64,
    ) -> StreamResult<u64> {
        once(AsyncOutput::blocking_splice(self.0, dst, src, len))
    }
}

impl streams::HostInputStream for NonBlocking<'_> {
    fn drop(&mut self, stream: Resource<InputStream>) -> wasmtime::Result<()> {
        poll_once(AsyncInput::drop(self.0, stream)).unwrap_or(Ok(()))
    }

    fn read(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<Vec<u8>> {
        streams::HostInputStream::read(self.0, stream, len)
    }

    fn blocking_read(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<Vec<u8>> {
        once(AsyncInput::blocking_read(self.0, stream, len))
    }

    fn skip(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<u64> {
        streams::HostInputStream::skip(self.0, stream, len)
    }

    fn blocking_skip(&mut self, stream: Resource<InputStream>, len: u64) -> StreamResult<u64> {
        once(AsyncInput::blocking_skip(self.0, stream, len))
    }

    fn subscribe(&mut self, stream: Resource<InputStream>) -> wasmtime::Result<Resource<Pollable>> {
        streams::HostInputStream::subscribe(self.0, stream)
    }
}
