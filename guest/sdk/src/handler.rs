//! Lets `fn(Request) -> impl IntoResponse` and
//! `async fn(Request) -> impl IntoResponse` share one route table without
//! annotations: each kind gets its own blanket impl of `Handler<M>`, and the
//! marker `M` keeps the two impls apart while the compiler infers it from
//! whether the return type is a `Future`.

use std::future::Future;

use crate::{IntoResponse, Request};

pub(crate) use erased::{BoxFuture, Outcome};

/// Named by the blanket impls only; users never write it.
pub enum SyncMarker {}

/// Named by the blanket impls only; users never write it.
pub enum AsyncMarker {}

/// A route handler. Implemented for every fitting `fn` and `async fn`
/// (and closures); it cannot be implemented by hand.
pub trait Handler<M>: 'static {
    #[doc(hidden)]
    fn call(&self, req: Request) -> Outcome;

    /// Whether the handler reads the request body as it arrives, instead
    /// of receiving it whole.
    #[doc(hidden)]
    fn streams_body(&self) -> bool {
        false
    }
}

/// Named by the blanket impls only; users never write it.
pub enum StreamingMarker {}

/// A handler that reads its request body as it arrives; see
/// [`streaming`](crate::streaming).
pub struct Streaming<H>(H);

/// Marks `handler` as reading the request body as it arrives, with
/// [`Request::body_stream`](crate::Request::body_stream), instead of
/// receiving it whole. Its route is then bounded by the host's body limit
/// only, not by the route's [`max_body`](crate::Route::max_body): an
/// upload of any size streams through in constant memory.
pub fn streaming<M, H: Handler<M>>(handler: H) -> Streaming<H> {
    Streaming(handler)
}

impl<M, H: Handler<M>> Handler<(StreamingMarker, M)> for Streaming<H> {
    fn call(&self, req: Request) -> Outcome {
        self.0.call(req)
    }

    fn streams_body(&self) -> bool {
        true
    }
}

impl<F, R> Handler<(SyncMarker, R)> for F
where
    F: Fn(Request) -> R + 'static,
    R: IntoResponse,
{
    fn call(&self, req: Request) -> Outcome {
        Outcome::Ready(self(req).into_response())
    }
}

impl<F, Fut> Handler<(AsyncMarker, Fut)> for F
where
    F: Fn(Request) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: IntoResponse,
{
    fn call(&self, req: Request) -> Outcome {
        let future = self(req);
        Outcome::Pending(Box::pin(async move { future.await.into_response() }))
    }
}

/// Public in a private module so `Handler` can name it while nobody outside
/// can, which keeps `Handler` sealed.
mod erased {
    use std::{future::Future, pin::Pin};

    use crate::Response;

    pub type BoxFuture = Pin<Box<dyn Future<Output = Response>>>;

    /// What calling a handler gives: a plain handler's response, or an
    /// async handler's future, not yet polled.
    pub enum Outcome {
        Ready(Response),
        Pending(BoxFuture),
    }
}
