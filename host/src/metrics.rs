//! Server metrics kept in atomics and rendered in the Prometheus text exposition format 0.0.4.
//!
//! Recording sits on the request path, so it is a few relaxed atomic adds and
//! nothing else: no lock, no allocation, no lookup by name. Each call to
//! [`Metrics::module`] hands out a shard of its own, so two workers serving
//! the same module never write to the same cache line; rendering sums the
//! shards of each module.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use crate::runtime::TrapReason;

/// Upper bounds of the latency histogram in nanoseconds, with their `le` labels.
///
/// Bounds are integers so that choosing a bucket never touches floating point.
const BUCKETS: [(u64, &str); 16] = [
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
    (10_000_000_000, "10"),
    (30_000_000_000, "30"),
    (60_000_000_000, "60"),
];

/// One slot per finite bucket, then the overflow slot behind `le="+Inf"`.
const HISTOGRAM_SLOTS: usize = BUCKETS.len() + 1;

const FIRST_STATUS: u16 = 100;
const LAST_STATUS: u16 = 599;
/// A counter for every status in `FIRST_STATUS..=LAST_STATUS`, then one for the rest.
const STATUS_SLOTS: usize = (LAST_STATUS - FIRST_STATUS) as usize + 2;
const OTHER_STATUS: usize = STATUS_SLOTS - 1;

/// Why the server turned a connection or request away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The open-connection limit was reached.
    Connections,
    /// The instance already held its maximum of parked requests.
    Parked,
}

impl Refusal {
    /// Every variant, in the order they are rendered.
    pub const ALL: [Refusal; 2] = [Refusal::Connections, Refusal::Parked];

    /// The value of the `limit` label.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Connections => "connections",
            Refusal::Parked => "parked",
        }
    }
}

/// Every metric of the process; share it as `Arc<Metrics>`.
pub struct Metrics {
    global: Global,
    /// Shards by module name; the map keeps rendering in name order.
    modules: Mutex<BTreeMap<String, Vec<Arc<ModuleMetrics>>>>,
}

