//! What an invalid manifest reports, and where.

use super::*;

#[test]
fn unknown_keys_are_named_with_their_table_and_line() {
    let err = error("listen = \"127.0.0.1:1\"\nlisten_addr = \"x\"\n");
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:2:1: unknown key `listen_addr` in the top-level table \
         (expected one of listen, workers, busy_poll, sched_slice, admin, admin_token_file, health, \
         limits, store, \
         module)"
    );

    let err = error(&format!("[limits]\nmax_bodyy = 1\n{}", module_with("")));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:2:1: unknown key `max_bodyy` in [limits] (expected one of \
         max_body, header_timeout, idle_timeout, send_timeout, stream_idle_timeout, \
         request_timeout, grace, \
         drain_delay, max_parked, max_connections, max_stack, max_store_ops)"
    );

    let err = error(&module_with("\n\nprefixx = \"/a\"\n"));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:7:1: unknown key `prefixx` in [[module]] (expected one of name, \
         prefix, wasm, isolation, max_memory, max_call_time, max_body, max_stack, \
         watch, \
         allow_outbound, stores, env)"
    );
}

#[test]
fn syntax_and_shape_errors_point_at_the_line() {
    let err = error("listen = \n");
    assert!(
        matches!(err, ManifestError::Syntax { line: 1, .. }),
        "{err}"
    );

    let err = error("workers = 1\nworkers = 2\n");
    assert!(
        matches!(err, ManifestError::Syntax { line: 2, .. }),
        "{err}"
    );

    let err = error("workers = 1\n\n[module]\nname = \"a\"\n");
    assert!(
        matches!(err, ManifestError::Syntax { line: 3, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("an array of [[module]] tables"),
        "{err}"
    );

    let err = error("workers = 1\nlimits = 5\n");
    assert!(
        matches!(err, ManifestError::Syntax { line: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("a [limits] table"), "{err}");

    let err = error(&module_with("\nallow_outbound = \"https://a.example\"\n"));
    assert!(
        matches!(err, ManifestError::Syntax { line: 6, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("an array of strings"), "{err}");

    let err = error(&format!("limits = 1979-05-27\n{}", module_with("")));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:1:10: a date or time is not valid here"
    );

    let err = error(&module_with("env = 1979-05-27\n"));
    assert!(
        matches!(err, ManifestError::Syntax { line: 5, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("a date or time is not valid here"),
        "{err}"
    );

    let err = error(&module_with("env = \"A=1\"\n"));
    assert!(
        matches!(err, ManifestError::Syntax { line: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("[module.env]"), "{err}");
}

#[test]
fn bad_sizes_name_the_key_and_value_line() {
    let err = error(&module_with("\n\n\n\n\n\n\nmax_memory = \"12 parsecs\"\n"));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:12:14: module[0].max_memory: `12 parsecs` is not a size like \
         10MiB (unknown unit `parsecs`; use KiB, MiB or GiB)"
    );

    let err = error(&format!("[limits]\nmax_stack = -1\n{}", module_with("")));
    assert_eq!(err.line(), Some(2));
    assert!(err.to_string().contains("limits.max_stack"), "{err}");

    let err = error(&format!("[limits]\nmax_stack = true\n{}", module_with("")));
    assert!(
        err.to_string()
            .ends_with("limits.max_stack: expected a size like \"128MiB\", found a boolean"),
        "{err}"
    );

    let err = error(&format!(
        "[limits]\nmax_body = \"lots\"\n{}",
        module_with("")
    ));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:2:12: limits.max_body: `lots` is not a size like 10MiB"
    );
}

#[test]
fn bad_durations_name_the_key_and_value_line() {
    let second = "[[module]]\nname = \"b\"\nprefix = \"/b\"\nwasm = \"b.wasm\"\n\
                  max_call_time = \"fast\"\n";
    let err = error(&format!("{}{second}", module_with("")));
    assert_eq!(err.line(), Some(9));
    assert!(
        err.to_string().starts_with(
            "deploy/snow.toml:9:17: module[1].max_call_time: `fast` is not a duration"
        ),
        "{err}"
    );

    let err = error(&format!("[limits]\n\ngrace = 30\n{}", module_with("")));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:3:9: limits.grace: `30` has no unit; write a duration like \
         \"30s\" or \"30ms\""
    );

    for key in ["header_timeout", "idle_timeout", "request_timeout"] {
        let err = error(&format!("[limits]\n{key} = \"soon\"\n{}", module_with("")));
        assert_eq!(err.line(), Some(2), "{err}");
        assert!(err.to_string().contains(&format!("limits.{key}:")), "{err}");
    }

    let err = error(&format!(
        "[limits]\nsend_timeout = \"0s\"\n{}",
        module_with("")
    ));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:2:16: limits.send_timeout: `0s` is below the least allowed, 1ms"
    );
    let err = error(&format!(
        "[limits]\nsend_timeout = \"9999h\"\n{}",
        module_with("")
    ));
    assert!(
        err.to_string().contains("is above the most allowed, 1h"),
        "{err}"
    );

    let err = error(&format!("busy_poll = \"2ms\"\n{}", module_with("")));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:1:13: busy_poll: `2ms` is longer than 1ms, past which polling \
         only burns CPU"
    );
    let err = error(&format!("busy_poll = \"often\"\n{}", module_with("")));
    assert!(
        err.to_string()
            .starts_with("deploy/snow.toml:1:13: busy_poll: `often` is not a duration"),
        "{err}"
    );
    let manifest = parse(&format!("busy_poll = \"0s\"\n{}", module_with(""))).expect("valid");
    assert_eq!(manifest.server.busy_poll, Some(Duration::ZERO));

    for (hostile, why) in [
        ("\"50us\"", "is outside 100µs..=100ms"),
        ("\"1h\"", "is outside 100µs..=100ms"),
        ("\"soon\"", "is not a duration"),
        ("100", "expected a string"),
    ] {
        let err = error(&format!("sched_slice = {hostile}\n{}", module_with("")));
        assert!(
            err.to_string()
                .starts_with("deploy/snow.toml:1:15: sched_slice: ")
                && err.to_string().contains(why),
            "{hostile}: {err}"
        );
    }
    let manifest = parse(&format!("sched_slice = \"0s\"\n{}", module_with(""))).expect("valid");
    assert_eq!(manifest.server.sched_slice, Some(Duration::ZERO));
}

#[test]
fn bad_addresses_and_counts_name_the_key() {
    let err = error(&format!("listen = \"localhost\"\n{}", module_with("")));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:1:10: listen: `localhost` is not an address like 127.0.0.1:8012"
    );

    let err = error(&format!("workers = 1\nadmin = \"on\"\n{}", module_with("")));
    assert_eq!(err.line(), Some(2));
    assert!(
        err.to_string().contains("admin: `on` is not an address"),
        "{err}"
    );

    let err = error(&format!("listen = 8012\n{}", module_with("")));
    assert!(
        err.to_string()
            .ends_with("listen: expected a string, found an integer"),
        "{err}"
    );

    let err = error(&format!("\nworkers = 0\n{}", module_with("")));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:2:11: workers: `0` is not a whole number above 0"
    );

    let err = error(&format!("workers = \"2\"\n{}", module_with("")));
    assert!(err.to_string().ends_with("found a string"), "{err}");

    let text = format!(
        "[limits]\nmax_parked = 1\nmax_connections = -3\n{}",
        module_with("")
    );
    let err = error(&text);
    assert_eq!(err.line(), Some(3));
    assert!(err.to_string().contains("limits.max_connections"), "{err}");
}

#[test]
fn bad_isolation_and_watch_name_the_key() {
    let err = error(&module_with("isolation = \"process\"\n"));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:5:13: module[0].isolation: `process` is not an isolation mode \
         (expected instance or request)"
    );

    let err = error(&module_with("watch = \"yes\"\n"));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:5:9: module[0].watch: expected true or false, found a string"
    );
}

