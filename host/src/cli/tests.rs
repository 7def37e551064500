//! One test per setting: its default alone, the manifest alone, the flag
//! alone, and the flag over the manifest, through the real flag parser,
//! manifest parser and [`resolve`].

use std::fmt::Debug;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::Parser;

use super::{Cli, Command};
use crate::config::{resolve, Flags, Isolation, Settings};
use crate::manifest::Manifest;
use crate::outbound::AllowList;
use crate::runtime::GuestLimits;

const MODULE: &str = "[[module]]\nname = \"m\"\nprefix = \"/\"\nwasm = \"m.wasm\"\n";

fn serve_flags(flags: &[&str]) -> Flags {
    let args = ["snow", "serve", "snow.toml"].iter().chain(flags);
    match Cli::try_parse_from(args) {
        Ok(Cli {
            command: Command::Serve(args),
        }) => args.flags(),
        Ok(_) => panic!("not parsed as serve"),
        Err(err) => panic!("{flags:?}: {err}"),
    }
}

fn manifest(text: &str) -> Manifest {
    Manifest::parse(text, Path::new("snow.toml")).unwrap_or_else(|err| panic!("{err}"))
}

/// `server_toml` is a top-level line or a `[limits]` section, `None` for a
/// setting only the command line sets.
fn server_key<T: PartialEq + Debug>(
    server_toml: Option<&str>,
    flag: &[&str],
    get: fn(&Settings) -> T,
    [default, in_manifest, in_flag]: [T; 3],
) {
    let defaults = Settings::default();
    let none = Flags::default();
    let flags = serve_flags(flag);
    let plain = manifest(MODULE);
    assert_eq!(get(&resolve(&defaults, None, &none).settings), default);
    assert_eq!(
        get(&resolve(&defaults, Some(&plain), &none).settings),
        default
    );
    assert_eq!(get(&resolve(&defaults, None, &flags).settings), in_flag);
    assert_eq!(
        get(&resolve(&defaults, Some(&plain), &flags).settings),
        in_flag
    );
    if let Some(toml) = server_toml {
        let setting = manifest(&format!("{toml}\n{MODULE}"));
        let resolved = resolve(&defaults, Some(&setting), &none);
        assert_eq!(get(&resolved.settings), in_manifest, "manifest alone");
        let resolved = resolve(&defaults, Some(&setting), &flags);
        assert_eq!(get(&resolved.settings), in_flag, "flag over manifest");
    }
}

/// `module_toml` is a line of a `[[module]]`; flags apply to every module.
fn module_key<T: PartialEq + Debug>(
    module_toml: &str,
    flag: &[&str],
    get: fn(&GuestLimits) -> T,
    [default, in_manifest, in_flag]: [T; 3],
) {
    let defaults = Settings::default();
    let none = Flags::default();
    let flags = serve_flags(flag);
    let single = |flags: &Flags| {
        get(&resolve(&defaults, None, flags)
            .settings
            .module
            .limits(vec![]))
    };
    let each = |manifest: &Manifest, flags: &Flags| -> Vec<T> {
        let resolved = resolve(&defaults, Some(manifest), flags);
        resolved.modules.iter().map(|m| get(&m.limits)).collect()
    };
    assert_eq!(single(&none), default);
    assert_eq!(single(&flags), in_flag);
    let second = "[[module]]\nname = \"n\"\nprefix = \"/n\"\nwasm = \"n.wasm\"\n";
    let plain = manifest(&format!("{MODULE}{second}"));
    assert_eq!(
        each(&plain, &none),
        [default, get_again(&plain, &defaults, get)]
    );
    let setting = manifest(&format!("{MODULE}{module_toml}\n{second}"));
    let [first, other] = <[T; 2]>::try_from(each(&setting, &none)).expect("two modules");
    assert_eq!(first, in_manifest, "manifest alone");
    assert_eq!(
        other,
        get_again(&plain, &defaults, get),
        "other module untouched"
    );
    let all = each(&setting, &flags);
    assert!(
        all.iter().all(|v| *v == in_flag),
        "flag over manifest: {all:?}"
    );
}

/// The second module's value with no flags: the default.
fn get_again<T>(manifest: &Manifest, defaults: &Settings, get: fn(&GuestLimits) -> T) -> T {
    let resolved = resolve(defaults, Some(manifest), &Flags::default());
    get(&resolved.modules[1].limits)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("an address")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn listen() {
    let values = [
        addr("127.0.0.1:8012"),
        addr("0.0.0.0:9000"),
        addr("127.0.0.1:9100"),
    ];
    let toml = Some("listen = \"0.0.0.0:9000\"");
    server_key(
        toml,
        &["--listen", "127.0.0.1:9100"],
        |s| s.server.listen,
        values,
    );
}

#[test]
fn workers() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let toml = Some("workers = 3");
    server_key(
        toml,
        &["--workers", "5"],
        |s| s.server.workers,
        [cores, 3, 5],
    );
}

