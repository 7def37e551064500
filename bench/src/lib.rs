//! Pieces shared by the benchmark binaries: `hyper-baseline`, the native
//! server Snow is compared against, and the load tools `park-load`
//! (long requests), `hold-conns` (stalled and idle connections) and
//! `startup-time` (spawn to first line of output).

pub mod duration;
pub mod fd_limit;
pub mod response;
pub mod target;
