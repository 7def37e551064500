use std::sync::Arc;

use super::preinitialize;
use crate::config::{Isolation, DEFAULT_MAX_MEMORY, DEFAULT_MAX_STACK};
use crate::kv::Grants;
use crate::outbound::AllowList;
use crate::runtime::bindings::{Poll, Request};
use crate::runtime::{GuestLimits, Instance, LoadedModule};

const HELLO: &[u8] = include_bytes!(env!("SNOW_GUEST_HELLO"));

fn limits(isolation: Isolation, env: &[(&str, &str)]) -> GuestLimits {
    GuestLimits {
        max_memory: DEFAULT_MAX_MEMORY,
        max_body: None,
        call_ticks: 1,
        isolation: Some(isolation),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        allow_outbound: AllowList::default(),
        stores: Vec::new(),
    }
}

fn broken() -> Vec<u8> {
    std::fs::read(snow_test_guests::BROKEN).expect("the broken module is built")
}

fn get(path: &str) -> Request {
    crate::runtime::wit::Line {
        method: "GET",
        path,
        full_path: path,
        query: "",
    }
    .bare()
}

/// Status and body of `path` from a fresh instance of `module`.
fn answer(module: &Arc<LoadedModule>, path: &str) -> (u16, Vec<u8>) {
    let mut instance = Instance::new(module.clone()).expect("an instance");
    match instance.handle(1, &get(path)).expect("no trap") {
        (Poll::Ready(resp), _) => (resp.status, resp.body),
        (other, _) => panic!("{path} did not answer at once: {other:?}"),
    }
}

fn load(wasm: &[u8], isolation: Isolation, env: &[(&str, &str)]) -> Arc<LoadedModule> {
    let engine = crate::runtime::new_engine(DEFAULT_MAX_STACK, None).expect("an engine");
    LoadedModule::load(
        &crate::runtime::Engines::cranelift(engine),
        "m",
        wasm,
        None,
        limits(isolation, env),
        Grants::default(),
    )
    .expect("the module loads")
}

/// Why pre-initialising the broken module with `env` was refused.
fn refusal(env: &[(&str, &str)]) -> String {
    let err = preinitialize(
        "broken",
        &broken(),
        &limits(Isolation::Request, env),
        &Grants::default(),
    )
    .err()
    .expect("refused");
    format!("{err:#}")
}

#[test]
fn a_snapshot_answers_as_the_module_does() {
    let snapshot = preinitialize(
        "hello",
        HELLO,
        &limits(Isolation::Request, &[]),
        &Grants::default(),
    )
    .expect("hello pre-initialises");
    assert_ne!(snapshot.0, HELLO, "the snapshot carries the started state");
    let plain = load(HELLO, Isolation::Instance, &[]);
    let started = load(HELLO, Isolation::Request, &[]);
    for path in ["/home/", "/nowhere/"] {
        assert_eq!(answer(&started, path), answer(&plain, path), "{path}");
    }
}

#[test]
fn a_start_up_that_traps_is_not_snapshotted() {
    let why = refusal(&[]);
    assert!(why.contains("start-up"), "{why}");
}

#[test]
fn a_start_up_that_keeps_a_stream_open_is_not_snapshotted() {
    let env = [("BROKEN", "prints-at-start")];
    let why = refusal(&env);
    assert!(why.contains("host resource"), "{why}");
    // The host falls back to the module as it is, which still serves.
    let module = load(&broken(), Isolation::Request, &env);
    assert_eq!(answer(&module, "/"), (200, b"printed".to_vec()));
}

#[test]
fn a_start_up_that_never_returns_runs_out_of_fuel() {
    let env = [("BROKEN", "spins-at-start")];
    let started = std::time::Instant::now();
    let why = refusal(&env);
    assert!(why.contains("start-up"), "{why}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// A standard component built by the SDK exports `wizer-initialize`, which
/// builds its route table; its snapshot begins there.
#[test]
fn a_standard_component_with_an_initializer_is_snapshotted() {
    let wasm = std::fs::read(snow_test_guests::HELLO_WASI_HTTP).expect("built");
    assert!(
        crate::runtime::world::Exports::of(&wasm)
            .expect("parses")
            .initializer
    );
    let snapshot = preinitialize(
        "hello",
        &wasm,
        &limits(Isolation::Request, &[]),
        &Grants::default(),
    )
    .expect("the standard hello pre-initialises");
    assert_ne!(snapshot.0, wasm, "the snapshot carries the started state");
    assert_eq!(
        crate::runtime::World::of(&snapshot.0).expect("parses"),
        crate::runtime::World::Proxy,
        "still a wasi:http/proxy component"
    );
    assert!(
        crate::runtime::world::Exports::of(&snapshot.0)
            .expect("parses")
            .initializer
    );
    // One without an initializer is not: its start-up is unknown.
    let plain = std::fs::read(snow_test_guests::STANDARD).expect("built");
    assert!(
        !crate::runtime::world::Exports::of(&plain)
            .expect("parses")
            .initializer
    );
    let why = preinitialize(
        "standard",
        &plain,
        &limits(Isolation::Request, &[]),
        &Grants::default(),
    )
    .err()
    .expect("refused");
    assert!(
        format!("{why:#}").contains("no wizer-initialize export"),
        "{why:#}"
    );
}
