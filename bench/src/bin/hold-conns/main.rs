//! Holds connections open the way hostile clients do, stalled mid-head
//! (slowloris) or idle after one keep-alive request, so the bench can measure
//! what they cost the clients that do send requests.

mod conn;
mod tally;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use snow_bench::duration::parse_duration;
use snow_bench::fd_limit::raise_nofile_limit_for;
use snow_bench::target::Target;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use conn::{Kind, Plan};
use tally::Tally;

#[derive(Parser)]
#[command(
    about = "Hold stalled and idle connections open on a server, then report how many survived"
)]
struct Args {
    /// Server URL on loopback. Without a path, connections use `/home/`.
    #[arg(long, default_value = "http://127.0.0.1:8013")]
    url: String,
    /// Connections that send a partial request head and then nothing.
    #[arg(long, default_value_t = 1000)]
    stalled: usize,
    /// Keep-alive connections that complete one GET and then stay idle.
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// How long to hold them once all are in place (e.g. 30s, 1500ms, 2m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    hold: Duration,
    /// Stalled connections send one more header byte this often; a bare
    /// `--drip` means every 5s. Without it they send nothing more.
    #[arg(long, num_args = 0..=1, default_missing_value = "5s", value_parser = parse_duration)]
    drip: Option<Duration>,
    /// Connections opened per second while ramping up.
    #[arg(long, default_value_t = 5000)]
    ramp_per_sec: u64,
    /// Connections not in place by then count as failed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    setup_timeout: Duration,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.ramp_per_sec > 0, "--ramp-per-sec must be at least 1");
    let target = Target::parse(&args.url)?;
    let total = args.stalled + args.idle;
    raise_nofile_limit_for(total)?;
    // One thread: the connections mostly wait, and a second busy thread would
    // take CPU from the server and the load generator being measured.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let tally = runtime.block_on(run(&args, &target))?;
    println!("{tally}");
    Ok(())
}

async fn run(args: &Args, target: &Target) -> anyhow::Result<Tally> {
    let path = target.path.as_deref().unwrap_or("/home/");
    let started = Instant::now();
    let plan = Arc::new(Plan {
        addr: target.addr,
        partial: target.head_start(path).into_bytes(),
        request: target.get(path, false),
        drip: args.drip,
        setup_deadline: started + args.setup_timeout,
    });
    let (settled_tx, mut settled_rx) = mpsc::unbounded_channel();
    let (end_tx, end_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let kinds = std::iter::repeat_n(Kind::Stalled, args.stalled)
        .chain(std::iter::repeat_n(Kind::Idle, args.idle));
    let total = args.stalled + args.idle;
    let mut tally = Tally::default();
    let mut opened = 0usize;
    let mut kinds = kinds.peekable();
    while kinds.peek().is_some() && Instant::now() < plan.setup_deadline {
        // Timers tick at 1 ms, so open in batches at the pace the rate allows
        // by now rather than one connection per tick.
        let due = (started.elapsed().as_secs_f64() * args.ramp_per_sec as f64).ceil() as usize;
        while opened < due {
            let Some(kind) = kinds.next() else { break };
            let (plan, settled, end) = (Arc::clone(&plan), settled_tx.clone(), end_rx.clone());
            tasks.spawn(async move { (kind, conn::hold(&plan, kind, settled, end).await) });
            opened += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(settled_tx);
    if opened < total {
        tally.add_errors("not_opened", total - opened);
    }

    // Every task reports once, in place or failed, and then drops its sender,
    // so this ends by itself.
    while let Some((kind, in_place)) = settled_rx.recv().await {
        if in_place {
            tally.opened(kind);
        }
    }
    tally.set_up_in(started.elapsed());
    announce(&tally.ready_line())?;

    tokio::time::sleep(args.hold).await;
    let _ = end_tx.send(true);
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((kind, outcome)) => tally.finished(kind, outcome),
            Err(_) => tally.add_errors("task_panicked", 1),
        }
    }
    Ok(tally)
}

/// The bench script waits for this line before measuring, so it goes out
/// unbuffered.
fn announce(line: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}
