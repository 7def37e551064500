use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Engines, EpochTicker, Tier};
use crate::config::{Compiler, Isolation, DEFAULT_MAX_STACK};
use crate::kv::Grants;
use crate::runtime::bindings::Request;
use crate::runtime::{ArtifactCache, GuestLimits, Instance, LoadedModule, TrapReason};

fn limits(isolation: Isolation) -> GuestLimits {
    GuestLimits {
        max_memory: 32 << 20,
        max_body: None,
        // 100 ms of epoch ticks.
        call_ticks: 10,
        isolation: Some(isolation),
        env: Vec::new(),
        allow_outbound: Default::default(),
        stores: Vec::new(),
    }
}

fn testkit() -> Vec<u8> {
    std::fs::read(snow_test_guests::TESTKIT).expect("the testkit module is built")
}

fn get(target: &str) -> Request {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    crate::runtime::wit::Line {
        method: "GET",
        path,
        full_path: target,
        query,
    }
    .bare()
}

/// A fresh cache directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("snow-tiers-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What the guest's trap on `path` was, and how long it took.
fn trap_of(module: Arc<LoadedModule>, path: &str) -> (TrapReason, Duration) {
    let mut instance = Instance::new(module).expect("an instance");
    let started = Instant::now();
    let Err(trap) = instance.handle(1, &get(path)) else {
        panic!("{path} answered instead of trapping");
    };
    (trap.kind, started.elapsed())
}

/// wasmtime 48 documents epoch interruption as unsupported with Winch;
/// its code generator does emit the checks, and Snow's CPU limit relies
/// on them, so this holds it to that. The memory and stack limits too.
#[test]
fn winch_builds_keep_the_cpu_and_memory_limits() {
    let engines = Engines::new(DEFAULT_MAX_STACK, None, Compiler::Winch).expect("engines");
    let _ticker = EpochTicker::start(&engines).expect("ticker");
    for isolation in [Isolation::Instance, Isolation::Request] {
        let module = LoadedModule::load(
            &engines,
            "testkit",
            &testkit(),
            None,
            limits(isolation),
            Grants::default(),
        )
        .expect("winch compiles testkit");
        assert_eq!(module.tier, Tier::Baseline);
        let (kind, took) = trap_of(module.clone(), "/loop/");
        assert_eq!(kind, TrapReason::CpuTime, "{isolation:?}");
        assert!(took < Duration::from_secs(5), "stopped after {took:?}");
        let (kind, _) = trap_of(module.clone(), "/alloc/?mb=64");
        assert_eq!(kind, TrapReason::Memory, "{isolation:?}");
        let (kind, _) = trap_of(module, "/recurse/");
        assert_eq!(kind, TrapReason::StackOverflow, "{isolation:?}");
    }
}

#[test]
fn tiered_serves_winch_until_cranelift_is_in_the_cache() {
    let scratch = Scratch::new("tiered");
    let cache = ArtifactCache::open(&scratch.0).expect("a cache");
    let engines = Engines::new(DEFAULT_MAX_STACK, None, Compiler::Tiered).expect("engines");
    let wasm = testkit();
    let load = || {
        LoadedModule::load(
            &engines,
            "testkit",
            &wasm,
            Some(&cache),
            limits(Isolation::Instance),
            Grants::default(),
        )
        .expect("testkit loads")
    };
    assert_eq!(load().tier, Tier::Baseline, "nothing cached yet");
    assert_eq!(load().tier, Tier::Baseline, "winch's build is not cached");
    let optimized = LoadedModule::load_optimized(
        &engines,
        "testkit",
        &wasm,
        Some(&cache),
        limits(Isolation::Instance),
        Grants::default(),
    )
    .expect("cranelift compiles testkit");
    assert_eq!(optimized.tier, Tier::Optimized);
    assert_eq!(
        load().tier,
        Tier::Optimized,
        "cranelift's build is cached now"
    );
}

#[test]
fn cranelift_alone_never_uses_winch() {
    let engines = Engines::new(DEFAULT_MAX_STACK, None, Compiler::Cranelift).expect("engines");
    let module = LoadedModule::load(
        &engines,
        "testkit",
        &testkit(),
        None,
        limits(Isolation::Instance),
        Grants::default(),
    )
    .expect("testkit loads");
    assert_eq!(module.tier, Tier::Optimized);
}

/// A component whose one core function uses relaxed SIMD, which Winch
/// does not implement: `f32x4.relaxed_madd` of three constants.
fn relaxed_simd_component() -> Vec<u8> {
    let mut body = vec![0x00]; // no locals
    for _ in 0..3 {
        body.extend([0xfd, 0x0c]); // v128.const
        body.extend([0u8; 16]);
    }
    body.extend([0xfd, 0x85, 0x02]); // f32x4.relaxed_madd (0x105)
    body.extend([0x1a, 0x0b]); // drop, end
    let mut code = vec![0x01, body.len() as u8];
    code.extend(body);
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.extend([0x01, 0x04, 0x01, 0x60, 0x00, 0x00]); // type: [] -> []
    module.extend([0x03, 0x02, 0x01, 0x00]); // one function of that type
    module.extend([0x0a, code.len() as u8]);
    module.extend(code);
    let mut component = b"\0asm\x0d\0\x01\0".to_vec();
    component.extend([0x01, module.len() as u8]); // a core module section
    component.extend(module);
    component
}

#[test]
fn a_module_winch_cannot_compile_waits_for_cranelift() {
    let wasm = relaxed_simd_component();
    let engines = Engines::new(DEFAULT_MAX_STACK, None, Compiler::Tiered).expect("engines");
    let (_, _, tier) = engines
        .compile(
            "simd",
            &wasm,
            None,
            &limits(Isolation::Instance),
            &Grants::default(),
        )
        .expect("cranelift compiles what winch cannot");
    assert_eq!(tier, Tier::Optimized);
    // Winch alone refuses it, with the reason.
    let winch = Engines::new(DEFAULT_MAX_STACK, None, Compiler::Winch).expect("engines");
    let refused = winch.compile(
        "simd",
        &wasm,
        None,
        &limits(Isolation::Instance),
        &Grants::default(),
    );
    let Err(err) = refused else {
        panic!("winch compiled relaxed simd");
    };
    assert!(format!("{err:#}").contains("SIMD"), "{err:#}");
}
