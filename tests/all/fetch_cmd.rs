//! `snow fetch` end to end: the real binary against a local upstream that
//! answers, refuses, stalls and hangs up.

use crate::common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::PATIENCE;

/// An HTTP/1.1 upstream on a loopback port, a thread per connection:
/// - `/ok/N`     — 200 with body `ok N`;
/// - `/missing`  — 404;
/// - `/stall`    — reads the request and never answers;
/// - `/drop`     — closes the connection without answering;
/// - `/redirect` — 302 to `/ok/redirected`;
/// - `/echo`     — 200 with the method, the `x-test` header and the body,
///   one per line.
fn upstream() -> SocketAddr {
    upstream_counting_stalls().0
}

/// The upstream, and the number of `/stall` requests it has received.
fn upstream_counting_stalls() -> (SocketAddr, Arc<AtomicUsize>) {
    // Hundreds of connections at once, on both ends (the child inherits
    // the raised limit).
    let _ = rlimit::increase_nofile_limit(8192);
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the upstream");
    let addr = listener.local_addr().expect("upstream address");
    let stalls = Arc::new(AtomicUsize::new(0));
    let counter = stalls.clone();
    thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let counter = counter.clone();
            thread::spawn(move || serve_connection(stream, &counter));
        }
    });
    (addr, stalls)
}

fn serve_connection(stream: TcpStream, stalls: &AtomicUsize) {
    let _ = stream.set_read_timeout(Some(PATIENCE));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    // Keep-alive: the client may send many requests on one connection.
    while let Some((method, path, headers, body)) = read_request(&mut reader) {
        let (status, extra, body) = match path.as_str() {
            "/missing" => ("404 Not Found", "", b"missing".to_vec()),
            "/stall" => {
                stalls.fetch_add(1, Ordering::SeqCst);
                // Hold the connection until the client gives up on it.
                let _ = reader.read(&mut [0; 1]);
                return;
            }
            "/drop" => return,
            "/redirect" => ("302 Found", "location: /ok/redirected\r\n", Vec::new()),
            "/echo" => {
                let test = headers.get("x-test").cloned().unwrap_or_default();
                let mut echo = format!("{method}\n{test}\n").into_bytes();
                echo.extend_from_slice(&body);
                ("200 OK", "", echo)
            }
            path => match path.strip_prefix("/ok/") {
                Some(n) => ("200 OK", "", format!("ok {n}").into_bytes()),
                None => ("404 Not Found", "", Vec::new()),
            },
        };
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n",
            body.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(&body).is_err() {
            return;
        }
    }
}

type Request = (String, String, HashMap<String, String>, Vec<u8>);

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let headers: HashMap<String, String> = common::read_header_lines(reader)?
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect();
    let length = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, headers, body))
}

/// A port nothing listens on: bound, then released.
fn refused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding");
    listener.local_addr().expect("address").port()
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn stdout_lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    fn summary(&self) -> &str {
        self.stderr
            .lines()
            .find(|line| line.contains(" total, "))
            .unwrap_or_else(|| panic!("no summary; stderr: {}", self.stderr))
    }
}

/// The variables `snow fetch` takes proxies from.
const PROXY_VARS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// Runs `snow fetch ARGS`, feeding `stdin`, within `PATIENCE`, with no
/// proxy in its environment: the upstreams are reached directly.
fn snow_fetch(args: &[&str], stdin: &str) -> Run {
    snow_fetch_with(args, stdin, &[])
}