#[test]
fn module_names_must_be_lowercase_words() {
    for bad in ["\"Hello\"", "\"\"", "\"a b\"", "\"a/b\"", "3"] {
        let text = format!("[[module]]\nprefix = \"/\"\nwasm = \"m.wasm\"\nname = {bad}\n");
        let err = error(&text);
        assert_eq!(err.line(), Some(4), "{err}");
        assert!(err.to_string().contains("module[0].name"), "{err}");
    }
    let err = error("[[module]]\nname = \"Hello\"\nprefix = \"/\"\nwasm = \"m.wasm\"\n");
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:2:8: module[0].name: `Hello` is not a module name: use a-z, 0-9, \
         `_` and `-`"
    );
    assert!(parse("[[module]]\nname = \"a_b-9\"\nprefix = \"/\"\nwasm = \"m\"\n").is_ok());
}

#[test]
fn prefixes_must_be_paths() {
    for bad in [
        "\"api\"",
        "\"/a b\"",
        "\"/a?b\"",
        "\"/a#b\"",
        "\"/caf\u{e9}\"",
        "\"\"",
    ] {
        let text = format!("[[module]]\nname = \"m\"\nwasm = \"m.wasm\"\n\nprefix = {bad}\n");
        let err = error(&text);
        assert_eq!(err.line(), Some(5), "{err}");
        assert!(err.to_string().contains("module[0].prefix"), "{err}");
    }
    let err = error("[[module]]\nname = \"m\"\nprefix = \"api\"\nwasm = \"m.wasm\"\n");
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:3:10: module[0].prefix: `api` does not start with `/`"
    );
}