/// Kept apart from the registry lock so that locking it for a render does
/// not take the cache line the connection gauge lives on.
#[repr(align(128))]
struct Global {
    open_connections: AtomicI64,
    refused: [AtomicU64; Refusal::ALL.len()],
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            global: Global {
                open_connections: AtomicI64::new(0),
                refused: [const { AtomicU64::new(0) }; Refusal::ALL.len()],
            },
            modules: Mutex::new(BTreeMap::new()),
        })
    }

    /// A recording handle for the module `name`. Call it once per worker and
    /// module load, not per request: it locks the registry.
    ///
    /// Handles of the same name are rendered as one module. A handle that
    /// was dropped is handed out again rather than replaced, so reloading a
    /// module does not grow the registry and its counters carry on from where
    /// they were, as Prometheus counters must.
    pub fn module(&self, name: &str) -> Arc<ModuleMetrics> {
        let mut modules = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
        let shards = match modules.get_mut(name) {
            Some(shards) => shards,
            None => modules.entry(name.to_owned()).or_default(),
        };
        // Under the lock only the registry can clone a shard nobody else
        // holds, so a count of one cannot rise while we look at it.
        if let Some(idle) = shards.iter().find(|s| Arc::strong_count(s) == 1) {
            return idle.clone();
        }
        let shard = Arc::new(ModuleMetrics::new());
        shards.push(shard.clone());
        shard
    }

    pub fn connection_opened(&self) {
        self.global.open_connections.fetch_add(1, Relaxed);
    }

    pub fn connection_closed(&self) {
        self.global.open_connections.fetch_sub(1, Relaxed);
    }

    pub fn refused(&self, limit: Refusal) {
        if let Some(counter) = self.global.refused.get(limit as usize) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// The whole registry in the text exposition format, version 0.0.4.
    ///
    /// Counters are read one by one without stopping writers, so a render may
    /// see a request in one family and not yet in another. Within a histogram
    /// `_count` is the sum of the buckets read, so the two always agree.
    pub fn render(&self) -> String {
        let modules: Vec<(String, Totals)> = {
            let registry = self.modules.lock().unwrap_or_else(PoisonError::into_inner);
            registry
                .iter()
                .map(|(name, shards)| (escape_label(name), Totals::sum(shards)))
                .collect()
        };
        let mut out = Exposition::default();

        out.family(
            "snow_open_connections",
            "gauge",
            "Client connections currently open.",
        );
        let open = self.global.open_connections.load(Relaxed);
        out.sample("snow_open_connections", &[], open);

        out.family(
            "snow_refused_total",
            "counter",
            "Connections and requests turned away because a limit was reached, by limit.",
        );
        for (limit, counter) in Refusal::ALL.iter().zip(&self.global.refused) {
            let value = counter.load(Relaxed);
            out.sample("snow_refused_total", &[("limit", limit.label())], value);
        }

        out.family(
            "snow_requests_total",
            "counter",
            "Requests answered, by module and response status.",
        );
        for (module, totals) in &modules {
            for (slot, &count) in totals.statuses.iter().enumerate() {
                if count == 0 {
                    continue;
                }
                let code;
                let status = if slot == OTHER_STATUS {
                    "other"
                } else {
                    code = (usize::from(FIRST_STATUS) + slot).to_string();
                    code.as_str()
                };
                let labels = [("module", module.as_str()), ("status", status)];
                out.sample("snow_requests_total", &labels, count);
            }
        }

        out.family(
            "snow_request_duration_seconds",
            "histogram",
            "Time taken to answer a request, in seconds, by module.",
        );
        for (module, totals) in &modules {
            let mut cumulative = 0u64;
            for (slot, &count) in totals.buckets.iter().enumerate() {
                cumulative = cumulative.saturating_add(count);
                let le = BUCKETS.get(slot).map_or("+Inf", |&(_, label)| label);
                let labels = [("module", module.as_str()), ("le", le)];
                out.sample("snow_request_duration_seconds_bucket", &labels, cumulative);
            }
            let labels = [("module", module.as_str())];
            let seconds = totals.sum_nanos as f64 / 1e9;
            out.sample("snow_request_duration_seconds_sum", &labels, seconds);
            out.sample("snow_request_duration_seconds_count", &labels, cumulative);
        }

        out.family(
            "snow_parked_requests",
            "gauge",
            "Requests parked while their handler awaits host operations, by module.",
        );
        for (module, totals) in &modules {
            let labels = [("module", module.as_str())];
            out.sample("snow_parked_requests", &labels, totals.parked);
        }

        out.family(
            "snow_traps_total",
            "counter",
            "Guest calls that trapped, by module and reason.",
        );
        for (module, totals) in &modules {
            out.by_reason("snow_traps_total", module, &totals.traps);
        }

        out.family(
            "snow_instance_rebuilds_total",
            "counter",
            "Instances replaced after a trap, by module and the trap's reason.",
        );
        for (module, totals) in &modules {
            out.by_reason("snow_instance_rebuilds_total", module, &totals.rebuilds);
        }

        out.0
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field(
                "open_connections",
                &self.global.open_connections.load(Relaxed),
            )
            .finish_non_exhaustive()
    }
}

/// The metrics of one module as recorded by one holder (typically a worker).
///
/// The alignment keeps shards of different workers off each other's cache
/// lines, including the pair the CPU prefetches together.
#[repr(align(128))]
pub struct ModuleMetrics {
    statuses: [AtomicU64; STATUS_SLOTS],
    /// Per-bucket counts, not cumulative: one add per request, and `_count`
    /// is derived from them when rendering.
    buckets: [AtomicU64; HISTOGRAM_SLOTS],
    sum_nanos: AtomicU64,
    parked: AtomicI64,
    traps: [AtomicU64; TrapReason::ALL.len()],
    rebuilds: [AtomicU64; TrapReason::ALL.len()],
}

impl ModuleMetrics {
    fn new() -> Self {
        Self {
            statuses: [const { AtomicU64::new(0) }; STATUS_SLOTS],
            buckets: [const { AtomicU64::new(0) }; HISTOGRAM_SLOTS],
            sum_nanos: AtomicU64::new(0),
            parked: AtomicI64::new(0),
            traps: [const { AtomicU64::new(0) }; TrapReason::ALL.len()],
            rebuilds: [const { AtomicU64::new(0) }; TrapReason::ALL.len()],
        }
    }

