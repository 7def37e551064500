//! Keeps keep-alive connections busy on one route while the bench script
//! swaps the module behind it, and counts per time window how many requests
//! completed, failed, and came from each version, to show what a swap costs
//! the traffic running through it.

mod hammer;
mod marks;
mod report;
mod windows;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use snow_bench::duration::parse_duration;
use snow_bench::fd_limit::raise_nofile_limit_for;
use snow_bench::target::Target;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use hammer::Shared;
use report::Report;
use windows::Windows;

#[derive(Parser)]
#[command(about = "Load one route per time window while the module behind it is swapped")]
struct Args {
    /// Route loaded, on loopback; each version answers it with its name.
    #[arg(long, default_value = "http://127.0.0.1:8013/version/")]
    url: String,
    /// Keep-alive connections, each sending requests back to back.
    #[arg(short = 'c', long, default_value_t = 64)]
    connections: usize,
    /// Bodies the versions answer with; any other body is a failure.
    #[arg(long = "version", default_values_t = ["one".to_string(), "two".to_string()])]
    versions: Vec<String>,
    /// Width of a counting window.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    window: Duration,
    /// Windows this close to a swap, either side, count as near it.
    #[arg(long, default_value = "300ms", value_parser = parse_duration)]
    near: Duration,
    /// Length of the run; with --marks, the most it may last.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Read swap marks from stdin (`swap NAME`, `done STATUS`) and end the
    /// run when stdin closes.
    #[arg(long)]
    marks: bool,
    /// A request not answered within this counts as failed.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Write every window's counts here.
    #[arg(long)]
    series: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(!args.versions.is_empty(), "give at least one --version");
    let target = Target::parse(&args.url)?;
    raise_nofile_limit_for(args.connections)?;
    // One thread, like `wrk -t1` in the other sections: the server gets the
    // rest of the machine.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(&args, &target))?;
    if let Some(path) = &args.series {
        std::fs::write(path, report.series())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{}", report.grid());
    println!("{report}");
    Ok(())
}

async fn run(args: &Args, target: &Target) -> anyhow::Result<Report> {
    let path = target.path.as_deref().unwrap_or("/version/");
    let shared = Arc::new(Shared {
        addr: target.addr,
        request: target.get(path, false),
        versions: args.versions.clone(),
        timeout: args.timeout,
        windows: Windows::new(args.window, args.duration, args.versions.len()),
        errors: Mutex::default(),
        stop: Default::default(),
    });
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (start_tx, start_rx) = watch::channel(None);
    let mut tasks = JoinSet::new();
    for _ in 0..args.connections {
        tasks.spawn(hammer::hammer(
            Arc::clone(&shared),
            ready_tx.clone(),
            start_rx.clone(),
        ));
    }
    drop(ready_tx);
    // Every connection reports once and then drops its sender, so this
    // ends by itself.
    let mut warm = 0usize;
    while let Some(ok) = ready_rx.recv().await {
        warm += usize::from(ok);
    }

    // Marks are read only from here on, so none can predate the run.
    let marks = Arc::new(Mutex::new(Vec::new()));
    let stdin_closed = args.marks.then(|| marks::read_stdin(Arc::clone(&marks)));
    let started = Instant::now();
    let _ = start_tx.send(Some(started));
    announce(&format!(
        "ready connections={} warm_ok={warm}",
        args.connections
    ))?;

    let deadline = started + args.duration;
    match stdin_closed {
        Some(closed) => {
            tokio::select! {
                _ = closed => {}
                () = tokio::time::sleep_until(deadline) => {
                    eprintln!("stdin still open after {:?}; ending the run", args.duration);
                }
            }
        }
        None => tokio::time::sleep_until(deadline).await,
    }
    let ended = started.elapsed();
    shared.stop.store(true, Ordering::Relaxed);
    // Requests in flight finish within the request timeout; the windows
    // they land in are past the end and not reported.
    let _ = tokio::time::timeout(args.timeout * 2, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();

    let full = (ended.as_nanos() / args.window.as_nanos()) as usize;
    let marks = std::mem::take(&mut *marks.lock().unwrap_or_else(|p| p.into_inner()));
    let errors = std::mem::take(&mut *shared.errors.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Report {
        connections: args.connections,
        width: shared.windows.width(),
        windows: shared.windows.read(full),
        versions: args.versions.clone(),
        swaps: report::swaps(&marks, started),
        near: args.near,
        errors,
    })
}

/// The bench script starts swapping once it sees this line, so it goes out
/// unbuffered.
fn announce(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
