//! The integration tests, linked as one binary: each module drives the real
//! `snow` binary over sockets for one area, sharing the helpers in `common`.

mod common;

mod admin;
mod author;
mod cache;
mod cluster;
mod cpu_limit;
mod deploy;
mod faults;
mod fetch_cmd;
mod health;
mod http;
mod kv;
mod lifecycle;
mod limits;
mod manifest;
mod metrics;
mod module_files;
mod outbound;
mod relay;
mod routes;
mod sdk_wasi_http;
mod standard;
mod standard_streams;
mod streams;
mod tiers;
