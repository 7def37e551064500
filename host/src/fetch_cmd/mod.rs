//! `snow fetch`: fetches many URLs at once through the host's outbound
//! client and reports how each went — a quick check of an upstream, and a
//! load test of the client itself.
//!
//! Every request runs on one thread (a current-thread tokio runtime), at most
//! `--concurrency` in flight; a line is printed as each completes, a summary
//! at the end (see `report` for both formats).

mod report;

use std::io::BufRead;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use tokio::task::{JoinSet, LocalSet};

use crate::outbound::{Client, ClientConfig, FetchRequest, ProxyConfig};
use report::{Outcome, Reporter};

/// Exit status for arguments that cannot be used; clap exits with the same.
const USAGE: u8 = 2;

#[derive(Args)]
#[command(after_help = "\
Prints `STATUS SIZE TIME URL` (e.g. `200 1234B 12ms http://...`) or \
`ERR KIND TIME URL (DETAIL)` as each URL completes, then a summary on stderr. \
With one URL, and neither --json nor -o, the body goes to stdout and the line \
to stderr.

Proxies come from HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and NO_PROXY (or their \
lower-case forms); only http:// proxies are supported.

Exit status: 0 when every URL answered below 400, 1 otherwise, 2 when the \
arguments (or a proxy variable) cannot be used.")]
pub struct FetchArgs {
    /// URLs to fetch; `-` reads more from stdin, one per line (blank lines
    /// and `#` comments are skipped).
    #[arg(value_name = "URL", required = true)]
    urls: Vec<String>,
    /// Requests in flight at once.
    #[arg(short, long, default_value = "50")]
    concurrency: NonZeroUsize,
    /// Limit for each whole exchange, e.g. `500ms`, `30s`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Request method [default: GET, or POST with --data].
    #[arg(short = 'X', long = "request", value_name = "METHOD", value_parser = parse_method)]
    method: Option<String>,
    /// A request header, `NAME: VALUE`; may be repeated.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, Vec<u8>)>,
    /// Request body; `@FILE` sends the contents of FILE.
    #[arg(short, long, value_name = "DATA")]
    data: Option<String>,
    /// Write each response body to DIR/<index>-<host and path>, the index
    /// counting URLs from 1 (DIR is created if missing).
    #[arg(short, long = "output-dir", value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// One JSON object per line on stdout instead of text, the summary
    /// included; bodies are then only written with -o.
    #[arg(long)]
    json: bool,
    /// PEM file of CA certificates to trust besides the built-in roots.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Follow redirects instead of reporting them.
    #[arg(short = 'L', long = "location")]
    follow_redirects: bool,
}