/// As [`snow_fetch`], with these proxy variables set.
fn snow_fetch_with(args: &[&str], stdin: &str, vars: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_snow"));
    for var in PROXY_VARS {
        command.env_remove(var);
    }
    command.envs(vars.iter().copied());
    let mut child = command
        .arg("fetch")
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning snow fetch");
    let input = stdin.to_string();
    let mut pipe = child.stdin.take().expect("piped stdin");
    let feeder = thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let until = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("snow fetch {args:?} did not finish");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = feeder.join();
    Run {
        code: status.code().expect("an exit code"),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// 200 URLs: 150 answered, 30 missing, 10 stalled, 9 dropped, 1 refused.
fn mixed_urls(addr: SocketAddr) -> Vec<String> {
    let mut urls: Vec<String> = (0..200)
        .map(|i| match i % 20 {
            0..=14 => format!("http://{addr}/ok/{i}"),
            15..=17 => format!("http://{addr}/missing"),
            18 => format!("http://{addr}/stall"),
            _ => format!("http://{addr}/drop"),
        })
        .collect();
    urls[199] = format!("http://127.0.0.1:{}/refused", refused_port());
    urls
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("fetch-cmd-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn mixed_batch_reports_every_url_then_fails() {
    let addr = upstream();
    let urls = mixed_urls(addr);
    let mut args = vec!["--timeout", "1s", "-c", "50"];
    args.extend(urls.iter().map(String::as_str));
    let run = snow_fetch(&args, "");
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let lines = run.stdout_lines();
    assert_eq!(lines.len(), 200, "stdout: {}", run.stdout);

    let mut seen = HashMap::new();
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        let url = *fields
            .get(3)
            .unwrap_or_else(|| panic!("short line {line:?}"));
        *seen.entry(url).or_insert(0) += 1;
        let path = url.rsplit('/').next().unwrap_or_default();
        let expected: &[&str] = match path {
            "missing" => &["404", "7B"],
            "stall" => &["ERR", "timeout"],
            "drop" => &["ERR", "protocol"],
            "refused" => &["ERR", "connect"],
            n => {
                let n = n.parse::<usize>().expect("an /ok/N URL");
                assert_eq!(fields[1], format!("{}B", format!("ok {n}").len()), "{line}");
                &["200"]
            }
        };
        assert_eq!(&fields[..expected.len()], expected, "{line}");
        let ms: u64 = fields[2]
            .strip_suffix("ms")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("no time in {line:?}"));
        if path == "stall" {
            assert!((1000..10_000).contains(&ms), "{line}");
        }
    }
    // Every URL reported once (duplicates of /missing etc. counted as such).
    for url in &urls {
        let expected = urls.iter().filter(|u| *u == url).count();
        assert_eq!(seen.get(url.as_str()), Some(&expected), "{url}");
    }

    let summary = run.summary();
    assert!(
        summary.starts_with("200 total, 150 ok, 30 http errors, 20 failed in "),
        "{summary}"
    );
    assert!(summary.ends_with(" req/s)"), "{summary}");
}

#[test]
fn json_lines_parse_and_carry_the_summary() {
    let addr = upstream();
    let urls = mixed_urls(addr);
    let mut args = vec!["--json", "--timeout", "1s"];
    args.extend(urls.iter().map(String::as_str));
    let run = snow_fetch(&args, "");
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let objects: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    assert_eq!(objects.len(), 201, "stdout: {}", run.stdout);

    let (summary, reports) = objects.split_last().expect("lines");
    let mut statuses: HashMap<u64, usize> = HashMap::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    for report in reports {
        assert!(report["url"].is_string(), "{report}");
        assert!(report["ms"].is_u64(), "{report}");
        if let Some(status) = report["status"].as_u64() {
            assert!(report["bytes"].is_u64(), "{report}");
            *statuses.entry(status).or_default() += 1;
        } else {
            let kind = report["error"].as_str().expect("status or error");
            assert!(report.get("detail").is_some(), "{report}");
            *errors.entry(kind.to_string()).or_default() += 1;
        }
    }
    assert_eq!(statuses, HashMap::from([(200, 150), (404, 30)]));
    let expected_errors =
        [("timeout", 10), ("protocol", 9), ("connect", 1)].map(|(kind, n)| (kind.to_string(), n));
    assert_eq!(errors, HashMap::from(expected_errors));

    assert_eq!(summary["total"], 200, "{summary}");
    assert_eq!(summary["ok"], 150, "{summary}");
    assert_eq!(summary["http_errors"], 30, "{summary}");
    assert_eq!(summary["failed"], 20, "{summary}");
    assert!(
        summary["ms"].as_u64().is_some_and(|ms| ms >= 1000),
        "{summary}"
    );
    assert!(
        summary["per_second"].as_f64().is_some_and(|r| r > 0.0),
        "{summary}"
    );
}

#[test]
fn successes_exit_zero_and_bodies_land_in_the_output_dir() {
    let addr = upstream();
    let dir = scratch_dir("bodies");
    let urls: Vec<String> = (1..=60).map(|i| format!("http://{addr}/ok/{i}")).collect();
    let dir_arg = dir.to_str().expect("a UTF-8 path");
    let mut args = vec!["-o", dir_arg, "-c", "8"];
    args.extend(urls.iter().map(String::as_str));
    let run = snow_fetch(&args, "");
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stdout_lines().len(), 60, "stdout: {}", run.stdout);
    assert!(
        run.summary()
            .starts_with("60 total, 60 ok, 0 http errors, 0 failed"),
        "{}",
        run.summary()
    );

    let files = std::fs::read_dir(&dir).expect("the output dir").count();
    assert_eq!(files, 60);
    for i in 1..=60 {
        let path = dir.join(format!("{i:02}-127.0.0.1_{}_ok_{i}", addr.port()));
        let body =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(body, format!("ok {i}"));
    }
}

