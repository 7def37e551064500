//! Loopback tests of the whole client against servers started in-process.

mod support;

mod failures;
mod keep_alive;
mod redirects;
mod responses;
mod tls;
