//! What a valid manifest reads as; `errors` holds what an invalid one
//! reports.

mod errors;
mod stores;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::{self, resolve, Flags, Isolation, Settings};
use crate::kv::{BackendConfig, StoreConfig, StoreLimits};
use crate::outbound::AllowList;

const FULL: &str = r#"listen = "0.0.0.0:9000"
workers = 4
busy_poll = "40us"
sched_slice = "250us"
admin = "127.0.0.1:9001"
admin_token_file = "secrets/admin.token"
health = "0.0.0.0:9002"

[limits]
max_body = "1MiB"
header_timeout = "5s"
idle_timeout = "1m"
send_timeout = "3s"
stream_idle_timeout = "90s"
request_timeout = "10s"
grace = "2s"
drain_delay = "15s"
max_parked = 100
max_connections = 5000
max_stack = "512KiB"
max_store_ops = 50

[[store]]
name = "sessions"
backend = "redis"
url = "redis://:secret@127.0.0.1:6379/2"
key_prefix = "app:"
timeout = "250ms"
max_value_size = "64KiB"

[[store]]
name = "cache"
backend = "memory"
max_bytes = "16MiB"

[[store]]
name = "durable"
backend = "file"
path = "data/durable.redb"
max_key_size = 100

[[module]]
name = "hello"
prefix = "/"
wasm = "hello.wasm"
isolation = "request"
max_memory = "64MiB"
max_call_time = "250ms"
max_body = "4GiB"
watch = false
allow_outbound = [
    "https://api.example.com",
    "http://*.internal:8080",
    "HTTP://[::1]:3000",
]
stores = ["sessions", "cache"]

[module.env]
ZED = "last"
GREETING = "hello"
_private = ""

[[module]]
name = "api-v2"
prefix = "/api/v2"
wasm = "/srv/modules/api.wasm"
max_memory = 1048576
"#;

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, Path::new("deploy/snow.toml"))
}

fn error(text: &str) -> ManifestError {
    match parse(text) {
        Ok(manifest) => panic!("expected an error, parsed {manifest:?}"),
        Err(err) => err,
    }
}

/// A minimal manifest with `extra` added to its one module.
fn module_with(extra: &str) -> String {
    format!("[[module]]\nname = \"m\"\nprefix = \"/\"\nwasm = \"m.wasm\"\n{extra}")
}

fn rules(rules: &[&str]) -> AllowList {
    let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
    AllowList::parse(&rules).expect("valid rules")
}