    /// Counts an answered request with its status and how long it took.
    pub fn request(&self, status: u16, elapsed: Duration) {
        let slot = if (FIRST_STATUS..=LAST_STATUS).contains(&status) {
            usize::from(status - FIRST_STATUS)
        } else {
            OTHER_STATUS
        };
        if let Some(counter) = self.statuses.get(slot) {
            counter.fetch_add(1, Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // `le` is inclusive: an observation equal to a bound belongs to it.
        let bucket = BUCKETS.partition_point(|&(bound, _)| bound < nanos);
        if let Some(counter) = self.buckets.get(bucket) {
            counter.fetch_add(1, Relaxed);
        }
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Adjusts the parked-request gauge: `+1` when a request parks, `-1`
    /// when it settles or is cancelled.
    pub fn parked(&self, delta: i64) {
        self.parked.fetch_add(delta, Relaxed);
    }

    pub fn trap(&self, reason: TrapReason) {
        if let Some(counter) = self.traps.get(reason.index()) {
            counter.fetch_add(1, Relaxed);
        }
    }

    pub fn rebuild(&self, reason: TrapReason) {
        if let Some(counter) = self.rebuilds.get(reason.index()) {
            counter.fetch_add(1, Relaxed);
        }
    }
}

impl fmt::Debug for ModuleMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModuleMetrics")
            .field("parked", &self.parked.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// One module's shards added up.
struct Totals {
    statuses: Box<[u64; STATUS_SLOTS]>,
    buckets: [u64; HISTOGRAM_SLOTS],
    sum_nanos: u64,
    parked: i64,
    traps: [u64; TrapReason::ALL.len()],
    rebuilds: [u64; TrapReason::ALL.len()],
}

impl Totals {
    fn sum(shards: &[Arc<ModuleMetrics>]) -> Self {
        let mut totals = Totals {
            statuses: Box::new([0; STATUS_SLOTS]),
            buckets: [0; HISTOGRAM_SLOTS],
            sum_nanos: 0,
            parked: 0,
            traps: [0; TrapReason::ALL.len()],
            rebuilds: [0; TrapReason::ALL.len()],
        };
        for shard in shards {
            add(&mut totals.statuses[..], &shard.statuses);
            add(&mut totals.buckets, &shard.buckets);
            add(&mut totals.traps, &shard.traps);
            add(&mut totals.rebuilds, &shard.rebuilds);
            totals.sum_nanos = totals
                .sum_nanos
                .saturating_add(shard.sum_nanos.load(Relaxed));
            totals.parked = totals.parked.saturating_add(shard.parked.load(Relaxed));
        }
        totals
    }
}

fn add(totals: &mut [u64], counters: &[AtomicU64]) {
    for (total, counter) in totals.iter_mut().zip(counters) {
        *total = total.saturating_add(counter.load(Relaxed));
    }
}

/// The exposition text being built.
#[derive(Default)]
struct Exposition(String);

impl Exposition {
    /// HELP and TYPE lines; `help` must not hold a backslash or newline.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample line; label values must already be escaped.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        self.0.push_str(name);
        let mut separator = '{';
        for (label, value) in labels {
            self.0.push(separator);
            separator = ',';
            let _ = write!(self.0, "{label}=\"{value}\"");
        }
        if !labels.is_empty() {
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// Every reason, zeros included, so that the first trap of a module is
    /// an increase an alert can see rather than a series appearing at 1.
    fn by_reason(&mut self, name: &str, module: &str, counts: &[u64]) {
        for (reason, count) in TrapReason::ALL.iter().zip(counts) {
            let labels = [("module", module), ("reason", reason.label())];
            self.sample(name, &labels, count);
        }
    }
}

/// Escapes a label value as the format requires: backslash, double quote
/// and line feed.
fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample line taken apart, label values unescaped.
    #[derive(Debug)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    impl Sample {
        fn label(&self, name: &str) -> Option<&str> {
            self.labels
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    fn is_metric_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn is_label_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// Parses `name{label="value",...} value`, panicking on anything else.
    fn parse_sample(line: &str) -> Sample {
        let name_end = line.find(['{', ' ']).expect("a value after the name");
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad metric name in {line:?}");
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = inner.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (label, after) = inner.split_once("=\"").expect("label=\"value\"");
                assert!(is_label_name(label), "bad label name in {line:?}");
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next().expect("closing quote") {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next().expect("escaped character").1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            other => panic!("bad escape \\{other} in {line:?}"),
                        },
                        (_, '\n') => panic!("raw newline in {line:?}"),
                        (_, c) => value.push(c),
                    }
                };
                assert!(
                    !labels.iter().any(|(l, _)| l == label),
                    "repeated label in {line:?}"
                );
                labels.push((label.to_owned(), value));
                inner = &after[end + 1..];
                inner = inner.strip_prefix(',').unwrap_or(inner);
            }
        }
        let value = rest.strip_prefix(' ').expect("a space before the value");
        assert!(!value.contains(' '), "trailing fields in {line:?}");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().expect("a float value"),
        };
        Sample {
            name: name.to_owned(),
            labels,
            value,
        }
    }

