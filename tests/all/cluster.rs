//! `deploy/local-cluster.sh 3`: Redis, three `snow` hosts sharing it, and
//! HAProxy in front. Increments sent through the balancer are counted
//! exactly; a host killed with SIGKILL loses only what it had in flight; a
//! new module version rolled out host by host fails no request.

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::read_response;

const COUNTER: &str = snow_test_guests::COUNTER;

struct Cluster {
    script: Child,
    url: String,
    addr: String,
    state: PathBuf,
}

impl Cluster {
    fn start(test: &str, hosts: usize) -> Cluster {
        let state = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("cluster")
            .join(test);
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).expect("state dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/local-cluster.sh");
        let mut child = Command::new("bash")
            .arg(&script)
            .arg(hosts.to_string())
            .env("SNOW_BIN", env!("CARGO_BIN_EXE_snow"))
            .env("COUNTER_WASM", COUNTER)
            .env("SNOW_CLUSTER_DIR", &state)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start deploy/local-cluster.sh");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let url = first
            .strip_prefix("cluster ready: ")
            .unwrap_or_else(|| {
                panic!(
                    "the cluster did not start: {first:?} (logs in {})",
                    state.display()
                )
            })
            .to_owned();
        // Keep reading so the script never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let addr = url.trim_start_matches("http://").to_owned();
        Cluster {
            script: child,
            url,
            addr,
            state,
        }
    }

    fn host_file(&self, host: usize, what: &str) -> String {
        let path = self.state.join(format!("host-{host}.{what}"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .trim()
            .to_owned()
    }

    fn pid(&self, host: usize) -> i32 {
        self.host_file(host, "pid").parse().expect("a pid")
    }

    fn get(&self, path: &str) -> common::Response {
        common::request_at(
            self.addr.parse().expect("balancer address"),
            "GET",
            path,
            b"",
        )
    }

    /// Waits until host `host` runs as another process than `old` and is
    /// ready, and the balancer has had time to see it (rise 2 × 100 ms).
    fn wait_restarted(&self, host: usize, old: i32) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "host {host} did not come back");
            let pid = self.pid(host);
            let health = format!("127.0.0.1:{}", self.host_file(host, "health"));
            let ready = pid != old
                && snow_testing::request(health.parse().expect("addr"), "GET", "/readyz", &[], b"")
                    .is_ok_and(|r| r.status == 200);
            if ready {
                std::thread::sleep(Duration::from_millis(600));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: a plain signal to the script we started.
        unsafe { libc::kill(self.script.id() as i32, libc::SIGTERM) };
        let _ = self.script.wait();
    }
}

/// What a load run saw: answers with 200, every other outcome, and when
/// the first and the last of those others came.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    failures: Mutex<Option<(Instant, Instant)>>,
}

impl Tally {
    fn fail(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut span = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (first, _) = span.unwrap_or((now, now));
        *span = Some((first, now));
    }

    fn failure_span(&self) -> Option<(Instant, Instant)> {
        *self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `total` increments of `name` through the balancer from `clients`
/// keep-alive connections, or until `stop`. A failed request is counted
/// and its connection replaced.
fn load(addr: &str, name: &str, clients: usize, total: u64, stop: &AtomicBool) -> Tally {
    let tally = Tally::default();
    let sent = AtomicU64::new(0);
    let request =
        format!("POST /counter/{name}/incr HTTP/1.1\r\nHost: cluster\r\nContent-Length: 0\r\n\r\n");
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
                while !stop.load(Ordering::Relaxed) && sent.fetch_add(1, Ordering::Relaxed) < total
                {
                    let (stream, reader) = match conn.as_mut() {
                        Some(c) => c,
                        None => {
                            let stream = TcpStream::connect(addr).expect("the balancer accepts");
                            stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                            let reader = BufReader::new(stream.try_clone().expect("clone"));
                            conn.insert((stream, reader))
                        }
                    };
                    let answer = stream
                        .write_all(request.as_bytes())
                        .ok()
                        .and_then(|()| read_response(reader, false));
                    match answer {
                        Some(resp) if resp.status == 200 => {
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                            let closing = resp
                                .header("connection")
                                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                            if closing {
                                conn = None;
                            }
                        }
                        _ => {
                            tally.fail();
                            conn = None;
                        }
                    }
                }
            });
        }
    });
    tally
}

