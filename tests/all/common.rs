//! Shared by the integration tests: `snow-testing` starts this build's
//! `snow` binary; these helpers keep the tests' short forms on top of it.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};

pub use snow_testing::{
    parse_all, read_chunks, read_header_lines, read_response, Response, PATIENCE,
};

pub const TESTKIT: &str = snow_test_guests::TESTKIT;

/// Where `snow serve` reads the admin token from when no file is named.
pub const ADMIN_TOKEN_ENV: &str = "SNOW_ADMIN_TOKEN";

/// A `snow_testing::Server` of this build's binary, with a compile cache
/// under the target dir.
pub struct Server(snow_testing::Server);

impl Server {
    /// `snow serve` of the default app with extra arguments.
    pub fn start(args: &[&str]) -> Server {
        Self::start_module(None, args)
    }

    pub fn testkit(args: &[&str]) -> Server {
        Self::start_module(Some(TESTKIT), args)
    }

    pub fn start_module(module: Option<&str>, args: &[&str]) -> Server {
        Self::start_with(module, args, &[])
    }

    /// Like [`Server::start_module`], with `env` set for the process. A
    /// `SNOW_ADMIN_TOKEN` there is also what the admin helpers send.
    pub fn start_with(module: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Server {
        warm_cache();
        let snow = match module {
            Some(module) => snow_testing::Snow::module(module),
            None => snow_testing::Snow::default_app(),
        };
        let snow = env.iter().fold(
            snow.binary(env!("CARGO_BIN_EXE_snow"))
                .args(args.iter().copied())
                .env("SNOW_CACHE_DIR", cache_dir())
                .env_remove("RUST_BACKTRACE"),
            |snow, (name, value)| snow.env(name, value),
        );
        Server(snow.start().unwrap_or_else(|err| panic!("{err}")))
    }

    /// Sends `token` on admin requests from now on (a token from a file).
    pub fn with_admin_token(self, token: &str) -> Server {
        Server(self.0.with_admin_token(token))
    }

    /// One request to the admin API, with the token if there is one.
    pub fn admin_request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        self.0.admin().request(method, path, body)
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.0.wait_exit().unwrap_or_else(|err| panic!("{err}"))
    }
}

impl Deref for Server {
    type Target = snow_testing::Server;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// An empty directory for one test of one area, under the target dir.
pub fn scratch(area: &str, test: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(area)
        .join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Compiles the modules most tests serve with Cranelift into the shared
/// cache once, before the first server starts, as `snow check` does for a
/// host. On a cold cache each test's server would otherwise compile its
/// module twice (Winch's build, then Cranelift's), many at once. Cold
/// starts are what `tiers.rs` tests, on caches of their own.
fn warm_cache() {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        let modules = [
            snow_test_guests::HELLO,
            snow_test_guests::TESTKIT,
            snow_test_guests::FANOUT,
            snow_test_guests::COUNTER,
            snow_test_guests::VERSION_ONE,
            snow_test_guests::VERSION_TWO,
            snow_test_guests::HELLO_WASI_HTTP,
        ];
        let checks: Vec<_> = modules
            .iter()
            .map(|module| {
                std::process::Command::new(env!("CARGO_BIN_EXE_snow"))
                    .args(["check", module])
                    .env("SNOW_CACHE_DIR", cache_dir())
                    .env_remove("RUST_BACKTRACE")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("run snow check")
            })
            .collect();
        for (mut check, module) in checks.into_iter().zip(modules) {
            let status = check.wait().expect("snow check");
            assert!(status.success(), "snow check {module} failed");
        }
    });
}

fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("snow-cache")
}

/// One request to `addr` (the server or its admin API) on a fresh connection.
pub fn request_at(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    request_with(addr, method, path, &[], body)
}

/// Like [`request_at`], with extra header lines, values as raw bytes.
pub fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Response {
    snow_testing::request(addr, method, path, headers, body).unwrap_or_else(|err| panic!("{err}"))
}

/// A manifest in `test`'s directory mounting `wasm` as module `m` at `/`,
/// with `BROKEN=mode` in its environment.
pub fn broken_manifest(test: &str, mode: &str, wasm: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("routes-{test}"));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("snow.toml");
    let text = format!(
        "workers = 1\n[[module]]\nname = \"m\"\nprefix = \"/\"\nwasm = \"{wasm}\"\n\
         [module.env]\nBROKEN = \"{mode}\"\n"
    );
    std::fs::write(&path, text).expect("write manifest");
    path
}
