//! The WebAssembly side of the host: engine, cache, sandbox and instances.

pub mod background;
pub mod bindings;
pub mod cache;
mod call_clock;
pub mod engine;
mod guest_log;
pub mod instance;
mod limiter;
pub mod module;
mod preinit;
pub mod proxy;
mod proxy_outbound;
pub(crate) mod ready;
mod sandbox;
pub mod state;
mod trap;
mod wasi_nonblocking;
pub mod wit;
pub mod world;

pub use cache::ArtifactCache;
pub use engine::{new_engine, Engines, EpochTicker, Pool, Tier};
pub use instance::{Instance, Trap};
pub use module::{GuestLimits, LoadedModule};
pub use trap::TrapReason;
pub use world::World;