/// Runs the command; the exit status is 0 when every URL answered below
/// 400, 1 otherwise, 2 when the arguments cannot be used.
pub fn main(args: FetchArgs) -> ExitCode {
    let plan = match Plan::new(args) {
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("snow fetch: {err:#}");
            return ExitCode::from(USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("snow fetch: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match LocalSet::new().block_on(&runtime, plan.run()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            // A reader that went away (`| head`) needs no explanation.
            if err.kind() != std::io::ErrorKind::BrokenPipe {
                eprintln!("snow fetch: writing output: {err}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The arguments, resolved: stdin and `@FILE` read, the directory made,
/// the client built with the CA file and the environment's proxies.
struct Plan {
    client: Client,
    urls: Vec<String>,
    method: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    concurrency: usize,
    timeout: Duration,
    follow_redirects: bool,
    reporter: Reporter,
}

impl Plan {
    fn new(args: FetchArgs) -> Result<Plan> {
        let mut urls = Vec::new();
        for url in args.urls {
            if url == "-" {
                urls.extend(read_url_list(std::io::stdin().lock())?);
            } else {
                urls.push(url);
            }
        }
        anyhow::ensure!(!urls.is_empty(), "no URL to fetch");
        let body = match args.data.as_deref() {
            Some(data) => match data.strip_prefix('@') {
                Some(path) => std::fs::read(path).with_context(|| format!("reading {path}"))?,
                None => data.as_bytes().to_vec(),
            },
            None => Vec::new(),
        };
        let method = args.method.unwrap_or_else(|| {
            let method = if args.data.is_some() { "POST" } else { "GET" };
            method.to_string()
        });
        if let Some(dir) = &args.output_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let proxy = ProxyConfig::from_env().map_err(anyhow::Error::msg)?;
        let client = Client::new(ClientConfig {
            ca_file: args.cacert,
            proxy,
            ..ClientConfig::default()
        })?;
        let reporter = Reporter::new(urls.len(), args.json, args.output_dir);
        Ok(Plan {
            client,
            urls,
            method,
            headers: args.headers,
            body,
            concurrency: args.concurrency.get(),
            timeout: args.timeout,
            follow_redirects: args.follow_redirects,
            reporter,
        })
    }

    /// Fetches everything, reporting as requests complete; true when every
    /// one answered below 400. Only failing to write the report is an error.
    async fn run(mut self) -> std::io::Result<bool> {
        let started = Instant::now();
        let mut pending = self.urls.iter().enumerate();
        let mut in_flight = JoinSet::new();
        loop {
            while in_flight.len() < self.concurrency {
                let Some((index, url)) = pending.next() else {
                    break;
                };
                let request = FetchRequest {
                    method: self.method.clone(),
                    url: url.clone(),
                    headers: self.headers.clone(),
                    body: self.body.clone(),
                    timeout: Some(self.timeout),
                    follow_redirects: self.follow_redirects,
                };
                let client = self.client.clone();
                in_flight.spawn_local(async move {
                    let start = Instant::now();
                    let result = client.fetch(request).await;
                    (index, start.elapsed(), result)
                });
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            // Tasks are never aborted, so a join error is a panic in the
            // client: it propagates like any other.
            let (index, elapsed, result) =
                joined.unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
            let outcome = Outcome::from_result(result);
            self.reporter
                .completed(index, &self.urls[index], &outcome, elapsed)?;
        }
        self.reporter.finish(started.elapsed())
    }
}

/// URLs from a list, one per line; blank lines and `#` comments skipped.
fn read_url_list(input: impl BufRead) -> Result<Vec<String>> {
    let mut urls = Vec::new();
    for line in input.lines() {
        let line = line.context("reading URLs from stdin")?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            urls.push(line.to_string());
        }
    }
    Ok(urls)
}

/// `NAME: VALUE`, the name an HTTP token, the value without surrounding
/// whitespace.
fn parse_header(text: &str) -> Result<(String, Vec<u8>), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not `NAME: VALUE`"))?;
    let name = name.trim();
    if !is_token(name) {
        return Err(format!("`{name}` is not a header name"));
    }
    if value.contains(['\r', '\n']) {
        return Err(format!("the value of `{name}` contains a line break"));
    }
    Ok((name.to_string(), value.trim().as_bytes().to_vec()))
}

fn parse_method(text: &str) -> Result<String, String> {
    if is_token(text) {
        Ok(text.to_string())
    } else {
        Err(format!("`{text}` is not a method"))
    }
}

/// An RFC 9110 token: what header names and methods are made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_or_explain() {
        assert_eq!(
            parse_header("X-Token:  abc def "),
            Ok(("X-Token".to_string(), b"abc def".to_vec()))
        );
        assert_eq!(
            parse_header("Empty:"),
            Ok(("Empty".to_string(), Vec::new()))
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": value").is_err());
        assert!(parse_header("bad name: value").is_err());
        assert!(parse_header("X: a\r\nInjected: b").is_err());
    }

    #[test]
    fn url_lists_skip_blanks_and_comments() {
        let input = "# upstreams\n\nhttp://a/\n  http://b/x  \n# done\n";
        let urls = read_url_list(input.as_bytes()).expect("a list");
        assert_eq!(urls, ["http://a/", "http://b/x"]);
    }

    #[test]
    fn methods_are_tokens() {
        assert_eq!(parse_method("PATCH"), Ok("PATCH".to_string()));
        assert!(parse_method("GET /").is_err());
        assert!(parse_method("").is_err());
    }
}
