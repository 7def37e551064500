//! Starting `snow serve` on free loopback ports and driving it.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http::{request, Response};
use crate::{Error, PATIENCE};

/// Where `snow serve` reads the admin token from when no file is named.
const ADMIN_TOKEN_ENV: &str = "SNOW_ADMIN_TOKEN";

/// How `snow serve` is started: what it serves, its flags and environment.
#[derive(Debug, Clone)]
pub struct Snow {
    binary: Option<PathBuf>,
    command: &'static str,
    serves: Option<PathBuf>,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
}

impl Snow {
    /// The embedded default app.
    pub fn default_app() -> Snow {
        Snow {
            binary: None,
            command: "serve",
            serves: None,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// A module (`.wasm`), mounted at `/`, or a manifest (`snow.toml`).
    /// A module served from a file is redeployed when the file changes.
    pub fn module(path: impl AsRef<Path>) -> Snow {
        Snow {
            serves: Some(path.as_ref().to_path_buf()),
            ..Snow::default_app()
        }
    }

    /// `snow dev` of the module crate in `dir`: built, served, and rebuilt
    /// and hot-swapped on every source change. The first build happens
    /// before [`Snow::start`] returns.
    pub fn dev(dir: impl AsRef<Path>) -> Snow {
        Snow {
            command: "dev",
            ..Snow::module(dir)
        }
    }

    /// Runs this binary instead of [`crate::binary`]'s choice.
    pub fn binary(mut self, path: impl AsRef<Path>) -> Snow {
        self.binary = Some(path.as_ref().to_path_buf());
        self
    }

    /// One more flag or value for `snow serve`, e.g. `"--workers"`, `"1"`.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Snow {
        self.args.push(arg.into());
        self
    }

    /// More flags for `snow serve`.
    pub fn args<I, S>(self, args: I) -> Snow
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        args.into_iter().fold(self, Snow::arg)
    }

    /// Sets an environment variable for the server. A `SNOW_ADMIN_TOKEN`
    /// set here is also what [`Admin`] sends.
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Snow {
        self.env.push((name.into(), Some(value.into())));
        self
    }

    /// Removes an environment variable the server would inherit.
    pub fn env_remove(mut self, name: impl Into<OsString>) -> Snow {
        self.env.push((name.into(), None));
        self
    }

    /// Starts the server and waits until it listens. Both the server and
    /// its admin API bind port 0 on loopback unless `--listen` or
    /// `--admin` is given (the health listener is off unless `--health`
    /// is given: `--health 127.0.0.1:0` picks a port); logs are captured at `info` unless `SNOW_LOG`
    /// says otherwise.
    pub fn start(self) -> Result<Server, Error> {
        let binary = match self.binary {
            Some(binary) => binary,
            None => crate::binary()?,
        };
        let has = |flag: &str| self.args.iter().any(|a| a == flag);
        let mut cmd = Command::new(&binary);
        cmd.arg(self.command);
        cmd.args(&self.serves);
        if !has("--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if !has("--admin") {
            cmd.args(["--admin", "127.0.0.1:0"]);
        }
        cmd.args(&self.args)
            .env("SNOW_LOG", "info")
            .env_remove(ADMIN_TOKEN_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut admin_token = None;
        for (name, value) in &self.env {
            match value {
                Some(value) => cmd.env(name, value),
                None => cmd.env_remove(name),
            };
            if name == ADMIN_TOKEN_ENV {
                admin_token = value.as_ref().map(|v| v.to_string_lossy().into_owned());
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("starting {}", binary.display()), e))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lock(&sink).push(line);
                }
            });
        }
        let mut server = Server {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
            health: None,
            admin_token,
            child,
            log,
        };
        let Some(stdout) = server.child.stdout.take() else {
            return Err(Error::new("snow's stdout was not captured"));
        };
        let mut lines = BufReader::new(stdout).lines();
        // The banner: the address served, then the admin API's and the
        // health listener's, each when on, then the workers.
        let first = lines.next().and_then(Result::ok);
        let Some(addr) = first.as_deref().and_then(address_in) else {
            let status = server.wait_exit().ok();
            return Err(Error::new(format!(
                "snow did not start (banner {first:?}, exit {status:?}); its log:\n{}",
                server.log_lines().join("\n")
            )));
        };
        server.addr = addr;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if line.starts_with("admin api on ") {
                server.admin = address_in(&line);
            } else if line.starts_with("health on ") {
                server.health = address_in(&line);
            } else {
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Ok(server)
    }
}

