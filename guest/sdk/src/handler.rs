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
