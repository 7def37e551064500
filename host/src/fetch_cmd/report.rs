//! What `snow fetch` prints, and where.
//!
//! A line per URL as it completes, on stdout:
//!
//! ```text
//! 200 1234B 12ms http://example.test/a
//! ERR timeout 30000ms http://example.test/slow
//! ERR connect 0ms http://127.0.0.1:1/ (connection refused)
//! ```
//!
//! then a summary on stderr:
//!
//! ```text
//! 3 total, 1 ok, 0 http errors, 2 failed in 30.001s (0.1 req/s)
//! ```
//!
//! With `--json` both are JSON objects, one per line, all on stdout:
//! `{"url","status","bytes","ms"}`, `{"url","error","detail","ms"}` and
//! `{"total","ok","http_errors","failed","ms","per_second"}`.
//!
//! With a single URL, no `--json` and no `-o`, the body goes to stdout and
//! the line to stderr, so `snow fetch URL > file` saves just the body.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::outbound::{FetchError, FetchResponse};

/// Longest host-and-path part of an output file name; the index in front
/// keeps names unique, so the rest only has to be recognisable.
const MAX_NAME: usize = 100;

/// How one fetch ended.
pub enum Outcome {
    Response(FetchResponse),
    Failed {
        /// The WIT `fetch-error` case: `dns`, `connect`, `timeout`...
        kind: &'static str,
        detail: Option<String>,
    },
}

impl Outcome {
    pub fn from_result(result: Result<FetchResponse, FetchError>) -> Outcome {
        match result {
            Ok(response) => Outcome::Response(response),
            Err(err) => {
                let (kind, detail) = describe(err);
                Outcome::Failed { kind, detail }
            }
        }
    }
}

/// The error's WIT case name and explanation, if it carries one.
fn describe(err: FetchError) -> (&'static str, Option<String>) {
    match err {
        FetchError::Dns(detail) => ("dns", Some(detail)),
        FetchError::Connect(detail) => ("connect", Some(detail)),
        FetchError::Timeout => ("timeout", None),
        FetchError::Tls(detail) => ("tls", Some(detail)),
        FetchError::Protocol(detail) => ("protocol", Some(detail)),
        FetchError::TooLarge => ("too-large", None),
        FetchError::Denied => ("denied", None),
        FetchError::Invalid(detail) => ("invalid", Some(detail)),
    }
}

/// Counts for the summary.
#[derive(Default)]
struct Tally {
    total: usize,
    /// Answered below 400.
    ok: usize,
    /// Answered 400 or above.
    http_errors: usize,
    /// No response at all.
    failed: usize,
}

impl Tally {
    fn record(&mut self, outcome: &Outcome) {
        self.total += 1;
        match outcome {
            Outcome::Response(response) if response.status < 400 => self.ok += 1,
            Outcome::Response(_) => self.http_errors += 1,
            Outcome::Failed { .. } => self.failed += 1,
        }
    }
}

#[derive(Serialize)]
struct ResponseLine<'a> {
    url: &'a str,
    status: u16,
    bytes: usize,
    ms: u64,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    url: &'a str,
    error: &'a str,
    detail: Option<&'a str>,
    ms: u64,
}

#[derive(Serialize)]
struct SummaryLine {
    total: usize,
    ok: usize,
    http_errors: usize,
    failed: usize,
    ms: u64,
    per_second: f64,
}

pub struct Reporter {
    json: bool,
    output_dir: Option<PathBuf>,
    /// Digits of the largest index, so output files sort in URL order.
    index_width: usize,
    /// One URL and nowhere else for its body: stdout gets the body alone.
    body_to_stdout: bool,
    tally: Tally,
    /// Bodies that could not be written under `-o`.
    unsaved: usize,
}

impl Reporter {
    pub fn new(urls: usize, json: bool, output_dir: Option<PathBuf>) -> Reporter {
        Reporter {
            json,
            body_to_stdout: urls == 1 && !json && output_dir.is_none(),
            output_dir,
            index_width: urls.to_string().len(),
            tally: Tally::default(),
            unsaved: 0,
        }
    }

