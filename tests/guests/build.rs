//! Builds every guest module the integration tests load and writes one
//! `pub const` per module with the path of its component.

use std::env;
use std::fmt::Write;
use std::fs;
use std::path::PathBuf;

/// Guest crates the tests load; a test module added to `guest/` needs an
/// entry here.
const GUESTS: &[&str] = &[
    "hello",
    "fanout",
    "counter",
    "testkit",
    "version-one",
    "version-two",
    "otherworld",
    "broken",
    "standard",
];

/// Guest crates the tests also load built with the SDK's `wasi-http`
/// feature, as standard `wasi:http/proxy` components: `NAME_WASI_HTTP`.
const WASI_HTTP_GUESTS: &[&str] = &["hello", "fanout"];

fn main() {
    snow_guest_build::rerun_if_changed(&["guest", "wit", "Cargo.lock"]);
    let built = snow_guest_build::build(GUESTS);
    let standard = snow_guest_build::build_wasi_http(WASI_HTTP_GUESTS);
    let names = GUESTS.iter().map(|name| name.to_string()).chain(
        WASI_HTTP_GUESTS
            .iter()
            .map(|name| format!("{name}-wasi-http")),
    );
    let mut consts = String::new();
    for (name, path) in names.zip(built.iter().chain(&standard)) {
        let path = path.to_str().expect("OUT_DIR is UTF-8");
        let ident = name.replace('-', "_").to_uppercase();
        writeln!(
            consts,
            "/// `{name}`, as a `wasm32-wasip2` component.\npub const {ident}: &str = {path:?};"
        )
        .expect("writing to a String");
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("set by cargo for build scripts"));
    fs::write(out.join("guests.rs"), consts).expect("writing guests.rs");
}
