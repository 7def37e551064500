//! The exposition is asserted on as text: whole for small registries, so any
//! change to what a scraper reads fails here, and series by series otherwise.

use std::time::Duration;

use super::*;

/// The value on the one line for the series `name{labels}`, labels in the
/// order they are rendered; `None` when the series is absent.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut series = name.to_owned();
    if !labels.is_empty() {
        let pairs: Vec<String> = labels
            .iter()
            .map(|(label, value)| format!("{label}=\"{value}\""))
            .collect();
        series = format!("{series}{{{}}}", pairs.join(","));
    }
    let prefix = format!("{series} ");
    let mut values = text.lines().filter_map(|line| line.strip_prefix(&prefix));
    let found = values.next()?;
    assert!(values.next().is_none(), "{series} appears twice");
    Some(found.parse().expect("a number"))
}

const FAMILIES: [(&str, &str); 7] = [
    ("snow_open_connections", "gauge"),
    ("snow_refused_total", "counter"),
    ("snow_requests_total", "counter"),
    ("snow_request_duration_seconds", "histogram"),
    ("snow_parked_requests", "gauge"),
    ("snow_traps_total", "counter"),
    ("snow_instance_rebuilds_total", "counter"),
];

const HEADERS: &str = "\
# HELP snow_open_connections Client connections currently open.
# TYPE snow_open_connections gauge
";

