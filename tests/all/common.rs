//! Shared by the integration tests: start the real `snow` binary on port 0,
//! read its address from the first line it prints, and talk raw HTTP/1.1.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const TESTKIT: &str = snow_test_guests::TESTKIT;

/// Where `snow serve` reads the admin token from when no file is named.
pub const ADMIN_TOKEN_ENV: &str = "SNOW_ADMIN_TOKEN";

/// Generous bound for anything a test waits on: this is a sanity limit,
/// not a measurement.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub struct Server {
    pub addr: SocketAddr,
    /// The admin API; tests bind it to an ephemeral loopback port.
    pub admin: Option<SocketAddr>,
    /// Sent by the admin helpers as `Authorization: Bearer`, when set.
    pub admin_token: Option<String>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `snow serve` of the default app with extra arguments.
    pub fn start(args: &[&str]) -> Server {
        Self::start_module(None, args)
    }

    pub fn testkit(args: &[&str]) -> Server {
        Self::start_module(Some(TESTKIT), args)
    }

    pub fn start_module(module: Option<&str>, args: &[&str]) -> Server {
        Self::start_with(module, args, &[])
    }

    /// Like [`Server::start_module`], with `env` set for the process. A
    /// `SNOW_ADMIN_TOKEN` there is also what the admin helpers send.
    pub fn start_with(module: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_snow"));
        cmd.arg("serve");
        if let Some(module) = module {
            cmd.arg(module);
        }
        cmd.args(["--listen", "127.0.0.1:0"]);
        if !args.contains(&"--admin") {
            cmd.args(["--admin", "127.0.0.1:0"]);
        }
        cmd.args(args)
            .env("SNOW_CACHE_DIR", cache_dir())
            .env("SNOW_LOG", "info")
            .env_remove("RUST_BACKTRACE")
            .env_remove(ADMIN_TOKEN_ENV)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let admin_token = env
            .iter()
            .find(|(name, _)| *name == ADMIN_TOKEN_ENV)
            .map(|(_, token)| token.to_string());
        let mut child = cmd.spawn().expect("spawning snow");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("snow printed no banner; log: {:?}", log.lock()));
        let addr = first
            .rsplit("http://")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected banner line: {first}"));
        let admin = if args.contains(&"off") {
            None
        } else {
            let second = lines.next().and_then(Result::ok).unwrap_or_default();
            second
                .split("http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse().ok())
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Server {
            addr,
            admin,
            admin_token,
            child,
            log,
        }
    }

    /// Sends `token` on admin requests from now on (a token from a file).
    pub fn with_admin_token(mut self, token: &str) -> Server {
        self.admin_token = Some(token.to_string());
        self
    }

    /// One request to the admin API, with the token if there is one.
    pub fn admin_request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let admin = self.admin.expect("admin API enabled");
        let auth = self
            .admin_token
            .as_ref()
            .map(|token| format!("Bearer {token}"));
        let headers: Vec<(&str, &[u8])> = auth
            .iter()
            .map(|value| ("authorization", value.as_bytes()))
            .collect();
        request_with(admin, method, path, &headers, body)
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let until = Instant::now() + PATIENCE;
        while Instant::now() < until {
            if let Some(line) = self.log_lines().into_iter().find(|l| l.contains(needle)) {
                return line;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no log line containing {needle:?}; log: {:#?}",
            self.log_lines()
        );
    }

    /// The server's resident memory.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reading /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS line")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let until = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < until, "snow did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connecting to snow");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream
    }

    /// One request on a fresh connection.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        request_at(self.addr, method, path, body)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, b"")
    }

    /// The admin API's `/metrics` text.
    pub fn metrics(&self) -> String {
        let resp = self.admin_request("GET", "/metrics", b"");
        assert_eq!(resp.status, 200);
        resp.text()
    }

    /// The value of one sample line of `/metrics` (`name{labels}` exactly as
    /// rendered), zero when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    /// Waits until `series` reads `want`: metrics lag the response by a hair.
    pub fn wait_metric(&self, series: &str, want: f64) {
        let until = Instant::now() + PATIENCE;
        loop {
            let got = self.metric(series);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < until,
                "{series} = {got}, want {want}\n{}",
                self.metrics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends raw bytes and returns everything the server sends until it
    /// closes the connection.
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        stream.write_all(bytes).expect("writing");
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        all
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("snow-cache")
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response framed by content-length (or until close).
/// One request to `addr` (the server or its admin API) on a fresh connection.
pub fn request_at(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    request_with(addr, method, path, &[], body)
}

/// Like [`request_at`], with extra header lines, values as raw bytes.
pub fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connecting");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n").into_bytes();
    for (name, value) in headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(body);
    stream.write_all(&req).expect("writing request");
    let mut reader = BufReader::new(stream);
    read_response(&mut reader, method == "HEAD").expect("a response")
}

pub fn read_response(reader: &mut impl BufRead, head_request: bool) -> Option<Response> {
    let mut status_line = String::new();
    if reader.read_line(&mut status_line).ok()? == 0 {
        return None;
    }
    let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let headers = read_header_lines(reader)?;
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let mut body = Vec::new();
    if !head_request {
        match length {
            Some(n) => {
                body.resize(n, 0);
                reader.read_exact(&mut body).ok()?;
            }
            None => {
                reader.read_to_end(&mut body).ok()?;
            }
        }
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

/// Reads `name: value` lines up to the empty line ending a head.
pub fn read_header_lines(reader: &mut impl BufRead) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            return Some(headers);
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

/// Parses every response in `bytes` (for pipelining and error checks).
pub fn parse_all(bytes: &[u8]) -> Vec<Response> {
    let mut reader = BufReader::new(bytes);
    let mut all = Vec::new();
    while let Some(resp) = read_response(&mut reader, false) {
        all.push(resp);
    }
    all
}