#[test]
fn urls_come_from_stdin_with_a_dash() {
    let addr = upstream();
    let list = format!(
        "# upstream checks\n\nhttp://{addr}/ok/1\n   http://{addr}/ok/2  \n# http://{addr}/missing\nhttp://{addr}/missing\n"
    );
    let first = format!("http://{addr}/ok/0");
    let run = snow_fetch(&[&first, "-"], &list);
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    let mut urls: Vec<&str> = run
        .stdout_lines()
        .iter()
        .filter_map(|line| line.split(' ').nth(3))
        .collect();
    urls.sort_unstable();
    let expected = ["/missing", "/ok/0", "/ok/1", "/ok/2"].map(|p| format!("http://{addr}{p}"));
    assert_eq!(urls, expected);
    assert!(
        run.summary()
            .starts_with("4 total, 3 ok, 1 http errors, 0 failed"),
        "{}",
        run.summary()
    );

    let only_ok = format!("http://{addr}/ok/1\nhttp://{addr}/ok/2\n");
    assert_eq!(snow_fetch(&["-"], &only_ok).code, 0);
}

#[test]
fn one_url_prints_its_body_on_stdout() {
    let addr = upstream();
    let run = snow_fetch(&[&format!("http://{addr}/ok/5")], "");
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "ok 5");
    let line = format!(" http://{addr}/ok/5");
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("200 4B ") && l.ends_with(&line)),
        "stderr: {}",
        run.stderr
    );

    let run = snow_fetch(&[&format!("http://{addr}/missing")], "");
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "missing");
}

#[test]
fn data_method_and_headers_reach_the_upstream() {
    let addr = upstream();
    let echo = format!("http://{addr}/echo");
    let run = snow_fetch(&["-d", "hello", "-H", "X-Test: yes", &echo], "");
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "POST\nyes\nhello");

    let file = scratch_dir("data");
    std::fs::create_dir_all(&file).expect("scratch dir");
    let file = file.join("body.json");
    std::fs::write(&file, br#"{"a":1}"#).expect("writing the body file");
    let data = format!("@{}", file.display());
    let run = snow_fetch(&["-X", "PUT", "-d", &data, &echo], "");
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "PUT\n\n{\"a\":1}");

    let run = snow_fetch(&["-X", "DELETE", &echo], "");
    assert_eq!(run.stdout, "DELETE\n\n");
}

#[test]
fn redirects_are_reported_unless_followed() {
    let addr = upstream();
    let url = format!("http://{addr}/redirect");
    let run = snow_fetch(&[&url], "");
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(run.stderr.contains("302 0B "), "stderr: {}", run.stderr);

    let run = snow_fetch(&["-L", &url], "");
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "ok redirected");
}