/// `http://ADDR` in a banner line.
fn address_in(line: &str) -> Option<SocketAddr> {
    line.split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the log lock loses nothing worth failing over.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running `snow serve`. Dropping it kills the process; [`Server::stop`]
/// stops it gracefully.
///
/// Request helpers panic when the server cannot be reached, with its log
/// in the message: in a test, that is the failure to report.
pub struct Server {
    /// Where it serves.
    pub addr: SocketAddr,
    /// Its admin API, unless started with `--admin off`.
    pub admin: Option<SocketAddr>,
    /// Its health listener, when started with `--health` (or a manifest's
    /// `health`).
    pub health: Option<SocketAddr>,
    /// Sent by [`Admin`] as `Authorization: Bearer`, when set.
    pub admin_token: Option<String>,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// `http://ADDR`, to prefix paths with.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// One request on a fresh connection.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        self.request_with(method, path, &[], body)
    }

    /// One request with extra header lines.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> Response {
        request(self.addr, method, path, headers, body).unwrap_or_else(|err| self.fail(err))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, b"")
    }

    /// `POST path` with `body`.
    pub fn post(&self, path: &str, body: impl AsRef<[u8]>) -> Response {
        self.request("POST", path, body.as_ref())
    }

    /// A connection to the server, for raw bytes and pipelining.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr)
            .and_then(|s| s.set_read_timeout(Some(PATIENCE)).map(|()| s))
            .map_err(|e| Error::io(format!("connecting to {}", self.addr), e));
        stream.unwrap_or_else(|err| self.fail(err))
    }

    /// Sends raw bytes and returns all the server sends until it closes.
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        if let Err(err) = stream.write_all(bytes) {
            self.fail(Error::io("sending raw bytes", err));
        }
        let mut all = Vec::new();
        let _ = stream.read_to_end(&mut all);
        all
    }

    /// `http://ADDR` of the health listener, to prefix `/healthz` and
    /// `/readyz` with; `None` when it is off.
    pub fn health_url(&self) -> Option<String> {
        self.health.map(|addr| format!("http://{addr}"))
    }

    /// One request to the health listener, never with a token.
    pub fn health_request(&self, method: &str, path: &str) -> Response {
        let Some(addr) = self.health else {
            self.fail(Error::new(
                "the health listener is off; start with --health",
            ));
        };
        request(addr, method, path, &[], b"").unwrap_or_else(|err| self.fail(err))
    }

    /// Waits until `path` on the health listener (or, when it is off, the
    /// admin API) answers `status`, and returns that answer.
    pub fn wait_probe(&self, path: &str, status: u16) -> Response {
        let probe = || match self.health {
            Some(_) => self.health_request("GET", path),
            None => self.admin().request("GET", path, b""),
        };
        let found = wait_for(|| Some(probe()).filter(|r| r.status == status));
        found.unwrap_or_else(|| {
            let last = probe();
            self.fail(Error::new(format!(
                "{path} answered {} {:?}, want {status}",
                last.status,
                last.text()
            )))
        })
    }

    /// The admin API, with the token if there is one.
    pub fn admin(&self) -> Admin<'_> {
        Admin { server: self }
    }

    /// Sends `token` on admin requests from now on.
    pub fn with_admin_token(mut self, token: &str) -> Server {
        self.admin_token = Some(token.to_string());
        self
    }

    /// Every line the server has logged so far.
    pub fn log_lines(&self) -> Vec<String> {
        lock(&self.log).clone()
    }

    /// Waits until a log line contains `needle` and returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        let found = wait_for(|| self.log_lines().into_iter().find(|l| l.contains(needle)));
        found.unwrap_or_else(|| self.fail(Error::new(format!("no log line has {needle:?}"))))
    }

    /// The admin API's `/metrics` text.
    pub fn metrics(&self) -> String {
        let response = self.admin().request("GET", "/metrics", b"");
        if response.status != 200 {
            self.fail(Error::new(format!("/metrics answered {}", response.status)));
        }
        response.text()
    }

    /// One sample of `/metrics`, `name{labels}` exactly as rendered; 0
    /// when absent.
    pub fn metric(&self, series: &str) -> f64 {
        sample(&self.metrics(), series).unwrap_or(0.0)
    }

    /// Waits until `series` reads `want`: metrics trail responses a little.
    pub fn wait_metric(&self, series: &str, want: f64) {
        if wait_for(|| (self.metric(series) == want).then_some(())).is_none() {
            let got = self.metric(series);
            self.fail(Error::new(format!(
                "{series} = {got}, want {want}\n{}",
                self.metrics()
            )));
        }
    }

    /// The process id, to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`libc::SIGHUP`, …) to the server.
    pub fn signal(&self, signal: i32) {
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            self.fail(Error::new("the pid does not fit a pid_t"));
        };
        // SAFETY: kill(2) on our own child; no memory is involved.
        if unsafe { libc::kill(pid, signal) } != 0 {
            let err = std::io::Error::last_os_error();
            self.fail(Error::io(format!("sending signal {signal}"), err));
        }
    }

    /// The server's resident memory, from `/proc` (Linux).
    pub fn rss_kib(&self) -> u64 {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| self.fail(Error::new(format!("no VmRSS line in {path}"))))
    }

    /// Waits for the process to exit, for at most [`PATIENCE`].
    pub fn wait_exit(&mut self) -> Result<ExitStatus, Error> {
        let mut failed = None;
        let child = &mut self.child;
        let exited = wait_for(|| match child.try_wait() {
            Ok(status) => status,
            Err(err) => {
                failed = Some(err);
                // Stops the wait: the error is reported below.
                Some(ExitStatus::default())
            }
        });
        match (failed, exited) {
            (Some(err), _) => Err(Error::io("waiting for snow", err)),
            (None, Some(status)) => Ok(status),
            (None, None) => Err(Error::new(format!("snow did not exit in {PATIENCE:?}"))),
        }
    }

    /// Stops the server as an orchestrator would, with SIGTERM: it stops
    /// accepting, finishes what is in flight and exits.
    pub fn stop(mut self) -> Result<ExitStatus, Error> {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    fn fail(&self, err: Error) -> ! {
        panic!("{err}\nsnow's log:\n{}", self.log_lines().join("\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin API of a [`Server`].
pub struct Admin<'a> {
    server: &'a Server,
}

impl Admin<'_> {
    /// One admin request, with `Authorization: Bearer` when a token is set.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Response {
        let Some(addr) = self.server.admin else {
            self.server.fail(Error::new("the admin API is off"));
        };
        let auth = self
            .server
            .admin_token
            .as_ref()
            .map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &[u8])> = auth
            .iter()
            .map(|value| ("authorization", value.as_bytes()))
            .collect();
        request(addr, method, path, &headers, body).unwrap_or_else(|err| self.server.fail(err))
    }

    /// Deploys `wasm` as the new version of the module called `name` (a
    /// single module is named after its file: `demo` for `demo.wasm`), as
    /// `PUT /modules/NAME` does.
    /// In-flight requests finish on the old version.
    pub fn deploy(&self, name: &str, wasm: &[u8]) -> Response {
        self.request("PUT", &format!("/modules/{name}"), wasm)
    }

    /// `GET /modules`: what is mounted, as JSON text.
    pub fn modules(&self) -> String {
        self.request("GET", "/modules", b"").text()
    }
}

const POLL: Duration = Duration::from_millis(20);

/// Polls `probe` until it yields, for at most [`PATIENCE`].
fn wait_for<T>(mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// The value of `series` in a Prometheus text exposition.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_addresses_and_samples_are_read() {
        assert_eq!(
            address_in("snow: listening on http://127.0.0.1:4000 (2 workers)"),
            Some(SocketAddr::from(([127, 0, 0, 1], 4000)))
        );
        assert_eq!(
            address_in("admin on http://[::1]:9"),
            "[::1]:9".parse().ok()
        );
        assert_eq!(
            address_in("health on http://0.0.0.0:8014 (/healthz, /readyz)"),
            "0.0.0.0:8014".parse().ok()
        );
        assert_eq!(address_in("no address here"), None);
        assert_eq!(address_in("http://not-an-address"), None);
        let text = "# HELP x\nsnow_requests_total{status=\"200\"} 3\nsnow_up 1\n";
        assert_eq!(
            sample(text, "snow_requests_total{status=\"200\"}"),
            Some(3.0)
        );
        assert_eq!(sample(text, "snow_requests_total"), None);
    }
}