#[test]
fn busy_poll() {
    let us = Duration::from_micros;
    let toml = Some("busy_poll = \"40us\"");
    let values = [us(15), us(40), Duration::ZERO];
    server_key(toml, &["--busy-poll", "0s"], |s| s.server.busy_poll, values);
}

#[test]
fn admin() {
    let values = [
        Some(addr("127.0.0.1:8013")),
        None,
        Some(addr("127.0.0.1:9101")),
    ];
    let toml = Some("admin = \"off\"");
    server_key(
        toml,
        &["--admin", "127.0.0.1:9101"],
        |s| s.server.admin,
        values,
    );
    let toml = Some("admin = \"127.0.0.1:9102\"");
    let values = [
        Some(addr("127.0.0.1:8013")),
        Some(addr("127.0.0.1:9102")),
        None,
    ];
    server_key(toml, &["--admin", "off"], |s| s.server.admin, values);
}

#[test]
fn health() {
    let values = [
        None,
        Some(addr("0.0.0.0:8014")),
        Some(addr("127.0.0.1:9103")),
    ];
    let toml = Some("health = \"0.0.0.0:8014\"");
    server_key(
        toml,
        &["--health", "127.0.0.1:9103"],
        |s| s.server.health,
        values,
    );
    let values = [None, Some(addr("0.0.0.0:8014")), None];
    server_key(toml, &["--health", "off"], |s| s.server.health, values);
}

#[test]
fn drain_delay() {
    let toml = Some("[limits]\ndrain_delay = \"20s\"");
    server_key(
        toml,
        &["--drain-delay", "1m"],
        |s| s.server.drain_delay,
        [Duration::ZERO, secs(20), secs(60)],
    );
}

#[test]
fn max_body() {
    let toml = Some("[limits]\nmax_body = \"1MiB\"");
    let values = [10 << 20, 1 << 20, 2048];
    server_key(
        toml,
        &["--max-body", "2KiB"],
        |s| s.server.http.max_body,
        values,
    );
}

#[test]
fn header_timeout() {
    let toml = Some("[limits]\nheader_timeout = \"5s\"");
    let values = [secs(30), secs(5), secs(7)];
    server_key(
        toml,
        &["--header-timeout", "7s"],
        |s| s.server.header_timeout,
        values,
    );
}

#[test]
fn idle_timeout() {
    let toml = Some("[limits]\nidle_timeout = \"2m\"");
    let values = [secs(60), secs(120), secs(9)];
    server_key(
        toml,
        &["--idle-timeout", "9s"],
        |s| s.server.idle_timeout,
        values,
    );
}

#[test]
fn send_timeout() {
    let toml = Some("[limits]\nsend_timeout = \"20s\"");
    let values = [secs(10), secs(20), secs(2)];
    server_key(
        toml,
        &["--send-timeout", "2s"],
        |s| s.server.send_timeout,
        values,
    );
}

#[test]
fn request_timeout() {
    let toml = Some("[limits]\nrequest_timeout = \"10s\"");
    let values = [secs(30), secs(10), secs(70)];
    server_key(
        toml,
        &["--request-timeout", "70s"],
        |s| s.server.request_timeout,
        values,
    );
}

#[test]
fn grace() {
    let toml = Some("[limits]\ngrace = \"2s\"");
    server_key(
        toml,
        &["--grace", "1s"],
        |s| s.server.grace,
        [secs(30), secs(2), secs(1)],
    );
}

#[test]
fn max_parked() {
    let toml = Some("[limits]\nmax_parked = 100");
    let values = [16 * 1024, 100, 2];
    server_key(
        toml,
        &["--max-parked", "2"],
        |s| s.server.max_parked,
        values,
    );
}

#[test]
fn max_connections() {
    let toml = Some("[limits]\nmax_connections = 5000");
    let values = [100_000, 5000, 3];
    server_key(
        toml,
        &["--max-connections", "3"],
        |s| s.server.max_connections,
        values,
    );
}

#[test]
fn max_stack() {
    let toml = Some("[limits]\nmax_stack = \"512KiB\"");
    let values = [1 << 20, 512 << 10, 2 << 20];
    server_key(
        toml,
        &["--max-stack", "2MiB"],
        |s| s.engine.max_stack,
        values,
    );
}

#[test]
fn pool_size() {
    server_key(
        None,
        &["--pool-size", "7"],
        |s| s.engine.pool_size,
        [1000, 1000, 7],
    );
}

#[test]
fn isolation() {
    let toml = "isolation = \"request\"";
    let flag = ["--isolation", "instance"];
    let values = [None, Some(Isolation::Request), Some(Isolation::Instance)];
    module_key(toml, &flag, |l| l.isolation, values);
    let toml = "isolation = \"instance\"";
    let flag = ["--isolation", "request"];
    let values = [None, Some(Isolation::Instance), Some(Isolation::Request)];
    module_key(toml, &flag, |l| l.isolation, values);
}

#[test]
fn max_memory() {
    let toml = "max_memory = \"64MiB\"";
    let values = [128 << 20, 64 << 20, 32 << 20];
    module_key(toml, &["--max-memory", "32MiB"], |l| l.max_memory, values);
}

