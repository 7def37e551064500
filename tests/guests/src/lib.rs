//! Paths of the guest modules the integration tests load, built for
//! `wasm32-wasip2` by this crate's build script: one `pub const` per module
//! (`TESTKIT`, `FANOUT`, `VERSION_ONE`...). Only the host's tests depend on
//! it, so building snow itself does not compile these modules.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));
