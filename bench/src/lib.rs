//! Pieces shared by the benchmark binaries: `hyper-baseline`, the native
//! server Snow is compared against, and `park-load`, the long-request driver.

pub mod fd_limit;
