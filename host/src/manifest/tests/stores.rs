//! `[[store]]` tables and module grants: what they resolve to, and what a
//! hostile or mistaken one reports.

use super::*;

fn store_and_module(store: &str, grants: &str) -> String {
    format!("[[store]]\n{store}\n\n{}", module_with(grants))
}

fn message(text: &str) -> String {
    error(text).to_string()
}

#[test]
fn without_stores_every_module_gets_the_default_memory_store() {
    let manifest = parse(&module_with("")).expect("valid");
    let resolved = resolve(&Settings::default(), Some(&manifest), &Flags::default());
    assert_eq!(resolved.settings.stores, [StoreConfig::default_memory()]);
    assert_eq!(resolved.modules[0].limits.stores, ["default"]);
    // Naming it is allowed, and so is opting out.
    let manifest = parse(&module_with("stores = []")).expect("valid");
    let resolved = resolve(&Settings::default(), Some(&manifest), &Flags::default());
    assert!(resolved.modules[0].limits.stores.is_empty());
}

#[test]
fn declared_stores_are_granted_explicitly() {
    let text = format!(
        "{}\n[[module]]\nname = \"other\"\nprefix = \"/o\"\nwasm = \"o.wasm\"\n",
        store_and_module("name = \"s\"\nbackend = \"memory\"", "stores = [\"s\"]")
    );
    let manifest = parse(&text).expect("valid");
    let resolved = resolve(&Settings::default(), Some(&manifest), &Flags::default());
    assert_eq!(resolved.settings.stores.len(), 1);
    assert_eq!(resolved.modules[0].limits.stores, ["s"]);
    // Deny by default once stores are declared: no implicit `default`.
    assert!(resolved.modules[1].limits.stores.is_empty());
}

#[test]
fn bad_store_tables_are_refused_with_their_key() {
    for (store, grants, expected) in [
        ("backend = \"memory\"", "", "store[0].name is missing"),
        ("name = \"s\"", "", "store[0].backend is missing"),
        (
            "name = \"s\"\nbackend = \"postgres\"",
            "",
            "not a store backend",
        ),
        (
            "name = \"../s\"\nbackend = \"memory\"",
            "",
            "not a store name",
        ),
        (
            "name = \"s\\n\"\nbackend = \"memory\"",
            "",
            "not a store name",
        ),
        (
            "name = \"s\"\nbackend = \"file\"",
            "",
            "store[0].path is missing",
        ),
        (
            "name = \"s\"\nbackend = \"redis\"",
            "",
            "store[0].url is missing",
        ),
        (
            "name = \"s\"\nbackend = \"memory\"\nurl = \"redis://h\"",
            "",
            "only redis stores take `url`",
        ),
        (
            "name = \"s\"\nbackend = \"redis\"\nurl = \"redis://h\"\nmax_bytes = \"1MiB\"",
            "",
            "only memory stores take `max_bytes`",
        ),
        (
            "name = \"s\"\nbackend = \"memory\"\npath = \"x\"",
            "",
            "only file stores take `path`",
        ),
        (
            "name = \"s\"\nbackend = \"redis\"\nurl = \"http://h\"",
            "",
            "starts with redis://",
        ),
        (
            "name = \"s\"\nbackend = \"redis\"\nurl = \"redis://h\"\nurl_env = \"X\"",
            "",
            "not both",
        ),
        (
            "name = \"s\"\nbackend = \"redis\"\nurl = \"redis://h\"\ntimeout = \"1h\"",
            "",
            "store[0].timeout",
        ),
        (
            "name = \"s\"\nbackend = \"memory\"\nmax_key_size = 0",
            "",
            "store[0].max_key_size",
        ),
        (
            "name = \"s\"\nbackend = \"memory\"\nmax_value_size = \"1TiB\"",
            "",
            "store[0].max_value_size",
        ),
        (
            "name = \"s\"\nbackend = \"memory\"\nmax_bytes = 10",
            "",
            "store[0].max_bytes",
        ),
        (
            "name = \"s\"\nbackend = \"memory\"\nttl = 5",
            "",
            "unknown key `ttl` in [[store]]",
        ),
        (
            "name = \"s\"\nbackend = \"memory\"",
            "stores = [\"t\"]",
            "no [[store]] is named `t`",
        ),
        (
            "name = \"s\"\nbackend = \"memory\"",
            "stores = [\"default\"]",
            "no [[store]] is named `default`",
        ),
        (
            "name = \"s\"\nbackend = \"memory\"",
            "stores = [\"s\", \"s\"]",
            "module[0].stores[1]",
        ),
        (
            "name = \"s\"\nbackend = \"memory\"",
            "stores = \"s\"",
            "an array of store names",
        ),
    ] {
        let text = store_and_module(store, grants);
        let got = message(&text);
        assert!(got.contains(expected), "{store:?} {grants:?}: {got}");
    }
}

#[test]
fn a_redis_url_with_a_password_is_never_repeated_in_errors() {
    let got = message(&store_and_module(
        "name = \"s\"\nbackend = \"redis\"\nurl = \"ftp://user:hunter2@h\"",
        "",
    ));
    assert!(!got.contains("hunter2"), "{got}");
}

#[test]
fn url_env_reads_the_server_environment() {
    let var = "SNOW_TEST_REDIS_URL_FOR_MANIFEST";
    let text = store_and_module(
        &format!("name = \"s\"\nbackend = \"redis\"\nurl_env = \"{var}\""),
        "",
    );
    // SAFETY: the variable is this test's own; no other test reads it.
    unsafe { std::env::remove_var(var) };
    assert!(message(&text).contains("is not set"));
    unsafe { std::env::set_var(var, "mysql://root:pw@h") };
    let got = message(&text);
    assert!(got.contains(var) && !got.contains("pw@"), "{got}");
    unsafe { std::env::set_var(var, "redis://10.0.0.5:6380/1") };
    let manifest = parse(&text).expect("valid");
    let stores = manifest.server.stores.expect("declared");
    assert_eq!(
        stores[0].backend,
        BackendConfig::Redis {
            url: "redis://10.0.0.5:6380/1".into(),
            key_prefix: "snow:s:".into(),
            timeout: crate::kv::config::DEFAULT_REDIS_TIMEOUT,
        }
    );
    unsafe { std::env::remove_var(var) };
}

#[test]
fn duplicate_store_names_are_refused() {
    let text = format!(
        "[[store]]\nname = \"s\"\nbackend = \"memory\"\n[[store]]\nname = \"s\"\nbackend = \"memory\"\n{}",
        module_with("")
    );
    assert!(message(&text).contains("store[1].name"));
}

#[test]
fn the_container_manifest_parses() {
    let var = "SNOW_REDIS_URL";
    let text = include_str!("../../../../deploy/snow.toml");
    // The image reads its Redis URL from the environment; any valid one
    // will do here. SAFETY: only this test sets this variable.
    let had = std::env::var_os(var);
    unsafe { std::env::set_var(var, "redis://redis.internal:6379/0") };
    let parsed = Manifest::parse(text, Path::new("/etc/snow/snow.toml"));
    match had {
        Some(value) => unsafe { std::env::set_var(var, value) },
        None => unsafe { std::env::remove_var(var) },
    }
    let manifest = parsed.unwrap_or_else(|err| panic!("deploy/snow.toml: {err}"));
    assert_eq!(
        manifest.modules[0].settings.stores,
        Some(vec!["default".into()])
    );
}
