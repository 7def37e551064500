use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use std::{fs, io, thread};

const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// Resident memory of the server, in KiB.
pub struct Memory {
    pub idle_kib: u64,
    pub peak_kib: u64,
    /// Proportional set size: a page mapped N times counts 1/N each time.
    /// Per-request instances map their module's image copy-on-write, and
    /// RSS counts each mapping of a shared page as if it were a copy.
    pub idle_pss_kib: Option<u64>,
    pub peak_pss_kib: Option<u64>,
    /// The kernel's own high-water mark; it covers the whole life of the
    /// process, so it matches `peak_kib` only for a server started fresh.
    pub hwm_kib: Option<u64>,
}

/// Samples VmRSS and Pss of another process on its own thread, so a load
/// loop busy with thousands of sockets cannot delay or skip samples.
pub struct RssSampler {
    pid: u32,
    idle_kib: u64,
    peak_kib: Arc<AtomicU64>,
    idle_pss_kib: Option<u64>,
    peak_pss_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl RssSampler {
    pub fn start(pid: u32) -> io::Result<Self> {
        let idle_kib = status_field(pid, "VmRSS")?;
        let idle_pss_kib = pss(pid).ok();
        let peak_kib = Arc::new(AtomicU64::new(idle_kib));
        let peak_pss_kib = Arc::new(AtomicU64::new(idle_pss_kib.unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let peak_kib = Arc::clone(&peak_kib);
            let peak_pss_kib = Arc::clone(&peak_pss_kib);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // The server may exit mid-run; the peak so far still stands.
                    sample(pid, &peak_kib, &peak_pss_kib);
                    thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        Ok(Self {
            pid,
            idle_kib,
            peak_kib,
            idle_pss_kib,
            peak_pss_kib,
            stop,
            thread,
        })
    }

    pub fn finish(self) -> Memory {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        sample(self.pid, &self.peak_kib, &self.peak_pss_kib);
        Memory {
            idle_kib: self.idle_kib,
            peak_kib: self.peak_kib.load(Ordering::Relaxed),
            idle_pss_kib: self.idle_pss_kib,
            peak_pss_kib: self
                .idle_pss_kib
                .map(|_| self.peak_pss_kib.load(Ordering::Relaxed)),
            hwm_kib: status_field(self.pid, "VmHWM").ok(),
        }
    }
}

fn sample(pid: u32, peak_kib: &AtomicU64, peak_pss_kib: &AtomicU64) {
    if let Ok(kib) = status_field(pid, "VmRSS") {
        peak_kib.fetch_max(kib, Ordering::Relaxed);
    }
    if let Ok(kib) = pss(pid) {
        peak_pss_kib.fetch_max(kib, Ordering::Relaxed);
    }
}

/// Reads a `Name:   1234 kB` line from /proc/PID/status.
fn status_field(pid: u32, name: &str) -> io::Result<u64> {
    kib_field(&fs::read_to_string(format!("/proc/{pid}/status"))?, name)
}

/// The process's proportional set size, from /proc/PID/smaps_rollup.
fn pss(pid: u32) -> io::Result<u64> {
    kib_field(
        &fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?,
        "Pss",
    )
}

fn kib_field(text: &str, name: &str) -> io::Result<u64> {
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            value.trim().trim_end_matches("kB").trim().parse().ok()
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {name} field")))
}
