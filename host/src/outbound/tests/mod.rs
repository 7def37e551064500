//! Loopback tests of the whole client against servers started in-process.

mod support;

mod addresses;
mod failures;
mod hostile;
mod http2;
mod keep_alive;
mod plain;
mod proxy;
mod redirects;
mod responses;
mod tls;