#[test]
fn empty_registry_renders_every_family() {
    let expected = format!(
        "{HEADERS}\
snow_open_connections 0
# HELP snow_refused_total Connections and requests turned away because a limit was reached, by limit.
# TYPE snow_refused_total counter
snow_refused_total{{limit=\"connections\"}} 0
snow_refused_total{{limit=\"parked\"}} 0
# HELP snow_requests_total Requests answered, by module and response status.
# TYPE snow_requests_total counter
# HELP snow_request_duration_seconds Time taken to answer a request, in seconds, by module.
# TYPE snow_request_duration_seconds histogram
# HELP snow_parked_requests Requests parked while their handler awaits host operations, by module.
# TYPE snow_parked_requests gauge
# HELP snow_traps_total Guest calls that trapped, by module and reason.
# TYPE snow_traps_total counter
# HELP snow_instance_rebuilds_total Instances replaced after a trap, by module and the trap's reason.
# TYPE snow_instance_rebuilds_total counter
"
    );
    assert_eq!(Metrics::new().render(), expected);
}

#[test]
fn one_module_renders_exactly() {
    let metrics = Metrics::new();
    let m = metrics.module("m");
    m.request(200, Duration::from_micros(300));
    m.request(503, Duration::from_millis(20));
    m.parked(1);
    m.trap(TrapReason::Panic);
    m.rebuild(TrapReason::Panic);
    metrics.connection_opened();
    metrics.refused(Refusal::Connections);
    let expected = format!(
        "{HEADERS}\
snow_open_connections 1
# HELP snow_refused_total Connections and requests turned away because a limit was reached, by limit.
# TYPE snow_refused_total counter
snow_refused_total{{limit=\"connections\"}} 1
snow_refused_total{{limit=\"parked\"}} 0
# HELP snow_requests_total Requests answered, by module and response status.
# TYPE snow_requests_total counter
snow_requests_total{{module=\"m\",status=\"200\"}} 1
snow_requests_total{{module=\"m\",status=\"503\"}} 1
# HELP snow_request_duration_seconds Time taken to answer a request, in seconds, by module.
# TYPE snow_request_duration_seconds histogram
snow_request_duration_seconds_bucket{{module=\"m\",le=\"0.0005\"}} 1
snow_request_duration_seconds_bucket{{module=\"m\",le=\"0.001\"}} 1
snow_request_duration_seconds_bucket{{module=\"m\",le=\"0.0025\"}} 1
snow_request_duration_seconds_bucket{{module=\"m\",le=\"0.005\"}} 1
snow_request_duration_seconds_bucket{{module=\"m\",le=\"0.01\"}} 1
snow_request_duration_seconds_bucket{{module=\"m\",le=\"0.025\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"0.05\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"0.1\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"0.25\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"0.5\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"1\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"2.5\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"5\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"10\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"30\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"60\"}} 2
snow_request_duration_seconds_bucket{{module=\"m\",le=\"+Inf\"}} 2
snow_request_duration_seconds_sum{{module=\"m\"}} 0.0203
snow_request_duration_seconds_count{{module=\"m\"}} 2
# HELP snow_parked_requests Requests parked while their handler awaits host operations, by module.
# TYPE snow_parked_requests gauge
snow_parked_requests{{module=\"m\"}} 1
# HELP snow_traps_total Guest calls that trapped, by module and reason.
# TYPE snow_traps_total counter
snow_traps_total{{module=\"m\",reason=\"panic\"}} 1
snow_traps_total{{module=\"m\",reason=\"cpu_time\"}} 0
snow_traps_total{{module=\"m\",reason=\"memory\"}} 0
snow_traps_total{{module=\"m\",reason=\"stack_overflow\"}} 0
snow_traps_total{{module=\"m\",reason=\"other\"}} 0
# HELP snow_instance_rebuilds_total Instances replaced after a trap, by module and the trap's reason.
# TYPE snow_instance_rebuilds_total counter
snow_instance_rebuilds_total{{module=\"m\",reason=\"panic\"}} 1
snow_instance_rebuilds_total{{module=\"m\",reason=\"cpu_time\"}} 0
snow_instance_rebuilds_total{{module=\"m\",reason=\"memory\"}} 0
snow_instance_rebuilds_total{{module=\"m\",reason=\"stack_overflow\"}} 0
snow_instance_rebuilds_total{{module=\"m\",reason=\"other\"}} 0
"
    );
    assert_eq!(metrics.render(), expected);
}

#[test]
fn families_come_in_a_fixed_order() {
    let metrics = Metrics::new();
    metrics.module("m").request(200, Duration::ZERO);
    let text = metrics.render();
    let types: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .collect();
    let expected: Vec<String> = FAMILIES.iter().map(|(n, k)| format!("{n} {k}")).collect();
    assert_eq!(types, expected);
}

#[test]
fn renders_recorded_values() {
    let metrics = Metrics::new();
    let hello = metrics.module("hello");
    hello.request(200, Duration::from_micros(300));
    hello.request(200, Duration::from_micros(700));
    hello.request(404, Duration::from_millis(3));
    hello.request(99, Duration::from_secs(1));
    hello.request(600, Duration::from_secs(90));
    hello.parked(3);
    hello.parked(-1);
    hello.trap(TrapReason::CpuTime);
    hello.trap(TrapReason::CpuTime);
    hello.trap(TrapReason::StackOverflow);
    hello.rebuild(TrapReason::CpuTime);
    let _idle = metrics.module("alpha");
    metrics.connection_opened();
    metrics.connection_opened();
    metrics.connection_opened();
    metrics.connection_closed();
    metrics.refused(Refusal::Parked);

    let text = metrics.render();
    let get = |name: &str, labels: &[(&str, &str)]| value(&text, name, labels);

    assert_eq!(get("snow_open_connections", &[]), Some(2.0));
    assert_eq!(get("snow_refused_total", &[("limit", "parked")]), Some(1.0));
    assert_eq!(
        get("snow_refused_total", &[("limit", "connections")]),
        Some(0.0)
    );

    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("snow_requests_total{"))
        .collect();
    assert_eq!(
        requests,
        [
            r#"snow_requests_total{module="hello",status="200"} 2"#,
            r#"snow_requests_total{module="hello",status="404"} 1"#,
            r#"snow_requests_total{module="hello",status="other"} 2"#,
        ]
    );

    let bucket = |module, le| {
        get(
            "snow_request_duration_seconds_bucket",
            &[("module", module), ("le", le)],
        )
    };
    assert_eq!(bucket("hello", "0.0005"), Some(1.0));
    assert_eq!(bucket("hello", "0.001"), Some(2.0));
    assert_eq!(bucket("hello", "0.005"), Some(3.0));
    assert_eq!(bucket("hello", "1"), Some(4.0));
    assert_eq!(bucket("hello", "60"), Some(4.0));
    assert_eq!(bucket("hello", "+Inf"), Some(5.0));
    assert_eq!(bucket("alpha", "+Inf"), Some(0.0));
    let hello_only = [("module", "hello")];
    assert_eq!(
        get("snow_request_duration_seconds_count", &hello_only),
        Some(5.0)
    );
    let sum = get("snow_request_duration_seconds_sum", &hello_only).expect("a sum");
    assert!((sum - 91.004).abs() < 1e-9, "{sum}");

    assert_eq!(get("snow_parked_requests", &hello_only), Some(2.0));
    assert_eq!(
        get("snow_parked_requests", &[("module", "alpha")]),
        Some(0.0)
    );

    let traps = |reason| {
        get(
            "snow_traps_total",
            &[("module", "hello"), ("reason", reason)],
        )
    };
    assert_eq!(traps("cpu_time"), Some(2.0));
    assert_eq!(traps("stack_overflow"), Some(1.0));
    assert_eq!(traps("panic"), Some(0.0));
    let rebuilds = |reason| {
        get(
            "snow_instance_rebuilds_total",
            &[("module", "hello"), ("reason", reason)],
        )
    };
    assert_eq!(rebuilds("cpu_time"), Some(1.0));
    assert_eq!(rebuilds("memory"), Some(0.0));

    let parked: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("snow_parked_requests{"))
        .collect();
    assert_eq!(
        parked,
        [
            r#"snow_parked_requests{module="alpha"} 0"#,
            r#"snow_parked_requests{module="hello"} 2"#,
        ]
    );
}

#[test]
fn bucket_bounds_are_inclusive() {
    let metrics = Metrics::new();
    let m = metrics.module("m");
    m.request(200, Duration::from_micros(500));
    m.request(200, Duration::from_nanos(500_001));
    m.request(200, Duration::from_secs(60));
    m.request(200, Duration::from_nanos(60_000_000_001));
    m.request(200, Duration::ZERO);
    let text = metrics.render();
    let bucket = |le| {
        value(
            &text,
            "snow_request_duration_seconds_bucket",
            &[("module", "m"), ("le", le)],
        )
    };
    assert_eq!(bucket("0.0005"), Some(2.0));
    assert_eq!(bucket("0.001"), Some(3.0));
    assert_eq!(bucket("30"), Some(3.0));
    assert_eq!(bucket("60"), Some(4.0));
    assert_eq!(bucket("+Inf"), Some(5.0));
}

#[test]
fn extreme_inputs_do_not_panic() {
    let metrics = Metrics::new();
    let m = metrics.module("m");
    m.request(0, Duration::MAX);
    m.request(u16::MAX, Duration::ZERO);
    m.request(100, Duration::ZERO);
    m.request(599, Duration::ZERO);
    m.parked(i64::MIN);
    m.parked(-1);
    let text = metrics.render();
    let requests = |status| {
        value(
            &text,
            "snow_requests_total",
            &[("module", "m"), ("status", status)],
        )
    };
    assert_eq!(requests("100"), Some(1.0));
    assert_eq!(requests("599"), Some(1.0));
    assert_eq!(requests("other"), Some(2.0));
}

#[test]
fn label_values_are_escaped() {
    let name = "we\"ird\\mod\nule";
    let metrics = Metrics::new();
    metrics.module(name).request(201, Duration::ZERO);
    let text = metrics.render();
    assert!(text.contains("snow_parked_requests{module=\"we\\\"ird\\\\mod\\nule\"} 0\n"));
    assert!(
        text.contains("snow_requests_total{module=\"we\\\"ird\\\\mod\\nule\",status=\"201\"} 1\n")
    );
    // The raw value never reaches the text: every line is a comment or a
    // sample of a known family.
    for line in text.lines() {
        let known = line.starts_with("# ") || FAMILIES.iter().any(|(n, _)| line.starts_with(n));
        assert!(known, "{line:?}");
    }
}

#[test]
fn handles_of_one_module_are_shards_rendered_together() {
    let metrics = Metrics::new();
    let first = metrics.module("m");
    let second = metrics.module("m");
    assert!(!Arc::ptr_eq(&first, &second));
    first.request(200, Duration::ZERO);
    second.request(200, Duration::ZERO);
    first.parked(1);
    second.parked(1);
    let text = metrics.render();
    let labels = [("module", "m"), ("status", "200")];
    assert_eq!(value(&text, "snow_requests_total", &labels), Some(2.0));
    let labels = [("module", "m")];
    assert_eq!(value(&text, "snow_parked_requests", &labels), Some(2.0));

    // A reload: the old handle is dropped and its counts carry on.
    drop(second);
    let third = metrics.module("m");
    third.request(200, Duration::ZERO);
    let text = metrics.render();
    let labels = [("module", "m"), ("status", "200")];
    assert_eq!(value(&text, "snow_requests_total", &labels), Some(3.0));
    let shards = metrics
        .modules
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get("m")
        .map(Vec::len);
    assert_eq!(shards, Some(2));
}

#[test]
fn concurrent_recording_loses_nothing() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 50_000;
    let metrics = Metrics::new();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let metrics = metrics.clone();
            std::thread::spawn(move || {
                let m = metrics.module("m");
                for i in 0..PER_THREAD {
                    m.request(200, Duration::from_micros(i % 2000));
                }
                metrics.connection_opened();
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a recording thread");
    }
    let text = metrics.render();
    let total = (THREADS * PER_THREAD) as f64;
    let labels = [("module", "m"), ("status", "200")];
    assert_eq!(value(&text, "snow_requests_total", &labels), Some(total));
    let labels = [("module", "m")];
    assert_eq!(
        value(&text, "snow_request_duration_seconds_count", &labels),
        Some(total)
    );
    let inf = [("module", "m"), ("le", "+Inf")];
    assert_eq!(
        value(&text, "snow_request_duration_seconds_bucket", &inf),
        Some(total)
    );
    assert_eq!(
        value(&text, "snow_open_connections", &[]),
        Some(THREADS as f64)
    );
}

#[test]
fn buckets_are_cumulative_and_end_at_the_count() {
    let metrics = Metrics::new();
    let m = metrics.module("m");
    for micros in [0, 400, 900, 4_000, 70_000, 300_000, 2_000_000, 90_000_000] {
        m.request(200, Duration::from_micros(micros));
    }
    let text = metrics.render();
    let buckets: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("snow_request_duration_seconds_bucket{module=\"m\",le=\""))
        .map(|rest| {
            let (_, count) = rest.split_once("\"} ").expect("a bucket line");
            count.parse().expect("a count")
        })
        .collect();
    assert_eq!(buckets.len(), BUCKETS.len() + 1);
    assert!(
        buckets.windows(2).all(|pair| pair[0] <= pair[1]),
        "{buckets:?}"
    );
    let count = value(
        &text,
        "snow_request_duration_seconds_count",
        &[("module", "m")],
    );
    assert_eq!(buckets.last().copied(), count);
    assert_eq!(count, Some(8.0));
}