#[test]
fn prefixes_must_be_normal_paths() {
    for (bad, why) in [
        ("/a/", "ends with `/`; write `/a`"),
        ("//", "ends with `/`; write `/`"),
        ("/a/../b", "has a `..` segment"),
        ("/a/./b", "has a `.` segment"),
        ("/..", "has a `..` segment"),
        ("/a/%2E%2e/b", "has a `%2E%2e` segment"),
        ("/a//b", "empty segment"),
    ] {
        let text = format!("[[module]]\nname = \"m\"\nwasm = \"m.wasm\"\nprefix = \"{bad}\"\n");
        let err = error(&text).to_string();
        assert!(err.contains("module[0].prefix"), "{bad}: {err}");
        assert!(err.contains(why), "{bad}: {err}");
    }
    for good in ["/", "/a", "/a/b", "/a.b/..c", "/%2e%2ex"] {
        let text = format!("[[module]]\nname = \"m\"\nwasm = \"m.wasm\"\nprefix = \"{good}\"\n");
        assert!(parse(&text).is_ok(), "{good}");
    }
}

#[test]
fn numeric_settings_are_bounded() {
    for (line, key, why) in [
        ("workers = 100000", "workers", "above the most allowed, 256"),
        ("workers = 0", "workers", "not a whole number above 0"),
        (
            "[limits]\nmax_connections = 0",
            "limits.max_connections",
            "above 0",
        ),
        (
            "[limits]\nrequest_timeout = \"999999999999d\"",
            "limits.request_timeout",
            "above the most allowed, 1day",
        ),
        (
            "[limits]\nidle_timeout = \"0s\"",
            "limits.idle_timeout",
            "below the least allowed, 1ms",
        ),
        (
            "[limits]\ngrace = \"2h\"",
            "limits.grace",
            "above the most allowed, 1h",
        ),
        (
            "[limits]\ndrain_delay = \"11m\"",
            "limits.drain_delay",
            "above the most allowed, 10m (a rolling restart waits this long on every host)",
        ),
        (
            "[limits]\nmax_body = \"2TiB\"",
            "limits.max_body",
            "above the most allowed, 1TiB",
        ),
        (
            "[limits]\nmax_stack = \"1KiB\"",
            "limits.max_stack",
            "below the least allowed, 64KiB",
        ),
        (
            "[limits]\nmax_stack = \"1GiB\"",
            "limits.max_stack",
            "above the most allowed, 64MiB",
        ),
        (
            "[limits]\nmax_parked = 99999999999",
            "limits.max_parked",
            "above the most allowed",
        ),
    ] {
        let err = error(&format!("{line}\n{}", module_with(""))).to_string();
        assert!(err.contains(&format!(": {key}: ")), "{line}: {err}");
        assert!(err.contains(why), "{line}: {err}");
    }
    for (extra, key, why) in [
        (
            "max_call_time = \"999999999999d\"",
            "max_call_time",
            "above the most allowed, 1m",
        ),
        (
            "max_call_time = \"0ms\"",
            "max_call_time",
            "below the least allowed, 1ms",
        ),
        (
            "max_memory = \"8GiB\"",
            "max_memory",
            "above the most allowed, 4GiB",
        ),
        (
            "max_memory = 1",
            "max_memory",
            "below the least allowed, 64KiB",
        ),
        (
            "max_body = \"2TiB\"",
            "max_body",
            "above the most allowed, 1TiB",
        ),
        ("max_body = -1", "max_body", "size"),
        ("max_body = \"lots\"", "max_body", "not a size"),
    ] {
        let err = error(&module_with(extra)).to_string();
        assert!(
            err.contains(&format!("module[0].{key}: ")),
            "{extra}: {err}"
        );
        assert!(err.contains(why), "{extra}: {err}");
    }
}

