//! `snow`: serves route modules — sandboxed WebAssembly components — over
//! HTTP/1.1.
//!
//! Map of the crate. Settings first:
//! - `cli`      — `snow serve`, `snow check`, `snow fetch`: flags, read into
//!   a layer of settings;
//! - `manifest` — `snow.toml`, read into the same layers plus the mounted
//!   modules;
//! - `config`   — the defaults, and `resolve(defaults, manifest, flags)`, the
//!   one step that merges them into the server's and each module's config.
//!
//! Then in the order a request meets it:
//! - `server`   — listener, worker threads; `conn` reads a request, calls the
//!   `Service` (mount → `Dispatcher`: guest call, parking, deadline, 5xx
//!   mapping) and writes the response; the admin API and the health
//!   listener; the drain on SIGTERM;
//! - `health`   — readiness: draining, and the checks `/readyz` runs;
//! - `http`     — HTTP/1.1: the one `Connection` type both listeners use, and
//!   the pure parsers under it (request heads, body framing, responses);
//! - `runtime`  — wasmtime engine, compile cache, sandbox, instances, the
//!   conversions between the contract's types and the host's;
//! - `outbound` — the HTTP client module fetches and `snow fetch` use, with
//!   the per-module allow-list;
//! - `deploy`   — mount table, hot swap, file watching;
//! - `metrics`  — counters and histograms for the admin API;
//! - `logging`  — tracing set-up and the access line;
//! - `fetch_cmd` — `snow fetch`: many URLs through the outbound client.

pub mod cli;
pub mod config;
pub mod deploy;
pub mod fetch_cmd;
pub mod health;
pub mod http;
pub mod kv;
mod logging;
pub mod manifest;
pub mod metrics;
pub mod outbound;
pub mod runtime;
pub mod server;