#[test]
fn concurrency_bounds_requests_in_flight() {
    let (addr, stalls) = upstream_counting_stalls();
    let url = format!("http://{addr}/stall");
    let run = thread::spawn(move || {
        let mut args = vec!["-c", "5", "--timeout", "3s"];
        args.extend([url.as_str(); 10]);
        snow_fetch(&args, "")
    });
    // The sixth request can start only when one of the first five times
    // out, three seconds after it began: well after this look.
    let until = Instant::now() + PATIENCE;
    while stalls.load(Ordering::SeqCst) < 5 {
        assert!(Instant::now() < until, "the first five never arrived");
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(500));
    assert_eq!(stalls.load(Ordering::SeqCst), 5);

    let run = run.join().expect("the snow fetch thread");
    assert_eq!(run.code, 1, "stderr: {}", run.stderr);
    assert_eq!(stalls.load(Ordering::SeqCst), 10);
    let timeouts = run
        .stdout_lines()
        .iter()
        .filter(|l| l.starts_with("ERR timeout "))
        .count();
    assert_eq!(timeouts, 10, "stdout: {}", run.stdout);
}

#[test]
fn unusable_arguments_exit_two() {
    let addr = upstream();
    let url = format!("http://{addr}/ok/1");
    let cases: [(&[&str], &str); 6] = [
        (&[], ""),
        (&["-"], "# nothing but comments\n\n"),
        (&["-H", "no colon here", &url], ""),
        (&["-d", "@/nonexistent/body", &url], ""),
        (&["-c", "0", &url], ""),
        (&["--cacert", "/nonexistent/ca.pem", &url], ""),
    ];
    for (args, stdin) in cases {
        let run = snow_fetch(args, stdin);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
    }
}

/// An HTTP proxy on a loopback port that answers every request itself with
/// `proxied <request-target> <proxy-authorization>`, and the request lines
/// it has seen.
fn answering_proxy() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
    let addr = listener.local_addr().expect("proxy address");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let log = log.clone();
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(PATIENCE));
                let Ok(mut writer) = stream.try_clone() else {
                    return;
                };
                let mut reader = BufReader::new(stream);
                while let Some((method, target, headers, _)) = read_request(&mut reader) {
                    let auth = headers
                        .get("proxy-authorization")
                        .cloned()
                        .unwrap_or_default();
                    log.lock().expect("log").push(format!("{method} {target}"));
                    let body = format!("proxied {target} {auth}");
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if writer.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

#[test]
fn proxies_come_from_the_environment() {
    let (proxy, seen) = answering_proxy();
    let url = "http://upstream.invalid/path?q=1";
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"] {
        let value = format!("http://user:secret@{proxy}");
        let run = snow_fetch_with(&[url], "", &[(var, value.as_str())]);
        assert_eq!(run.code, 0, "{var}: {}", run.stderr);
        // Basic base64("user:secret").
        assert_eq!(
            run.stdout,
            format!("proxied {url} Basic dXNlcjpzZWNyZXQ="),
            "{var}"
        );
        assert!(!run.stderr.contains("secret"), "{var}: {}", run.stderr);
    }
    assert_eq!(seen.lock().expect("log").len(), 3);
}

#[test]
fn no_proxy_destinations_are_fetched_directly() {
    let (proxy, seen) = answering_proxy();
    let upstream = upstream();
    let proxy_url = format!("http://{proxy}");
    let direct = format!("http://{upstream}/ok/1");
    let run = snow_fetch_with(
        &[&direct],
        "",
        &[
            ("HTTP_PROXY", &proxy_url),
            ("no_proxy", "localhost,127.0.0.1"),
        ],
    );
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "ok 1");
    assert!(seen.lock().expect("log").is_empty());
}

#[test]
fn unusable_proxy_variables_exit_two() {
    let addr = upstream();
    let url = format!("http://{addr}/ok/1");
    for (var, value) in [
        ("HTTP_PROXY", "socks5://127.0.0.1:1080"),
        ("https_proxy", "https://proxy.invalid:3128"),
        ("ALL_PROXY", "http://[broken"),
        ("http_proxy", "http://proxy.invalid:3128/path"),
    ] {
        let run = snow_fetch_with(&[&url], "", &[(var, value)]);
        assert_eq!(run.code, 2, "{var}={value}: {}", run.stderr);
        assert!(run.stdout.is_empty(), "{var}={value}: {}", run.stdout);
        assert!(run.stderr.contains(var), "{var}={value}: {}", run.stderr);
    }
}