#[test]
fn wasm_must_be_a_nonempty_string() {
    let err = error("[[module]]\nname = \"m\"\nprefix = \"/\"\nwasm = \"\"\n");
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:4:8: module[0].wasm: the path is empty"
    );
    let err = error("[[module]]\nname = \"m\"\nprefix = \"/\"\nwasm = [\"m.wasm\"]\n");
    assert_eq!(err.line(), Some(4));
}

#[test]
fn required_keys_are_reported_at_the_module_header() {
    let text = format!(
        "{}\n[[module]]\nname = \"b\"\nwasm = \"b.wasm\"\n",
        module_with("")
    );
    let err = error(&text);
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:6:1: module[1].prefix is missing (every [[module]] needs name, \
         prefix and wasm)"
    );
    for key in ["name", "prefix", "wasm"] {
        let lines: String = ["name = \"m\"\n", "prefix = \"/\"\n", "wasm = \"m.wasm\"\n"]
            .iter()
            .filter(|line| !line.starts_with(key))
            .copied()
            .collect();
        let err = error(&format!("workers = 1\n[[module]]\n{lines}"));
        assert!(
            matches!(&err, ManifestError::Missing { line: 2, column: 1, key: k, .. }
                if *k == format!("module[0].{key}")),
            "{err}"
        );
    }
}

#[test]
fn at_least_one_module_is_required() {
    let err = error("listen = \"127.0.0.1:8012\"\n");
    assert!(matches!(err, ManifestError::NoModules { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml: no [[module]] table; at least one module is required"
    );
    assert_eq!(err.line(), None);

    let err = error("workers = 1\nmodule = []\n");
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:2:10: module: at least one [[module]] is required"
    );

    assert!(matches!(error(""), ManifestError::NoModules { .. }));
}

#[test]
fn duplicate_names_and_prefixes_name_both_lines() {
    let text = "[[module]]\nname = \"a\"\nprefix = \"/a\"\nwasm = \"a.wasm\"\n\n\
                [[module]]\nname = \"b\"\nprefix = \"/a\"\nwasm = \"b.wasm\"\n\n\
                [[module]]\nname = \"a\"\nprefix = \"/c\"\nwasm = \"c.wasm\"\n";
    let err = error(text);
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:8:10: module[1].prefix: `/a` is already used at line 3"
    );

    let text = text.replacen(
        "prefix = \"/a\"\nwasm = \"b",
        "prefix = \"/b\"\nwasm = \"b",
        1,
    );
    let err = error(&text);
    assert!(
        matches!(
            &err,
            ManifestError::Duplicate { line: 12, column: 8, first_line: 2, key, value, .. }
                if key == "module[2].name" && value == "a"
        ),
        "{err}"
    );
}

