//! A throwaway `redis-server` for tests of the Redis store: its own free
//! loopback port, its own temporary directory, no persistence, killed when
//! dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{Error, PATIENCE};

/// The environment variable naming the `redis-server` binary to use.
pub const REDIS_SERVER_ENV: &str = "REDIS_SERVER";

/// A `redis-server` on `127.0.0.1`, started by the test.
///
/// ```no_run
/// use snow_testing::Redis;
///
/// # fn main() -> Result<(), snow_testing::Error> {
/// let Some(binary) = Redis::binary() else {
///     println!("skipped: no redis-server installed");
///     return Ok(());
/// };
/// let mut redis = Redis::start_with(&binary)?;
/// let url = redis.url(); // redis://127.0.0.1:PORT
/// redis.kill()?; // the server is down: clients should say so
/// redis.restart()?; // back on the same port, empty
/// # Ok(())
/// # }
/// ```
pub struct Redis {
    binary: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Redis {
    /// The `redis-server` binary: `REDIS_SERVER` when set, else the one on
    /// the `PATH`, else none (tests that need it should say they skip).
    pub fn binary() -> Option<PathBuf> {
        if let Some(path) = std::env::var_os(REDIS_SERVER_ENV) {
            return Some(PathBuf::from(path));
        }
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    }

    /// Starts [`Redis::binary`]; an error if there is none.
    pub fn start() -> Result<Redis, Error> {
        let binary = Redis::binary().ok_or_else(|| {
            Error::new(format!(
                "no redis-server: none on the PATH and {REDIS_SERVER_ENV} is not set \
                 (Debian: apt-get install redis-server)"
            ))
        })?;
        Redis::start_with(&binary)
    }

    /// Starts `binary` on a free port and waits until it answers `PING`.
    pub fn start_with(binary: &Path) -> Result<Redis, Error> {
        let mut redis = Redis {
            binary: binary.to_path_buf(),
            port: 0,
            dir: scratch_dir()?,
            child: None,
        };
        // The port is free when asked, not necessarily when the server
        // binds it: another process may take it in between, so try again.
        let mut last = None;
        for _ in 0..5 {
            redis.port = free_port()?;
            match redis.launch() {
                Ok(()) => return Ok(redis),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| Error::new("redis-server did not start")))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on, the same across [`Redis::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is running (it may still be starting).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server at once (SIGKILL), as a crash would; its data is
    /// lost. Killing a server that is not running does nothing.
    pub fn kill(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(|e| Error::io("killing redis-server", e))?;
            child
                .wait()
                .map_err(|e| Error::io("waiting for redis-server to exit", e))?;
        }
        Ok(())
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is
    /// answered, as with a server that hangs or a network that drops
    /// packets.
    pub fn pause(&self) -> Result<(), Error> {
        self.signal(libc::SIGSTOP, "pausing")
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) -> Result<(), Error> {
        self.signal(libc::SIGCONT, "resuming")
    }

    fn signal(&self, signal: libc::c_int, doing: &str) -> Result<(), Error> {
        let child = self
            .child
            .as_ref()
            .ok_or_else(|| Error::new(format!("{doing} redis-server: it is not running")))?;
        let pid = libc::pid_t::try_from(child.id())
            .map_err(|_| Error::new(format!("{doing} redis-server: its pid is out of range")))?;
        // SAFETY: kill(2) with the pid of a child this struct owns and has
        // not reaped, so the pid cannot have been reused.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(Error::io(
                format!("{doing} redis-server"),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Stops the server and starts a new, empty one on the same port.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill()?;
        self.launch()
    }

    /// Sends one inline command (`SET k v`) on a fresh connection and
    /// returns the first line of the reply, for checks that bypass the
    /// client under test.
    pub fn command(&self, inline: &str) -> Result<String, Error> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&addr, PATIENCE)
            .map_err(|e| Error::io(format!("connecting to redis-server on {addr}"), e))?;
        stream
            .set_read_timeout(Some(PATIENCE))
            .map_err(|e| Error::io("setting a read timeout", e))?;
        stream
            .write_all(format!("{inline}\r\n").as_bytes())
            .map_err(|e| Error::io("writing to redis-server", e))?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") {
            match stream.read(&mut byte) {
                Ok(0) => break,
                Ok(_) => reply.push(byte[0]),
                Err(e) => return Err(Error::io("reading from redis-server", e)),
            }
        }
        Ok(String::from_utf8_lossy(&reply).trim_end().to_owned())
    }

    fn launch(&mut self) -> Result<(), Error> {
        let log = self.dir.join("redis.log");
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            // No persistence: a restart is an empty server, and nothing
            // is written but the log.
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(["--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io(format!("starting {}", self.binary.display()), e))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if self.command("PING").is_ok_and(|reply| reply == "+PONG") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(Error::new(format!(
                        "redis-server on port {} exited ({status}); its log:\n{}",
                        self.port,
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )));
                }
            }
            if started.elapsed() > PATIENCE {
                self.kill_child();
                return Err(Error::new(format!(
                    "redis-server on port {} did not answer PING within {PATIENCE:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server dies of SIGKILL all the same.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill_child();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("finding a free port", e))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| Error::io("reading a free port", e))
}

fn scratch_dir() -> Result<PathBuf, Error> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "snow-redis-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_kills_and_restarts_on_the_same_port() -> Result<(), Error> {
        let Some(binary) = Redis::binary() else {
            println!("skipped: redis-server is not installed (apt-get install redis-server)");
            return Ok(());
        };
        let mut redis = Redis::start_with(&binary)?;
        let port = redis.port();
        assert_eq!(redis.command("SET k v")?, "+OK");
        redis.kill()?;
        assert!(!redis.is_running());
        assert!(redis.command("PING").is_err());
        redis.restart()?;
        assert_eq!(redis.port(), port);
        // Nothing survives: no persistence.
        assert_eq!(redis.command("EXISTS k")?, ":0");
        Ok(())
    }
}
