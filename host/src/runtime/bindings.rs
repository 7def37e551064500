//! Host-side bindings for the `snow:http` contract, re-exporting only what the
//! rest of the host uses.

wasmtime::component::bindgen!({
    world: "module",
    path: "../wit",
    imports: { default: trappable },
});

pub use snow::http::outbound::OutgoingRequest;
pub use snow::http::types::{
    BodyError, Completion, FetchError, FetchedHead, KeyPage, KvError, KvOutput, Poll, Request,
    Response, Route,
};
pub use Module as ModuleBindings;
pub use ModulePre as ModuleBindingsPre;

/// Operation ids as the contract defines them.
pub type OpId = u64;
/// Request ids as the contract defines them.
pub type RequestId = u64;