#[test]
fn max_call_time() {
    // In epoch ticks of 10 ms, one more than the limit.
    let toml = "max_call_time = \"5s\"";
    module_key(
        toml,
        &["--max-call-time", "50ms"],
        |l| l.call_ticks,
        [11, 501, 6],
    );
}

#[test]
fn allow_outbound() {
    let list = |rules: &[&str]| {
        AllowList::parse(&rules.iter().map(|r| r.to_string()).collect::<Vec<_>>())
            .expect("valid rules")
    };
    let toml = "allow_outbound = [\"https://a.example\"]";
    let flag = [
        "--allow-outbound",
        "http://b.example:8080",
        "--allow-outbound",
        "https://*.c.example",
    ];
    let values = [
        AllowList::default(),
        list(&["https://a.example"]),
        list(&["http://b.example:8080", "https://*.c.example"]),
    ];
    module_key(toml, &flag, |l| l.allow_outbound.clone(), values);
}

#[test]
fn out_of_range_numbers_are_refused_with_the_range() {
    for (flag, value, why) in [
        ("--workers", "0", "below the least allowed, 1"),
        ("--workers", "5000", "above the most allowed, 256"),
        ("--workers", "100000", "above the most allowed, 256"),
        ("--max-parked", "0", "below the least allowed, 1"),
        ("--max-connections", "0", "below the least allowed, 1"),
        ("--pool-size", "0", "below the least allowed, 1"),
        (
            "--pool-size",
            "4294967295",
            "above the most allowed, 100000",
        ),
        (
            "--max-call-time",
            "999999999999d",
            "above the most allowed, 1m",
        ),
        ("--max-call-time", "0s", "below the least allowed, 1ms"),
        ("--request-timeout", "400d", "above the most allowed, 1day"),
        ("--header-timeout", "0s", "below the least allowed, 1ms"),
        ("--idle-timeout", "0ms", "below the least allowed, 1ms"),
        ("--grace", "5h", "above the most allowed, 1h"),
        ("--drain-delay", "601s", "above the most allowed, 10m"),
        (
            "--drain-delay",
            "999999999999d",
            "above the most allowed, 10m",
        ),
        ("--max-body", "2TiB", "above the most allowed, 1TiB"),
        ("--max-memory", "5GiB", "above the most allowed, 4GiB"),
        ("--max-memory", "1KiB", "below the least allowed, 64KiB"),
        ("--max-stack", "1GiB", "above the most allowed, 64MiB"),
        ("--max-stack", "0", "below the least allowed, 64KiB"),
    ] {
        let args = ["snow", "serve", "snow.toml", flag, value];
        let err = match Cli::try_parse_from(args) {
            Ok(_) => panic!("{flag} {value} was accepted"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains(why), "{flag} {value}: {err}");
    }
    let flags = serve_flags(&["--workers", "256", "--grace", "0s", "--max-stack", "64MiB"]);
    let settings = resolve(&Settings::default(), None, &flags).settings;
    assert_eq!(settings.server.workers, 256);
    assert_eq!(settings.server.grace, std::time::Duration::ZERO);
    assert_eq!(settings.engine.max_stack, 64 << 20);
    assert_eq!(settings.server.worker_stack, (64 << 20) + (2 << 20));
}

#[test]
fn hostile_flag_values_are_refused_by_the_parser() {
    for flag in [
        ["--allow-outbound", "ftp://x"],
        ["--allow-outbound", "https://*."],
        ["--allow-outbound", "https://a.example:99999"],
        ["--allow-outbound", "http://[::1"],
        ["--allow-outbound", ""],
        ["--allow-outbound", "https://user@a.example"],
        ["--allow-outbound", "https://a.example/path"],
        ["--max-stack", "1.5MiB"],
        ["--max-stack", "-1"],
        ["--max-memory", "12 parsecs"],
        ["--max-call-time", "100"],
        ["--isolation", "process"],
        ["--busy-poll", "2ms"],
        ["--admin", "on"],
        ["--health", "on"],
        ["--health", ""],
        ["--health", "8014"],
        ["--health", "localhost:8014"],
        ["--health", "0.0.0.0:65536"],
        ["--drain-delay", "10"],
        ["--drain-delay", "-1s"],
        ["--drain-delay", "soon"],
        ["--drain-delay", ""],
        ["--max-body", "17179869184GiB"],
    ] {
        let args = ["snow", "serve", "snow.toml", flag[0], flag[1]];
        assert!(Cli::try_parse_from(args).is_err(), "{flag:?} was accepted");
    }
}

#[test]
fn check_takes_the_module_and_engine_flags() {
    let args = [
        "snow",
        "check",
        "m.wasm",
        "--max-stack",
        "2MiB",
        "--isolation",
        "request",
    ];
    let Ok(Cli {
        command: Command::Check(args),
    }) = Cli::try_parse_from(args)
    else {
        panic!("not parsed as check");
    };
    let settings = resolve(&Settings::default(), None, &args.flags()).settings;
    assert_eq!(settings.engine.max_stack, 2 << 20);
    assert_eq!(settings.module.isolation, Some(Isolation::Request));
}
