//! Pieces shared by the benchmark binaries: `hyper-baseline` and
//! `hyper-proxy`, the native server and proxy Snow is compared against, and
//! the load tools `park-load`
//! (long requests), `hold-conns` (stalled and idle connections),
//! `startup-time` (spawn to first line of output), `swap-time` (module change
//! to first response from the new version) and `swap-load` (throughput per
//! 100 ms window while modules are swapped).

pub mod duration;
pub mod errors_field;
pub mod fd_limit;
pub mod keep_alive;
pub mod native_server;
pub mod response;
pub mod stats;
pub mod target;