#[test]
fn full_manifest_reads_every_key() {
    let manifest = parse(FULL).expect("valid manifest");
    assert_eq!(manifest.path, Path::new("deploy/snow.toml"));
    assert_eq!(
        manifest.server,
        ServerLayer {
            listen: Some("0.0.0.0:9000".parse().unwrap()),
            workers: Some(4),
            busy_poll: Some(Duration::from_micros(40)),
            sched_slice: Some(Duration::from_micros(250)),
            admin: Some(Some("127.0.0.1:9001".parse().unwrap())),
            admin_token_file: Some(PathBuf::from("deploy/secrets/admin.token")),
            health: Some(Some("0.0.0.0:9002".parse().unwrap())),
            max_body: Some(1 << 20),
            header_timeout: Some(Duration::from_secs(5)),
            idle_timeout: Some(Duration::from_secs(60)),
            send_timeout: Some(Duration::from_secs(3)),
            stream_idle_timeout: Some(Duration::from_secs(90)),
            request_timeout: Some(Duration::from_secs(10)),
            grace: Some(Duration::from_secs(2)),
            drain_delay: Some(Duration::from_secs(15)),
            max_parked: Some(100),
            max_connections: Some(5000),
            max_stack: Some(512 << 10),
            pool_size: None,
            compiler: None,
            max_store_ops: Some(50),
            stores: Some(vec![
                StoreConfig {
                    name: "sessions".into(),
                    backend: BackendConfig::Redis {
                        url: "redis://:secret@127.0.0.1:6379/2".into(),
                        key_prefix: "app:".into(),
                        timeout: Duration::from_millis(250),
                    },
                    limits: StoreLimits {
                        max_value: 64 << 10,
                        ..StoreLimits::default()
                    },
                },
                StoreConfig {
                    name: "cache".into(),
                    backend: BackendConfig::Memory,
                    limits: StoreLimits {
                        max_bytes: 16 << 20,
                        ..StoreLimits::default()
                    },
                },
                StoreConfig {
                    name: "durable".into(),
                    backend: BackendConfig::File {
                        path: PathBuf::from("deploy/data/durable.redb"),
                    },
                    limits: StoreLimits {
                        max_key: 100,
                        ..StoreLimits::default()
                    },
                },
            ]),
        }
    );
    let [hello, api] = &manifest.modules[..] else {
        panic!("expected two modules, got {:?}", manifest.modules);
    };
    assert_eq!(
        *hello,
        ModuleSpec {
            name: "hello".into(),
            prefix: "/".into(),
            wasm: PathBuf::from("deploy/hello.wasm"),
            watch: false,
            env: vec![
                ("GREETING".into(), "hello".into()),
                ("ZED".into(), "last".into()),
                ("_private".into(), String::new()),
            ],
            settings: ModuleLayer {
                isolation: Some(Isolation::Request),
                max_memory: Some(64 << 20),
                max_call_time: Some(Duration::from_millis(250)),
                max_body: Some(4 << 30),
                allow_outbound: Some(rules(&[
                    "https://api.example.com",
                    "http://*.internal:8080",
                    "http://[::1]:3000",
                ])),
                stores: Some(vec!["sessions".into(), "cache".into()]),
            },
        }
    );
    assert_eq!(api.name, "api-v2");
    assert_eq!(api.prefix, "/api/v2");
    assert_eq!(api.wasm, PathBuf::from("/srv/modules/api.wasm"));
    assert!(api.watch);
    assert_eq!(
        api.settings,
        ModuleLayer {
            max_memory: Some(1 << 20),
            ..ModuleLayer::default()
        }
    );
}

#[test]
fn minimal_manifest_leaves_settings_unset() {
    let text = "[[module]]\nname = \"hello\"\nprefix = \"/\"\nwasm = \"hello.wasm\"\n";
    let manifest = Manifest::parse(text, Path::new("snow.toml")).expect("valid manifest");
    assert_eq!(
        manifest,
        Manifest {
            path: PathBuf::from("snow.toml"),
            server: ServerLayer::default(),
            modules: vec![ModuleSpec {
                name: "hello".into(),
                prefix: "/".into(),
                wasm: PathBuf::from("hello.wasm"),
                watch: true,
                env: Vec::new(),
                settings: ModuleLayer::default(),
            }],
        }
    );
    let resolved = resolve(&Settings::default(), Some(&manifest), &Flags::default());
    let limits = &resolved.modules[0].limits;
    assert_eq!(limits.max_memory, config::DEFAULT_MAX_MEMORY);
    assert_eq!(limits.isolation, None);
    assert!(limits.allow_outbound.is_empty());
    assert_eq!(
        resolved.settings.engine.max_stack,
        config::DEFAULT_MAX_STACK
    );
}

#[test]
fn the_manifest_overrides_only_what_it_sets() {
    let defaults = Settings::default();
    let manifest = parse(FULL).expect("valid manifest");
    let config = resolve(&defaults, Some(&manifest), &Flags::default())
        .settings
        .server;
    assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(config.workers, 4);
    assert_eq!(config.admin, Some("127.0.0.1:9001".parse().unwrap()));
    assert_eq!(config.http.max_body, 1 << 20);
    assert_eq!(config.header_timeout, Duration::from_secs(5));
    assert_eq!(config.idle_timeout, Duration::from_secs(60));
    assert_eq!(config.request_timeout, Duration::from_secs(10));
    assert_eq!(config.grace, Duration::from_secs(2));
    assert_eq!(config.drain_delay, Duration::from_secs(15));
    assert_eq!(config.health, Some("0.0.0.0:9002".parse().unwrap()));
    assert_eq!(config.max_parked, 100);
    assert_eq!(config.max_connections, 5000);

    let minimal = parse(&module_with("")).expect("valid manifest");
    let config = resolve(&defaults, Some(&minimal), &Flags::default())
        .settings
        .server;
    assert_eq!(config.listen, defaults.server.listen);
    assert_eq!(config.admin, defaults.server.admin);
    assert_eq!(config.http.max_body, defaults.server.http.max_body);
    assert_eq!(config.request_timeout, config::DEFAULT_REQUEST_TIMEOUT);
    assert_eq!(config.max_connections, config::DEFAULT_MAX_CONNECTIONS);
    assert_eq!(config.health, None);
    assert_eq!(config.drain_delay, Duration::ZERO);
}