fn counter(cluster: &Cluster, name: &str) -> u64 {
    let resp = cluster.get(&format!("/counter/{name}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    resp.text().parse().expect("a number")
}

#[test]
fn three_hosts_behind_haproxy_count_exactly_survive_a_kill_and_roll_out() {
    let cluster = Cluster::start("three", 3);
    eprintln!("cluster: balancer at {}", cluster.url);
    let never = AtomicBool::new(false);

    // 1. Exact: every 200 is one increment, across three hosts.
    let started = Instant::now();
    let tally = load(&cluster.addr, "exact", 64, 20_000, &never);
    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    eprintln!(
        "cluster: 20000 increments in {:?}: {ok} ok, {failed} failed",
        started.elapsed()
    );
    assert_eq!((ok, failed), (20_000, 0));
    assert_eq!(counter(&cluster, "exact"), ok);

    // 2. kill -9 of one host under load: the balancer routes around it,
    // and nothing acknowledged is lost.
    let victim = cluster.pid(2);
    let (tally, killed_at) = std::thread::scope(|scope| {
        let load = scope.spawn(|| load(&cluster.addr, "killed", 32, 15_000, &never));
        std::thread::sleep(Duration::from_millis(700));
        let killed_at = Instant::now();
        // SAFETY: a signal to a host process the cluster script started.
        unsafe { libc::kill(victim, libc::SIGKILL) };
        (load.join().expect("load thread"), killed_at)
    });
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    let total = counter(&cluster, "killed");
    eprintln!("cluster: kill -9 under load: {ok} ok, {failed} failed, counter {total}");
    assert!(
        total >= ok,
        "an acknowledged increment was lost: {total} < {ok}"
    );
    assert!(
        total - ok <= failed,
        "{total} counted, {ok} answered, {failed} failed"
    );
    // Only requests the balancer sent to the killed host fail: those in
    // flight, and those it sent on its idle connections to that host
    // before its first failed connection took the host out (HAProxy closes
    // the client's connection then, without an answer, as `http-reuse
    // safe` does). All of them fail at the kill; from then on the host is
    // out (`fall 1`, checks every 100 ms), and when it is back (`rise 2`)
    // it answers like the others.
    if let Some((first, last)) = tally.failure_span() {
        assert!(
            first >= killed_at,
            "a request failed {:?} before the kill",
            killed_at - first
        );
        let window = last - killed_at;
        eprintln!("cluster: failures within {window:?} of the kill");
        assert!(
            window < Duration::from_secs(1),
            "requests still failed {window:?} after the kill"
        );
    }
    // Each of the balancer's connections to the killed host fails one
    // request at most, and it may still hold idle ones from the first
    // phase's 64 clients: a generous bound, as the window above is the
    // real check.
    assert!(failed <= 32 * 4, "{failed} requests failed");
    cluster.wait_restarted(2, victim);

    // 3. A new version rolled out one host at a time, each draining on
    // SIGTERM, while load runs: not one request fails.
    let mut wasm = std::fs::read(COUNTER).expect("counter wasm");
    append_custom_section(&mut wasm, "snow-test-version", b"2");
    std::fs::write(cluster.state.join("counter.wasm"), &wasm).expect("new version");
    let stop = AtomicBool::new(false);
    let tally = std::thread::scope(|scope| {
        let load = scope.spawn(|| load(&cluster.addr, "rolled", 32, u64::MAX, &stop));
        // Should a host not come back, the load stops too: the scope
        // would otherwise wait on it for ever instead of failing.
        let _stop = StopOnDrop(&stop);
        for host in 1..=3 {
            let old = cluster.pid(host);
            // SAFETY: as above.
            unsafe { libc::kill(old, libc::SIGTERM) };
            cluster.wait_restarted(host, old);
        }
        stop.store(true, Ordering::Relaxed);
        load.join().expect("load thread")
    });
    let (ok, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    eprintln!("cluster: rolling restart under load: {ok} ok, {failed} failed");
    assert_eq!(failed, 0, "requests failed during the rolling deploy");
    assert!(ok > 0);
    assert_eq!(counter(&cluster, "rolled"), ok);
    let hash = sha256_hex(&wasm);
    for host in 1..=3 {
        let admin = format!("127.0.0.1:{}", cluster.host_file(host, "admin"));
        let modules =
            common::request_at(admin.parse().expect("admin addr"), "GET", "/modules", b"").text();
        assert!(
            modules.contains(&hash),
            "host {host} serves another version: {modules}"
        );
    }
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A custom section at the end: another file, the same behaviour.
fn append_custom_section(wasm: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let mut body = Vec::new();
    leb128(&mut body, name.len());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    wasm.push(0);
    leb128(wasm, body.len());
    wasm.extend_from_slice(&body);
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
