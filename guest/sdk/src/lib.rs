//! Snow guest SDK: write a route module as a regex route table of plain or
//! async handlers, and `app!` turns it into the `snow:http/handler` export.
//!
//! Modules:
//! - `alloc`: the module's allocator, a free list per size class.
//! - `app`: the `app!` macro and the glue it expands to.
//! - `body`: request bodies read on in chunks, response bodies written so.
//! - `bindings`: generated WIT glue; only `app!`, `boundary` and `host`
//!   touch it.
//! - `boundary`: moves WIT records into the SDK's own types and back.
//! - `combinators`: `join`, `join_all` and `race` for awaiting several ops.
//! - `completion`: what a finished host operation delivers.
//! - `error`: an error type that answers with a status and a message.
//! - `executor`: the per-instance task table behind handle/resume/cancel.
//! - `fetch`: outbound HTTP through the host's client.
//! - `groups`: the capture groups of the route a request matched.
//! - `handler`: accepts `fn` and `async fn` handlers in one table.
//! - `host`: host imports on wasm32, a recording fake elsewhere.
//! - `into_response`: what a handler may return.
//! - `kv`: key-value stores the host grants, as host operations.
//! - `methods`: the method lists a route accepts.
//! - `op`: the generic future for one host operation.
//! - `outbound`: an outbound request as the host takes it, and its errors.
//! - `query`: query-string parsing and percent-decoding.
//! - `request`: the request a handler receives.
//! - `response`: the response a handler builds; `response::relay` makes a
//!   relayed one where the host cannot (a `wasi:http` build, native tests).
//! - `router`: first-match regex routing with 404 and 405; whole bodies
//!   read before a handler, unless it is `streaming`.
//! - `sse`: server-sent events on a streamed response.
//! - `start_up`: compiles the routes and readies memory for a snapshot.
//! - `testing` (not on wasm32): drive handlers natively against the fake host.
//! - `time`: `sleep`, backed by host timers.
//! - `wasi_http` (feature `wasi-http`): the same module as a standard
//!   `wasi:http/proxy` component, its host operations on `wasi:io/poll`.
//!
//! Host operations (`sleep`, `fetch`, the `kv` store's) are futures: a handler awaits them in
//! turn, or several at once with `join`, `join_all` and `race`. A handler
//! that only passes an upstream's answer on returns `Response::relay`
//! instead, and the host makes the answer.
//!
//! The layers, each using only those before it: `bindings` ← `boundary`
//! (WIT ↔ the SDK's types, `completion` and `outbound` among them) ← `host`
//! ← `executor` ← `op` ← the operations `time` and `fetch`. `app` and
//! `testing` sit on top and drive the executor.

#![deny(missing_docs)]

pub mod alloc;
mod app;
#[cfg(not(feature = "wasi-http"))]
#[doc(hidden)]
pub mod bindings;
mod body;
#[cfg(not(feature = "wasi-http"))]
mod boundary;
mod combinators;
mod completion;
mod error;
mod executor;
mod fetch;
mod fields;
mod groups;
pub mod handler;
mod host;
#[cfg(feature = "wasi-http")]
#[doc(hidden)]
pub mod init_bindings;
mod into_response;
pub mod kv;
mod matcher;
mod methods;
mod op;
mod outbound;
mod pattern;
mod query;
mod request;
mod response;
mod router;
pub mod sse;
mod start_up;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod time;
// Natively its host operations give way to the fake host, so only the
// wasm32 build calls them.
#[cfg(feature = "wasi-http")]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod wasi_http;

pub use body::{BodyError, BodyStream, BodyWriter, Closed};
pub use combinators::{join, join_all, race, Either};
pub use error::Error;
pub use executor::{stats, Stats};
pub use fetch::{fetch, get, post_json, FetchRequest};
pub use handler::Handler;
pub use into_response::IntoResponse;
pub use methods::IntoMethods;
pub use outbound::FetchError;
pub use pattern::Pattern;
pub use request::{Header, Request};
pub use response::Response;
pub use router::{streaming, Route, Router, Streaming};
#[doc(hidden)]
pub use snow_guest_macros::pattern as __pattern;
pub use sse::{Event, EventWriter};
pub use time::sleep;

/// What `app!` expands to; not a stable API.
#[doc(hidden)]
pub mod __rt {
    #[cfg(not(feature = "wasi-http"))]
    pub use crate::app::{cancel, handle, resume, routes};
    pub use crate::start_up::start_up;
    #[cfg(feature = "wasi-http")]
    pub use crate::wasi_http::serve;
    #[cfg(feature = "wasi-http")]
    pub use wasip2;
}