#[test]
fn admin_off_disables_the_admin_api() {
    let manifest = parse(&format!("admin = \"off\"\n{}", module_with(""))).expect("valid");
    assert_eq!(manifest.server.admin, Some(None));
    let resolved = resolve(&Settings::default(), Some(&manifest), &Flags::default());
    assert_eq!(resolved.settings.server.admin, None);
}

#[test]
fn health_is_an_address_or_off() {
    let manifest = parse(&format!("health = \"[::]:8014\"\n{}", module_with(""))).expect("valid");
    assert_eq!(
        manifest.server.health,
        Some(Some("[::]:8014".parse().unwrap()))
    );
    let manifest = parse(&format!("health = \"OFF\"\n{}", module_with(""))).expect("valid");
    assert_eq!(manifest.server.health, Some(None));
    let resolved = resolve(&Settings::default(), Some(&manifest), &Flags::default());
    assert_eq!(resolved.settings.server.health, None);
}

#[test]
fn the_admin_token_file_is_beside_the_manifest_and_a_flag_wins() {
    let text = format!(
        "admin_token_file = \"/etc/snow/token\"\n{}",
        module_with("")
    );
    let manifest = parse(&text).expect("valid");
    let resolved = resolve(&Settings::default(), Some(&manifest), &Flags::default());
    let server = resolved.settings.server;
    assert_eq!(
        server.admin_token_file,
        Some(PathBuf::from("/etc/snow/token"))
    );
    // Only the file is configured here; the token is read at start.
    assert_eq!(server.admin_token, None);
    let mut flags = Flags::default();
    flags.server.admin_token_file = Some(PathBuf::from("other"));
    let resolved = resolve(&Settings::default(), Some(&manifest), &flags);
    assert_eq!(
        resolved.settings.server.admin_token_file,
        Some(PathBuf::from("other"))
    );
    let err = error(&format!("admin_token_file = \"\"\n{}", module_with("")));
    assert!(
        err.to_string()
            .contains("admin_token_file: the path is empty"),
        "{err}"
    );
    // The token itself has no key: it does not belong in a manifest.
    let err = error(&format!(
        "admin_token = \"0123456789abcdef\"\n{}",
        module_with("")
    ));
    assert!(
        err.to_string().contains("unknown key `admin_token`"),
        "{err}"
    );
}

#[test]
fn outbound_rules_use_the_command_line_grammar() {
    let manifest = parse(&module_with(
        "allow_outbound = [\"https://api.example.com/\", \"http://[::1]:3000\"]\n",
    ))
    .expect("valid manifest");
    assert_eq!(
        manifest.modules[0].settings.allow_outbound,
        Some(rules(&["https://api.example.com/", "http://[::1]:3000"]))
    );
    let manifest = parse(&module_with("allow_outbound = []\n")).expect("valid manifest");
    assert_eq!(
        manifest.modules[0].settings.allow_outbound,
        Some(AllowList::default())
    );
}

#[test]
fn load_reads_the_file_and_reports_missing_ones() {
    let dir = std::env::temp_dir().join(format!("snow-manifest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("snow.toml");
    std::fs::write(&path, module_with("")).expect("write manifest");
    let manifest = Manifest::load(&path).expect("valid manifest");
    assert_eq!(manifest.modules[0].wasm, dir.join("m.wasm"));
    std::fs::remove_file(&path).expect("remove manifest");

    let err = Manifest::load(&path).expect_err("missing file");
    assert!(matches!(err, ManifestError::Read { .. }));
    assert_eq!(
        err.to_string(),
        format!("{}: cannot read the manifest", path.display())
    );
    let _ = std::fs::remove_dir(&dir);
}