#[test]
fn outbound_rules_are_validated_per_entry() {
    let err = error(&module_with(
        "allow_outbound = [\n  \"https://ok.example\",\n  \"ftp//nope\",\n]\n",
    ));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:7:3: module[0].allow_outbound[1]: `ftp//nope` is not an origin \
         like https://api.example.com[:port]"
    );

    let err = error(&module_with(
        "allow_outbound = [\"https://a.example\", 443]\n",
    ));
    assert_eq!(err.line(), Some(5));
    assert!(
        err.to_string()
            .contains("module[0].allow_outbound[1]: expected a string, found an integer"),
        "{err}"
    );
}

#[test]
fn env_names_and_values_are_checked() {
    let err = error(&module_with(
        "[module.env]\nGOOD = \"x\"\n\"1BAD\" = \"y\"\n",
    ));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:7:1: module[0].env.1BAD: `1BAD` is not an environment variable \
         name: use A-Z, a-z, 0-9 and `_`, not starting with a digit"
    );

    let err = error(&module_with("[module.env]\n\"A-B\" = \"x\"\n"));
    assert_eq!(err.line(), Some(6));

    let err = error(&module_with("[module.env]\nPORT = 8080\n"));
    assert_eq!(
        err.to_string(),
        "deploy/snow.toml:6:8: module[0].env.PORT: expected a string, found an integer; \
         quote it"
    );

    let manifest = parse(&module_with("env = { B = \"2\", A = \"1\" }\n")).expect("valid");
    assert_eq!(
        manifest.modules[0].env,
        [
            ("A".to_string(), "1".to_string()),
            ("B".to_string(), "2".to_string())
        ]
    );
}

#[test]
fn the_first_error_in_the_file_wins() {
    // `name` is checked before `max_stack`, but comes later in the file.
    let text = "[[module]]\nprefix = \"/\"\nwasm = \"m\"\nmax_stack = true\nname = \"BAD\"\n";
    assert_eq!(error(text).line(), Some(4));
    let text = "[[module]]\nname = \"BAD\"\nprefix = \"/\"\nwasm = \"m\"\n[module.env]\nX = 1\n";
    assert_eq!(error(text).line(), Some(2));
}

#[test]
fn positions_count_characters_not_bytes() {
    let err = error(&module_with("[module.env]\nA = \"é\"\nB = 1\n"));
    assert_eq!(err.line(), Some(7));
    let text = format!("# héllo wörld\n{}", module_with("watch = \"é\" # ü\n"));
    match error(&text) {
        ManifestError::Invalid { line, column, .. } => assert_eq!((line, column), (6, 9)),
        err => panic!("unexpected {err}"),
    }
    let text = format!("# ü\n{}", module_with("[module.env]\n\"é\" = \"x\"\n"));
    match error(&text) {
        ManifestError::Invalid { line, column, .. } => assert_eq!((line, column), (7, 1)),
        err => panic!("unexpected {err}"),
    }
}

#[test]
fn a_module_max_stack_points_to_the_server_setting() {
    for value in ["\"512KiB\"", "-1", "true"] {
        let err = error(&module_with(&format!("max_stack = {value}\n")));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:5:13: module[0].max_stack: the wasm stack is one setting for the \
             whole server, not per module; set max_stack in [limits] (or --max-stack)"
        );
    }
}

