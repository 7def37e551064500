//! A module of the right world that traps as soon as it is asked for its
//! routes, or, with `BROKEN` set in its environment, lists routes a host
//! must refuse: `snow check` and deployments must refuse it either way.
//! Two more modes start in ways a pre-initialising host must not snapshot:
//! `prints-at-start` keeps its stdout stream open (and then serves), and
//! `spins-at-start` never returns from its start-up. `raw-headers` serves
//! header blocks no SDK would write, chosen by path, for the host to check.

use snow_guest::bindings::exports::snow::http::handler::Guest;
use snow_guest::bindings::snow::http::types::{Completion, Poll, Request, Response, Route};

// Only the wasm export glue names it; natively it is unused.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Broken;

impl Guest for Broken {
    fn handle(_: u64, req: Request) -> Poll {
        if mode().as_deref() == Ok("raw-headers") {
            let path = req.head.split(|&b| b == b'\n').nth(1).unwrap_or_default();
            return Poll::Ready(Response {
                status: 200,
                headers: raw_headers(path).to_vec(),
                body: b"raw".to_vec(),
            });
        }
        if mode().as_deref() == Ok("prints-at-start") {
            println!("serving");
            return Poll::Ready(Response {
                status: 200,
                headers: Vec::new(),
                body: b"printed".to_vec(),
            });
        }
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
        match mode().as_deref() {
            Ok("bad-regex") => vec![route("^/ok/$", &[]), route("^/(unclosed/$", &["GET"])],
            Ok("huge-regex") => vec![route("^(a{1000}){1000}$", &[])],
            Ok("many-routes") => (0..10_000)
                .map(|i| route(&format!("^/{i}/$"), &[]))
                .collect(),
            Ok("bad-method") => vec![route("^/$", &["GE T"])],
            Ok("prints-at-start") => {
                println!("starting");
                vec![route("^/$", &[])]
            }
            Ok("raw-headers") => vec![route("^/", &[])],
            Ok("spins-at-start") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => panic!("broken module: fails at start"),
        }
    }
}

/// The header block served at `path`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn raw_headers(path: &[u8]) -> &'static [u8] {
    match path {
        // Hand-written: CRLF, padding, no final line break.
        b"/lenient" => b"x-a: 1\r\nx-b:\t two \n\nx-c:3",
        b"/no-colon" => b"x-a: 1\nnot a field\n",
        b"/cr" => b"x-a: a\rset-cookie: admin=1\n",
        b"/nul" => b"x-a: a\0b\n",
        b"/bad-name" => b"bad name: v\n",
        b"/not-utf8" => b"x-\xff: v\n",
        b"/framing" => {
            b"content-length: 0\ntransfer-encoding: chunked\nconnection: close\nx-ok: 1\n"
        }
        _ => b"",
    }
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn mode() -> Result<String, std::env::VarError> {
    std::env::var("BROKEN")
}

#[cfg(target_arch = "wasm32")]
snow_guest::bindings::__export_module!(Broken with_types_in snow_guest::bindings);
