//! Times hot swaps: replaces the module a server runs with another version,
//! by file or through the admin API, and polls the server on one keep-alive
//! connection until a response comes from the new version. Each version
//! answers its own name, so the response body tells which one served it.

mod change;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use snow_bench::duration::parse_duration;
use snow_bench::keep_alive::KeepAlive;
use snow_bench::stats::median;
use snow_bench::target::Target;
use tokio::time::Instant;

use change::{Destination, Via};

#[derive(Parser)]
#[command(about = "Time from replacing a module to the first response from the new version")]
struct Args {
    /// Route polled on loopback; each version answers it with its name.
    #[arg(long, default_value = "http://127.0.0.1:8013/version/")]
    url: String,
    /// How each new version is delivered.
    #[arg(long, value_enum)]
    via: Via,
    /// The module file the server watches (for rename and overwrite).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Admin URL the wasm is PUT to, e.g. http://127.0.0.1:9090/modules/app.
    #[arg(long)]
    admin: Option<String>,
    /// NAME=PATH: a version's wasm and the body it answers with. Give two or
    /// more; each change moves to the next after the one being served.
    #[arg(long = "version", value_parser = parse_version, required = true)]
    versions: Vec<(String, PathBuf)>,
    /// Number of changes.
    #[arg(long, default_value_t = 10)]
    changes: usize,
    /// Wait after each change, so the next starts on a settled server.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pause: Duration,
    /// A change whose new version has not answered by then counts as failed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    timeout: Duration,
}

fn parse_version(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => {
            Ok((name.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!("expected NAME=PATH, got {text:?}")),
    }
}

/// One version: the body it answers with and its wasm.
struct Version {
    name: String,
    wasm: Vec<u8>,
}

/// What one change measured.
struct Timing {
    first_new_ms: f64,
    put_ms: Option<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.versions.len() >= 2, "give at least two --version");
    let versions = args
        .versions
        .iter()
        .map(|(name, path)| {
            let wasm =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Ok(Version {
                name: name.clone(),
                wasm,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let target = Target::parse(&args.url)?;
    let destination = Destination {
        file: args.file.clone(),
        admin: args.admin.as_deref().map(Target::parse).transpose()?,
    };
    // One thread: the poller and a PUT in flight are all there is, and a
    // second busy thread would take CPU from the server being measured.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&args, &versions, &target, &destination))
}

async fn run(
    args: &Args,
    versions: &[Version],
    target: &Target,
    destination: &Destination,
) -> anyhow::Result<()> {
    let path = target.path.as_deref().unwrap_or("/version/");
    let request = target.get(path, false);
    let mut conn = KeepAlive::new(target.addr, Duration::from_secs(5));
    let mut current = served(&mut conn, &request).await?;
    let mut timings = Vec::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut polls = 0u64;
    for i in 1..=args.changes {
        let at = versions
            .iter()
            .position(|v| v.name == current)
            .with_context(|| format!("the server answers {current:?}, not a known version"))?;
        let next = &versions[(at + 1) % versions.len()];
        let started = change::start(args.via, destination, &next.wasm)
            .with_context(|| format!("starting change {i}"))?;
        let deadline = started.at + args.timeout;
        let first_new = loop {
            if Instant::now() >= deadline {
                break None;
            }
            polls += 1;
            match conn.exchange(&request).await {
                Ok(reply) if reply.status != 200 => {
                    *failures
                        .entry(format!("status_{}", reply.status))
                        .or_default() += 1;
                }
                Ok(reply) if reply.body == next.name.as_bytes() => break Some(Instant::now()),
                Ok(reply) if reply.body == current.as_bytes() => {}
                Ok(_) => *failures.entry("unexpected_body".into()).or_default() += 1,
                Err(label) => *failures.entry(label).or_default() += 1,
            }
        };
        let put = match started.put {
            Some(put) => Some(put.await.context("the PUT task failed")?),
            None => None,
        };
        let put_ms = match put {
            Some(Ok((200, took))) => Some(ms(took)),
            Some(Ok((status, _))) => {
                *failures.entry(format!("put_status_{status}")).or_default() += 1;
                None
            }
            Some(Err(label)) => {
                *failures.entry(label).or_default() += 1;
                None
            }
            None => None,
        };
        let Some(first_new) = first_new else {
            *failures.entry("change_timeout".into()).or_default() += 1;
            eprintln!(
                "change {i}: {current} -> {}: no response from it",
                next.name
            );
            // The server may still be on the old version; carry on from
            // whatever it serves now.
            current = served(&mut conn, &request).await?;
            continue;
        };
        let timing = Timing {
            first_new_ms: ms(first_new.duration_since(started.at)),
            put_ms,
        };
        eprintln!(
            "change {i}: {current} -> {}: {:.1} ms{}",
            next.name,
            timing.first_new_ms,
            timing
                .put_ms
                .map(|p| format!(" (PUT answered in {p:.1} ms)"))
                .unwrap_or_default()
        );
        timings.push(timing);
        current = next.name.clone();
        tokio::time::sleep(args.pause).await;
    }
    println!("{}", summary(args, &timings, polls, &failures));
    Ok(())
}

/// The version the server answers with now; it must answer.
async fn served(conn: &mut KeepAlive, request: &[u8]) -> anyhow::Result<String> {
    match conn.exchange(request).await {
        Ok(reply) if reply.status == 200 => Ok(String::from_utf8_lossy(&reply.body).into_owned()),
        Ok(reply) => bail!("the server answered {} to the version probe", reply.status),
        Err(label) => bail!("the version probe failed: {label}"),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One line of `key=value` pairs so scripts can pick fields out with a split.
/// Missing measurements print as `na`.
fn summary(
    args: &Args,
    timings: &[Timing],
    polls: u64,
    failures: &BTreeMap<String, usize>,
) -> String {
    let firsts: Vec<f64> = timings.iter().map(|t| t.first_new_ms).collect();
    let puts: Vec<f64> = timings.iter().filter_map(|t| t.put_ms).collect();
    let max = |v: &[f64]| v.iter().copied().reduce(f64::max);
    let all: Vec<String> = firsts.iter().map(|v| format!("{v:.1}")).collect();
    let failed: usize = failures.values().sum();
    let errors = if failures.is_empty() {
        "none".to_string()
    } else {
        let kinds: Vec<String> = failures.iter().map(|(k, n)| format!("{k}:{n}")).collect();
        kinds.join(",")
    };
    format!(
        "changes={} ok={} median_ms={} max_ms={} put_median_ms={} put_max_ms={} polls={polls} failed={failed} all_ms={} errors={errors}",
        args.changes,
        timings.len(),
        or_na(median(&firsts)),
        or_na(max(&firsts)),
        or_na(median(&puts)),
        or_na(max(&puts)),
        if all.is_empty() { "na".into() } else { all.join(",") },
    )
}

fn or_na(value: Option<f64>) -> String {
    value.map_or_else(|| "na".into(), |v| format!("{v:.1}"))
}
