//! `snow`: serves route modules — sandboxed WebAssembly components — over
//! HTTP/1.1.
//!
//! Map of the crate, in the order a request meets it:
//! - `cli`      — command line, turned into a `ServeConfig`;
//! - `server`   — listeners, worker threads, connections, parked requests;
//! - `http`     — pure HTTP/1.1: request heads, body framing, responses;
//! - `deploy`   — mount table, hot swap, file watching;
//! - `runtime`  — wasmtime engine, compile cache, sandbox, instances;
//! - `config`   — settings and their defaults;
//! - `manifest` — `snow.toml`: server settings and mounted modules;
//! - `metrics`  — counters and histograms for the admin API;
//! - `logging`  — tracing set-up;
//! - `fetch_cmd` — `snow fetch`: many URLs through the outbound client.

pub mod cli;
pub mod config;
pub mod deploy;
pub mod fetch_cmd;
pub mod http;
mod logging;
pub mod manifest;
pub mod metrics;
pub mod outbound;
pub mod runtime;
pub mod server;
