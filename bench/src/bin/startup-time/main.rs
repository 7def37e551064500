//! Times a server's start-up: from spawning it to the first line on its
//! stdout, which Snow prints once it listens. The server is killed once the
//! line is in, so runs can follow each other on the same port or cache.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use snow_bench::duration::parse_duration;

#[derive(Parser)]
#[command(about = "Time from spawning a command to its first line on stdout")]
struct Args {
    /// Give up, and kill the command, after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    timeout: Duration,
    /// Text the first line must contain; anything else is an error, since
    /// it would mean the timing is of something other than readiness.
    #[arg(long, default_value = "listening on")]
    expect: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (program, rest) = args.command.split_first().context("no command given")?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {program}"))?;
    let stdout = child.stdout.take().context("child has no stdout")?;

    // A thread does the blocking read so the wait can have a deadline.
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = line_tx.send((read.map(|_| line), Instant::now()));
    });
    let first = line_rx.recv_timeout(args.timeout);

    // SIGKILL is enough: the cache is written before the server listens, so
    // nothing is lost, and a graceful drain would only slow the next run.
    let _ = child.kill();
    let _ = child.wait();

    let (line, at) = match first {
        Ok((Ok(line), at)) => (line, at),
        Ok((Err(err), _)) => bail!("reading the first line: {err}"),
        Err(_) => bail!("no line within {:?}", args.timeout),
    };
    let line = line.trim_end();
    if line.is_empty() {
        bail!("the command exited without printing a line");
    }
    if !line.contains(&args.expect) {
        bail!("first line does not contain {:?}: {line:?}", args.expect);
    }
    let ms = at.duration_since(started).as_secs_f64() * 1000.0;
    println!("first_line_ms={ms:.2}");
    Ok(())
}