#[test]
fn hostile_outbound_rules_are_refused_where_they_stand() {
    for rule in [
        "",
        "ftp://x",
        "https://*.",
        "https://a.example:99999",
        "http://[::1",
        "https://user@a.example",
        "https://a.example/v1",
    ] {
        let text = module_with(&format!(
            "allow_outbound = [\n  \"https://ok.example\",\n  \"{rule}\",\n]\n"
        ));
        let err = error(&text);
        assert!(
            err.to_string()
                .starts_with("deploy/snow.toml:7:3: module[0].allow_outbound[1]: `"),
            "{rule:?}: {err}"
        );
        let expected = rule.parse::<crate::outbound::AllowRule>().expect_err(rule);
        assert!(err.to_string().ends_with(&expected), "{rule:?}: {err}");
    }
}

#[test]
fn bad_health_addresses_and_drain_delays_name_the_key() {
    for (line, column, value) in [
        ("health = \"on\"", 10, "on"),
        ("health = \"0.0.0.0\"", 10, "0.0.0.0"),
        ("health = \"localhost:8014\"", 10, "localhost:8014"),
        ("health = \"0.0.0.0:99999\"", 10, "0.0.0.0:99999"),
        ("health = \"\"", 10, ""),
    ] {
        let err = error(&format!("workers = 1\n{line}\n{}", module_with("")));
        assert_eq!(
            err.to_string(),
            format!(
                "deploy/snow.toml:2:{column}: health: `{value}` is not an address like \
                 0.0.0.0:8014, or `off`"
            ),
            "{line}"
        );
    }
    for (line, why) in [
        (
            "health = 8014",
            "health: expected a string, found an integer",
        ),
        (
            "health = true",
            "health: expected a string, found a boolean",
        ),
        (
            "health = [\"0.0.0.0:8014\"]",
            "health: expected a string, found an array",
        ),
        (
            "health = { port = 8014 }",
            "health: expected a string, found a table",
        ),
    ] {
        let err = error(&format!("{line}\n{}", module_with(""))).to_string();
        assert!(err.starts_with("deploy/snow.toml:1:10: "), "{line}: {err}");
        assert!(err.ends_with(why), "{line}: {err}");
    }

    for (value, column, why) in [
        ("\"soon\"", 15, "`soon` is not a duration like 30s or 100ms"),
        (
            "10",
            15,
            "`10` has no unit; write a duration like \"10s\" or \"10ms\"",
        ),
        ("-1", 15, "`-1` has no unit"),
        ("\"-5s\"", 15, "`-5s` is not a duration"),
        ("\"999999999999d\"", 15, "is above the most allowed, 10m"),
        ("\"10m 1s\"", 15, "`10m 1s` is above the most allowed, 10m"),
        (
            "1.5",
            15,
            "expected a duration like \"100ms\", found a float",
        ),
        ("false", 15, "found a boolean"),
    ] {
        let text = format!("[limits]\ndrain_delay = {value}\n{}", module_with(""));
        let err = error(&text).to_string();
        let at = format!("deploy/snow.toml:2:{column}: limits.drain_delay: ");
        assert!(err.starts_with(&at), "{value}: {err}");
        assert!(err.contains(why), "{value}: {err}");
    }
    // Its own key, not the grace period: misplaced at the top level, it is
    // an unknown key there.
    let err = error(&format!("drain_delay = \"5s\"\n{}", module_with("")));
    assert!(
        err.to_string()
            .contains("unknown key `drain_delay` in the top-level table"),
        "{err}"
    );
    let manifest = parse(&format!(
        "[limits]\ndrain_delay = \"0s\"\n{}",
        module_with("")
    ))
    .expect("valid");
    assert_eq!(manifest.server.drain_delay, Some(Duration::ZERO));
    let manifest = parse(&format!(
        "[limits]\ndrain_delay = \"10m\"\n{}",
        module_with("")
    ))
    .expect("valid");
    assert_eq!(manifest.server.drain_delay, Some(Duration::from_secs(600)));
}
