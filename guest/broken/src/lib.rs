//! A module of the right world that traps as soon as it is asked for its
//! routes, or, with `BROKEN` set in its environment, lists routes a host
//! must refuse: `snow check` and deployments must refuse it either way.

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
        let route = |pattern: &str, methods: &[&str]| Route {
            pattern: pattern.to_string(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
        };
        match std::env::var("BROKEN").as_deref() {
            Ok("bad-regex") => vec![route("^/ok/$", &[]), route("^/(unclosed/$", &["GET"])],
            Ok("huge-regex") => vec![route("^(a{1000}){1000}$", &[])],
            Ok("many-routes") => (0..10_000)
                .map(|i| route(&format!("^/{i}/$"), &[]))
                .collect(),
            Ok("bad-method") => vec![route("^/$", &["GE T"])],
            _ => panic!("broken module: fails at start"),
        }
    }
}

#[cfg(target_arch = "wasm32")]
snow_guest::bindings::__export_module!(Broken with_types_in snow_guest::bindings);
