//! Parks N concurrent long requests on a server and reports how long they were
//! held and how much resident memory the server needed to hold them.

mod exchange;
mod rss;
mod summary;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use snow_bench::duration::parse_duration;
use snow_bench::fd_limit::raise_nofile_limit_for;
use snow_bench::target::Target;
use tokio::task::JoinSet;
use tokio::time::Instant;

use rss::RssSampler;
use summary::Summary;

#[derive(Parser)]
#[command(about = "Open N connections, each parked on one long request, and measure the server")]
struct Args {
    /// Server URL on loopback. Without a path, requests go to `/async/?ms=<ms>`.
    #[arg(long, default_value = "http://127.0.0.1:8013")]
    url: String,
    /// Concurrent connections, one request each.
    #[arg(short = 'n', default_value_t = 1000)]
    n: usize,
    /// Hold time asked of the server when the URL has no path.
    #[arg(long, default_value_t = 5000)]
    ms: u64,
    /// Connections opened per second while ramping up.
    #[arg(long, default_value_t = 5000)]
    ramp_per_sec: u64,
    /// Deadline for the whole run (e.g. 30, 30s, 1500ms, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
    /// Server process whose VmRSS is sampled before and during the run.
    #[arg(long)]
    pid: Option<u32>,
    /// Runtime threads; one is enough to drive 10k sockets that mostly wait.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// What the body must hold to count: all of it (`done`, the default)
    /// or, with a `*` in front, a part of it (`*tick 3`, the third event of
    /// a stream).
    #[arg(long, default_value = "done")]
    expect: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.n > 0, "-n must be at least 1");
    anyhow::ensure!(args.ramp_per_sec > 0, "--ramp-per-sec must be at least 1");
    let target = Target::parse(&args.url)?;
    raise_nofile_limit_for(args.n)?;
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let summary = runtime.block_on(run(&args, target))?;
    println!("{summary}");
    Ok(())
}

async fn run(args: &Args, target: Target) -> anyhow::Result<Summary> {
    let sampler = match args.pid {
        Some(pid) => {
            Some(RssSampler::start(pid).with_context(|| format!("reading VmRSS of {pid}"))?)
        }
        None => None,
    };
    let path = target
        .path
        .clone()
        .unwrap_or_else(|| format!("/async/?ms={}", args.ms));
    // One request per connection, so the server may close once it answers.
    let request = target.get(&path, true);
    let expect: std::sync::Arc<str> = args.expect.as_str().into();
    let started = Instant::now();
    // One deadline for everything keeps the run bounded even when the server
    // stops answering: every exchange and the ramp itself give up at it.
    let deadline = started + args.timeout;
    let mut tasks = JoinSet::new();
    let mut opened = 0usize;
    while opened < args.n && Instant::now() < deadline {
        // Timers tick at 1 ms, so open in batches at the pace the rate allows
        // by now rather than one connection per tick.
        let due = (started.elapsed().as_secs_f64() * args.ramp_per_sec as f64).ceil() as usize;
        while opened < due.min(args.n) {
            let (request, expect) = (request.clone(), expect.clone());
            let addr = target.addr;
            tasks.spawn(async move {
                let exchange = exchange::park(addr, &request, &expect);
                match tokio::time::timeout_at(deadline, exchange).await {
                    Ok(result) => result,
                    Err(_) => Err("timeout".to_string()),
                }
            });
            opened += 1;
        }
        if opened < args.n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let ramp = started.elapsed();

    let mut holds = Vec::with_capacity(opened);
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(hold)) => holds.push(hold),
            Ok(Err(kind)) => *errors.entry(kind).or_default() += 1,
            Err(_) => *errors.entry("task_panicked".into()).or_default() += 1,
        }
    }
    if opened < args.n {
        errors.insert("not_opened".into(), args.n - opened);
    }
    let wall = started.elapsed();
    let memory = sampler.map(RssSampler::finish);
    Ok(Summary::new(args.n, holds, errors, ramp, wall, memory))
}
