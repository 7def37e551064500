//! A module of the right world that traps as soon as it is asked for its
//! routes: `snow check` and deployments must refuse it.

use snow_guest::bindings::exports::snow::http::handler::Guest;
use snow_guest::bindings::snow::http::types::{Completion, Poll, Request, Route};

// Only the wasm export glue names it; natively it is unused.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Broken;

impl Guest for Broken {
    fn handle(_: u64, _: Request) -> Poll {
        panic!("broken module")
    }

    fn resume(_: u64, _: u64, _: Completion) -> Poll {
        panic!("broken module")
    }

    fn cancel(_: u64) {}

    fn routes() -> Vec<Route> {
        panic!("broken module: fails at start")
    }
}

#[cfg(target_arch = "wasm32")]
snow_guest::bindings::__export_module!(Broken with_types_in snow_guest::bindings);
