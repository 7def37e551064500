//! What recording one request's metrics costs: Snow's own registry against
//! `prometheus-client` used as a server would use it, on one thread and on
//! as many threads as workers. It decides whether `host/src/metrics` stays
//! hand-written, so both sides record the same three things per request: a
//! count by status, a latency observation and nothing else.

use std::hint::black_box;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use snow::metrics::Metrics;

#[derive(Parser)]
#[command(about = "Nanoseconds per recorded request: snow's metrics against prometheus-client")]
struct Args {
    /// Requests recorded by each thread in each run.
    #[arg(long, default_value_t = 4_000_000)]
    requests: u64,
    /// Threads recording at once in the contended runs (the server's workers).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Runs of each case; the fastest is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    module: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModuleLabel {
    module: String,
}

/// The latency buckets Snow exposes, in seconds.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The status and latency of request `i`: mostly 200, now and then others,
/// as a real mix would be.
fn request(i: u64) -> (u16, Duration) {
    let status = match i % 64 {
        0 => 404,
        1 => 500,
        _ => 200,
    };
    (status, Duration::from_micros(50 + i % 200))
}

struct Prometheus {
    requests: Family<RequestLabels, Counter>,
    durations: Family<ModuleLabel, Histogram>,
}

impl Prometheus {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
        })
    }
}

/// The fastest of `runs` timings of `threads` threads each running `work`,
/// in nanoseconds per request of one thread.
fn time<F>(runs: usize, threads: usize, requests: u64, work: F) -> f64
where
    F: Fn() -> Box<dyn FnOnce() + Send> + Sync,
{
    (0..runs)
        .map(|_| {
            let jobs: Vec<_> = (0..threads).map(|_| work()).collect();
            let started = Instant::now();
            thread::scope(|scope| {
                for job in jobs {
                    scope.spawn(job);
                }
            });
            started.elapsed().as_nanos() as f64 / requests as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let args = Args::parse();
    let n = args.requests;
    let snow = Metrics::new();
    let prom = Prometheus::new();
    let snow_case = || -> Box<dyn FnOnce() + Send> {
        // One shard per worker, as each worker asks for its own.
        let shard = snow.module("bench");
        Box::new(move || {
            for i in 0..n {
                let (status, elapsed) = request(i);
                shard.request(black_box(status), elapsed);
            }
        })
    };
    let looked_up = || -> Box<dyn FnOnce() + Send> {
        let prom = prom.clone();
        Box::new(move || {
            let module = "bench".to_owned();
            let histogram = prom.durations.get_or_create(&ModuleLabel {
                module: module.clone(),
            });
            let histogram = (*histogram).clone();
            for i in 0..n {
                let (status, elapsed) = request(i);
                let labels = RequestLabels {
                    module: module.clone(),
                    status: black_box(status),
                };
                prom.requests.get_or_create(&labels).inc();
                histogram.observe(elapsed.as_secs_f64());
            }
        })
    };
    let cached = || -> Box<dyn FnOnce() + Send> {
        let prom = prom.clone();
        Box::new(move || {
            // The crate at its best: a handle per status resolved once.
            let handle = |status| {
                (*prom.requests.get_or_create(&RequestLabels {
                    module: "bench".into(),
                    status,
                }))
                .clone()
            };
            let (ok, missing, failed) = (handle(200), handle(404), handle(500));
            let histogram = (*prom.durations.get_or_create(&ModuleLabel {
                module: "bench".into(),
            }))
            .clone();
            for i in 0..n {
                let (status, elapsed) = request(i);
                match black_box(status) {
                    200 => ok.inc(),
                    404 => missing.inc(),
                    _ => failed.inc(),
                };
                histogram.observe(elapsed.as_secs_f64());
            }
        })
    };
    println!(
        "| threads | snow ns/request | prometheus-client, label lookup | ratio | prometheus-client, cached handles | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for threads in [1, args.threads] {
        let s = time(args.runs, threads, n, snow_case);
        let l = time(args.runs, threads, n, looked_up);
        let c = time(args.runs, threads, n, cached);
        println!(
            "| {threads} | {s:.1} | {l:.1} | {:.1}× | {c:.1} | {:.1}× |",
            l / s,
            c / s
        );
    }
}