    /// Reports the fetch of the `index`th URL (from 0). Only failing to
    /// write stdout or stderr is an error; a body that cannot be saved is
    /// reported and makes the run fail.
    pub fn completed(
        &mut self,
        index: usize,
        url: &str,
        outcome: &Outcome,
        elapsed: Duration,
    ) -> std::io::Result<()> {
        self.tally.record(outcome);
        let ms = millis(elapsed);
        let line = if self.json {
            json_line(url, outcome, ms)
        } else {
            text_line(url, outcome, ms)
        };
        if self.body_to_stdout {
            writeln!(std::io::stderr(), "{line}")?;
        } else {
            writeln!(std::io::stdout(), "{line}")?;
        }
        let Outcome::Response(response) = outcome else {
            return Ok(());
        };
        if let Some(dir) = &self.output_dir {
            let path = dir.join(file_name(index, self.index_width, url));
            if let Err(err) = std::fs::write(&path, &response.body) {
                self.unsaved += 1;
                writeln!(
                    std::io::stderr(),
                    "snow fetch: writing {}: {err}",
                    path.display()
                )?;
            }
        } else if self.body_to_stdout {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&response.body)?;
            stdout.flush()?;
        }
        Ok(())
    }

    /// Prints the summary; true when every URL answered below 400 and
    /// every body was saved.
    pub fn finish(self, wall: Duration) -> std::io::Result<bool> {
        let Tally {
            total,
            ok,
            http_errors,
            failed,
        } = self.tally;
        let per_second = total as f64 / wall.as_secs_f64().max(1e-9);
        if self.json {
            let summary = SummaryLine {
                total,
                ok,
                http_errors,
                failed,
                ms: millis(wall),
                per_second: (per_second * 10.0).round() / 10.0,
            };
            writeln!(std::io::stdout(), "{}", to_json(&summary))?;
        } else {
            writeln!(
                std::io::stderr(),
                "{total} total, {ok} ok, {http_errors} http errors, {failed} failed \
                 in {:.3}s ({per_second:.1} req/s)",
                wall.as_secs_f64()
            )?;
        }
        Ok(ok == total && self.unsaved == 0)
    }
}

fn text_line(url: &str, outcome: &Outcome, ms: u64) -> String {
    match outcome {
        Outcome::Response(response) => {
            format!("{} {}B {ms}ms {url}", response.status, response.body.len())
        }
        Outcome::Failed { kind, detail: None } => format!("ERR {kind} {ms}ms {url}"),
        Outcome::Failed {
            kind,
            detail: Some(detail),
        } => format!("ERR {kind} {ms}ms {url} ({detail})"),
    }
}

fn json_line(url: &str, outcome: &Outcome, ms: u64) -> String {
    match outcome {
        Outcome::Response(response) => to_json(&ResponseLine {
            url,
            status: response.status,
            bytes: response.body.len(),
            ms,
        }),
        Outcome::Failed { kind, detail } => to_json(&ErrorLine {
            url,
            error: kind,
            detail: detail.as_deref(),
            ms,
        }),
    }
}

/// These records hold only strings and numbers, which always serialize.
fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// `<index>-<host and path>`, the index counted from 1 and zero-padded, the
/// rest reduced to characters safe in any file name.
fn file_name(index: usize, width: usize, url: &str) -> String {
    let place = match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or_default();
            match parsed.port() {
                Some(port) => format!("{host}:{port}{}", parsed.path()),
                None => format!("{host}{}", parsed.path()),
            }
        }
        // Unparseable URLs fail before any body arrives; this only keeps
        // the function total.
        Err(_) => url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .to_string(),
    };
    let mut name = String::new();
    for c in place.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
            c
        } else {
            '_'
        };
        // Runs of separators collapse, so `/a//b/` stays readable.
        if !(c == '_' && (name.is_empty() || name.ends_with('_'))) {
            name.push(c);
        }
        if name.len() >= MAX_NAME {
            break;
        }
    }
    let name = name.trim_end_matches('_');
    format!("{:0width$}-{name}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_host_and_path_only() {
        assert_eq!(
            file_name(6, 3, "http://127.0.0.1:4000/ok/7?x=1"),
            "007-127.0.0.1_4000_ok_7"
        );
        assert_eq!(file_name(0, 1, "https://example.com/"), "1-example.com");
        assert_eq!(file_name(9, 2, "http://h/a//b/../c%20d"), "10-h_a_c_20d");
        assert_eq!(file_name(0, 1, "not a url/.."), "1-not_a_url_..");
        let long = format!("http://h/{}", "x".repeat(500));
        assert!(file_name(0, 1, &long).len() <= MAX_NAME + 2);
    }

    #[test]
    fn failures_name_the_wit_case() {
        let timeout = Outcome::from_result(Err(FetchError::Timeout));
        assert_eq!(
            text_line("http://h/slow", &timeout, 30000),
            "ERR timeout 30000ms http://h/slow"
        );
        let refused = Outcome::from_result(Err(FetchError::Connect("refused".into())));
        assert_eq!(
            json_line("http://h/", &refused, 1),
            r#"{"url":"http://h/","error":"connect","detail":"refused","ms":1}"#
        );
        let large = Outcome::from_result(Err(FetchError::TooLarge));
        assert_eq!(
            json_line("http://h/", &large, 2),
            r#"{"url":"http://h/","error":"too-large","detail":null,"ms":2}"#
        );
    }
}
