//! Times a server's start-up: from spawning it to the first line on its
//! stdout, which Snow prints once it listens (`first_line_ms`); with
//! `--request`, to the first answer to that path from the address the line
//! names (`first_answer_ms`); with `--until-log`, to the first stderr line
//! holding that text (`log_ms`), e.g. a background compile finishing. The
//! server is then killed, so runs can follow each other on one cache.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use snow_bench::duration::parse_duration;

#[derive(Parser)]
#[command(about = "Time from spawning a server to its first line, answer and log line")]
struct Args {
    /// Give up, and kill the command, after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    timeout: Duration,
    /// Text the first line must contain; anything else is an error, since
    /// it would mean the timing is of something other than readiness.
    #[arg(long, default_value = "listening on")]
    expect: String,
    /// Path to GET from the `http://ADDR` in the first line; timed to its
    /// first 200.
    #[arg(long)]
    request: Option<String>,
    /// Text of a stderr line to wait for (stderr is still passed through).
    #[arg(long)]
    until_log: Option<String>,
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
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {program}"))?;
    let result = measure(&args, &mut child, started);
    // SIGKILL is enough: a graceful drain would only slow the next run.
    let _ = child.kill();
    let _ = child.wait();
    for (name, at) in result? {
        println!(
            "{name}={:.2}",
            at.duration_since(started).as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

fn measure(
    args: &Args,
    child: &mut Child,
    started: Instant,
) -> anyhow::Result<Vec<(&'static str, Instant)>> {
    let deadline = started + args.timeout;
    let stdout = child.stdout.take().context("child has no stdout")?;
    let stderr = child.stderr.take().context("child has no stderr")?;
    let (line_tx, line_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = line_tx.send((read.map(|_| line), Instant::now()));
    });
    let (log_tx, log_rx) = mpsc::channel();
    let wanted = args.until_log.clone();
    thread::spawn(move || pass_stderr(stderr, wanted, log_tx));

    let (line, at) = match line_rx.recv_timeout(remaining(deadline)) {
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
    let mut times = vec![("first_line_ms", at)];
    if let Some(path) = &args.request {
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .with_context(|| format!("no http:// address in {line:?}"))?;
        times.push(("first_answer_ms", first_answer(addr, path, deadline)?));
    }
    if args.until_log.is_some() {
        match log_rx.recv_timeout(remaining(deadline)) {
            Ok(at) => times.push(("log_ms", at)),
            Err(_) => bail!("no stderr line with {:?}", args.until_log),
        }
    }
    Ok(times)
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Copies the server's stderr to ours, and reports when a line holds `wanted`.
fn pass_stderr(stderr: impl Read, wanted: Option<String>, found: mpsc::Sender<Instant>) {
    let mut out = std::io::stderr();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { return };
        let _ = writeln!(out, "{line}");
        if wanted.as_deref().is_some_and(|w| line.contains(w)) {
            let _ = found.send(Instant::now());
        }
    }
}

/// When `GET path` first answered 200; the server listens already, so a
/// refused connection is an error, not a reason to retry.
fn first_answer(addr: &str, path: &str, deadline: Instant) -> anyhow::Result<Instant> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(remaining(deadline).max(Duration::from_millis(1))))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).context("reading the answer")?;
    let at = Instant::now();
    if &head[..9] != b"HTTP/1.1 " || &head[9..12] != b"200" {
        bail!("{path} answered {:?}", String::from_utf8_lossy(&head));
    }
    Ok(at)
}
