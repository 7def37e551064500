//! End-to-end tests of Snow route modules through the real `snow` binary.
//!
//! A module's own unit tests run its route table natively with
//! `snow_guest::testing::Client`. This crate is for the other half: start
//! `snow serve` with the module (or a manifest) on a free loopback port,
//! send it real HTTP/1.1, read its log and `/metrics`, deploy a new version
//! through the admin API, answer its outbound fetches from a fake upstream,
//! and stop it gracefully.
//!
//! ```no_run
//! use snow_testing::{build_module, Snow};
//!
//! # fn main() -> Result<(), snow_testing::Error> {
//! // Builds the crate under test for wasm32-wasip2 with `snow build`.
//! let wasm = build_module(env!("CARGO_MANIFEST_DIR"))?;
//! let server = Snow::module(&wasm).start()?;
//! let response = server.get("/home/");
//! assert_eq!((response.status, response.text()), (200, "home".to_string()));
//! assert!(server.stop()?.success());
//! # Ok(())
//! # }
//! ```
//!
//! The binary is `SNOW_BIN` when set, else `snow` on the `PATH`; see
//! [`binary`]. Tests of the Redis store start their own server with
//! [`Redis`].

#![deny(missing_docs)]

mod binary;
mod build;
mod error;
mod http;
mod redis;
mod server;
mod upstream;

pub use binary::{binary, BINARY_ENV};
pub use build::build_module;
pub use error::Error;
pub use http::{parse_all, read_chunks, read_header_lines, read_response, request, Response};
pub use redis::{Redis, REDIS_SERVER_ENV};
pub use server::{Admin, Server, Snow};
pub use upstream::{Upstream, UpstreamRequest};

/// How long helpers wait for something that should happen at once: a
/// sanity bound, never a measurement.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