    /// Checks `text` line by line against the exposition format and returns
    /// its samples. Beyond the syntax it checks that every family has one
    /// HELP and one TYPE line before its samples, that a family's samples are
    /// contiguous, that no series repeats, that histogram buckets rise with
    /// `le`, are cumulative and end at +Inf, and that `_count` equals the
    /// +Inf bucket.
    fn check(text: &str) -> Vec<Sample> {
        assert!(text.ends_with('\n'), "the text ends with a line feed");
        let mut types: BTreeMap<String, String> = BTreeMap::new();
        let mut helped: Vec<String> = Vec::new();
        let mut closed: Vec<String> = Vec::new();
        let mut current: Option<String> = None;
        let mut series: Vec<String> = Vec::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut parts = comment.splitn(3, ' ');
                let keyword = parts.next().unwrap();
                let name = parts.next().expect("a metric name").to_owned();
                let rest = parts.next().expect("text after the name");
                assert!(is_metric_name(&name), "{line:?}");
                assert!(!closed.contains(&name), "{name} appears twice");
                if current.as_deref() != Some(&name) {
                    if let Some(previous) = current.replace(name.clone()) {
                        closed.push(previous);
                    }
                }
                match keyword {
                    "HELP" => {
                        assert!(!helped.contains(&name), "second HELP for {name}");
                        assert!(!rest.is_empty());
                        helped.push(name);
                    }
                    "TYPE" => {
                        assert!(
                            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&rest),
                            "{line:?}"
                        );
                        assert!(types.insert(name, rest.to_owned()).is_none());
                    }
                    _ => panic!("unknown comment {line:?}"),
                }
                continue;
            }
            assert!(!line.is_empty() && !line.starts_with('#'), "{line:?}");
            let sample = parse_sample(line);
            let family = current.clone().expect("TYPE before samples");
            let kind = types.get(&family).expect("TYPE before samples");
            let allowed = if kind == "histogram" {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| sample.name == format!("{family}{suffix}"))
            } else {
                sample.name == family
            };
            assert!(allowed, "{} outside its family {family}", sample.name);
            assert!(
                sample.name != format!("{family}_bucket") || sample.label("le").is_some(),
                "bucket without le: {line:?}"
            );
            let key = format!("{}{:?}", sample.name, sample.labels);
            assert!(!series.contains(&key), "repeated series {line:?}");
            series.push(key);
            samples.push(sample);
        }
        for (family, kind) in &types {
            assert!(helped.contains(family), "{family} has no HELP");
            if kind == "histogram" {
                check_histogram(family, &samples);
            }
        }
        samples
    }

    fn check_histogram(family: &str, samples: &[Sample]) {
        let bucket_name = format!("{family}_bucket");
        let without_le = |s: &Sample| -> Vec<(String, String)> {
            s.labels
                .iter()
                .filter(|(l, _)| l != "le")
                .cloned()
                .collect()
        };
        let mut groups: Vec<Vec<(String, String)>> = Vec::new();
        for s in samples.iter().filter(|s| s.name == bucket_name) {
            let group = without_le(s);
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        for group in groups {
            let buckets: Vec<(f64, f64)> = samples
                .iter()
                .filter(|s| s.name == bucket_name && without_le(s) == group)
                .map(|s| {
                    let le = s.label("le").unwrap();
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().unwrap()
                    };
                    (bound, s.value)
                })
                .collect();
            assert_eq!(buckets.last().unwrap().0, f64::INFINITY, "{group:?}");
            for pair in buckets.windows(2) {
                assert!(pair[0].0 < pair[1].0, "le rises: {group:?}");
                assert!(pair[0].1 <= pair[1].1, "cumulative: {group:?}");
            }
            let find = |suffix: &str| {
                samples
                    .iter()
                    .find(|s| s.name == format!("{family}{suffix}") && s.labels == group)
                    .unwrap_or_else(|| panic!("{family}{suffix} missing for {group:?}"))
                    .value
            };
            assert_eq!(find("_count"), buckets.last().unwrap().1, "{group:?}");
            assert!(find("_sum") >= 0.0);
        }
    }

    /// The value of the one sample with exactly these labels.
    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<_> = samples
            .iter()
            .filter(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(l, v)| s.label(l) == Some(*v))
            })
            .collect();
        assert!(matching.len() <= 1);
        matching.first().map(|s| s.value)
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

    #[test]
    fn empty_registry_has_every_family() {
        let metrics = Metrics::new();
        let text = metrics.render();
        let samples = check(&text);
        for (name, kind) in FAMILIES {
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{name}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        }
        assert_eq!(value(&samples, "snow_open_connections", &[]), Some(0.0));
        for limit in ["connections", "parked"] {
            let labels = [("limit", limit)];
            assert_eq!(value(&samples, "snow_refused_total", &labels), Some(0.0));
        }
        assert_eq!(samples.len(), 3);
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
        let samples = check(&text);
        let get = |name: &str, labels: &[(&str, &str)]| value(&samples, name, labels);

        assert_eq!(get("snow_open_connections", &[]), Some(2.0));
        assert_eq!(get("snow_refused_total", &[("limit", "parked")]), Some(1.0));
        assert_eq!(
            get("snow_refused_total", &[("limit", "connections")]),
            Some(0.0)
        );

        let requests = |status| {
            get(
                "snow_requests_total",
                &[("module", "hello"), ("status", status)],
            )
        };
        assert_eq!(requests("200"), Some(2.0));
        assert_eq!(requests("404"), Some(1.0));
        assert_eq!(requests("other"), Some(2.0));
        assert_eq!(requests("500"), None);
        let statuses: Vec<&str> = samples
            .iter()
            .filter(|s| s.name == "snow_requests_total")
            .map(|s| s.label("status").unwrap())
            .collect();
        assert_eq!(statuses, ["200", "404", "other"]);

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
        let sum = get("snow_request_duration_seconds_sum", &hello_only).unwrap();
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

        let modules: Vec<&str> = samples
            .iter()
            .filter(|s| s.name == "snow_parked_requests")
            .map(|s| s.label("module").unwrap())
            .collect();
        assert_eq!(modules, ["alpha", "hello"]);

        assert!(text
            .contains("snow_request_duration_seconds_bucket{module=\"hello\",le=\"0.0005\"} 1\n"));
        assert!(text.contains("snow_requests_total{module=\"hello\",status=\"200\"} 2\n"));
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
        let samples = check(&metrics.render());
        let bucket = |le| {
            value(
                &samples,
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
        let samples = check(&metrics.render());
        let requests = |status| {
            value(
                &samples,
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
        assert!(text.contains(r#"snow_parked_requests{module="we\"ird\\mod\nule"} 0"#));
        let samples = check(&text);
        let parked = value(&samples, "snow_parked_requests", &[("module", name)]);
        assert_eq!(parked, Some(0.0));
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
        let samples = check(&metrics.render());
        let labels = [("module", "m"), ("status", "200")];
        assert_eq!(value(&samples, "snow_requests_total", &labels), Some(2.0));
        let labels = [("module", "m")];
        assert_eq!(value(&samples, "snow_parked_requests", &labels), Some(2.0));

        // A reload: the old handle is dropped and its counts carry on.
        drop(second);
        let third = metrics.module("m");
        third.request(200, Duration::ZERO);
        let samples = check(&metrics.render());
        let labels = [("module", "m"), ("status", "200")];
        assert_eq!(value(&samples, "snow_requests_total", &labels), Some(3.0));
        let shards = metrics.modules.lock().unwrap().get("m").map(Vec::len);
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
            thread.join().unwrap();
        }
        let samples = check(&metrics.render());
        let total = (THREADS * PER_THREAD) as f64;
        let labels = [("module", "m"), ("status", "200")];
        assert_eq!(value(&samples, "snow_requests_total", &labels), Some(total));
        let labels = [("module", "m")];
        assert_eq!(
            value(&samples, "snow_request_duration_seconds_count", &labels),
            Some(total)
        );
        assert_eq!(
            value(&samples, "snow_open_connections", &[]),
            Some(THREADS as f64)
        );
    }

    #[test]
    fn checker_rejects_broken_text() {
        let broken = [
            "x 1\n",
            "# TYPE x counter\n# HELP x h\nx{a=\"b} 1\n",
            "# HELP x h\n# TYPE x counter\nx{a=\"b\\t\"} 1\n",
            "# HELP x h\n# TYPE x counter\ny 1\n",
            "# HELP x h\n# TYPE x counter\nx 1\nx 2\n",
            "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
            "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0\nh_count 1\n",
        ];
        for text in broken {
            let result = std::panic::catch_unwind(|| check(text));
            assert!(result.is_err(), "accepted {text:?}");
        }
    }
}
