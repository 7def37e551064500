//! The per-call limit counts the CPU time a call runs, not the wall time it
//! takes: a call whose thread waits for a core is not stopped for the
//! host's load, and one that loops is still stopped.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Server;

/// `/loop/?turns=…` with turns that take about `cpu` unstarved.
fn turns_for(server: &Server, cpu: Duration) -> u64 {
    const PROBE: u64 = 2_000_000;
    let fastest = (0..5)
        .map(|_| {
            let started = Instant::now();
            let resp = server.get(&format!("/loop/?turns={PROBE}"));
            assert_eq!(resp.status, 200, "{}", resp.text());
            started.elapsed()
        })
        .min()
        .expect("five probes");
    let per_turn = fastest.as_secs_f64() / PROBE as f64;
    (cpu.as_secs_f64() / per_turn) as u64
}

/// Every thread of `pid` on CPU 0, and its worker at the lowest priority.
fn starve_worker(pid: u32) {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads");
    let mut workers = 0;
    for task in tasks.flatten() {
        let tid: i32 = task.file_name().to_string_lossy().parse().expect("a tid");
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let worker = comm.trim() == "snow-worker";
        match pin_to_cpu0(tid) {
            Ok(()) => {}
            // A blocking-pool thread may end between the listing and here.
            Err(err) if !worker && err.raw_os_error() == Some(libc::ESRCH) => continue,
            Err(err) => panic!("pin {tid} ({}): {err}", comm.trim()),
        }
        if worker {
            // SAFETY: a priority change of one of the server's threads.
            let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) };
            assert_eq!(rc, 0, "renice {tid}");
            workers += 1;
        }
    }
    assert_eq!(workers, 1, "the server's one worker thread");
}

/// Pins thread `tid` (0: the calling one) to CPU 0.
fn pin_to_cpu0(tid: i32) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is an empty set, filled with one CPU
    // before the call reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn a_call_starved_of_cpu_is_not_stopped_and_a_loop_still_is() {
    let server = Server::testkit(&[
        "--workers",
        "1",
        "--max-call-time",
        "100ms",
        "--compiler",
        "cranelift",
    ]);
    let turns = turns_for(&server, Duration::from_millis(3));
    starve_worker(server.pid());
    // A scheduler may give the worker more than a sliver now and then: a
    // few tries, each answered, until one shows it starved.
    let mut tries = Vec::new();
    while tries.len() < 4 {
        let (status, took) = starved_get(&server, &format!("/loop/?turns={turns}"));
        eprintln!("cpu_limit: {turns} turns (3 ms unstarved) took {took:?} starved");
        assert_eq!(
            status, 200,
            "a call that ran 3 ms was stopped after {took:?}"
        );
        tries.push(took);
        if took > Duration::from_millis(100) {
            break;
        }
    }
    assert!(
        tries.iter().any(|took| *took > Duration::from_millis(100)),
        "the worker was never starved ({tries:?}): the check proves nothing"
    );
    // Starved or not, a loop is stopped.
    let started = Instant::now();
    let resp = server.get("/loop/");
    assert_eq!(resp.status, 500);
    assert!(started.elapsed() < Duration::from_secs(10));
    server.wait_log("CPU time limit");
}

/// `GET path` while two spinners at normal priority share the starved
/// worker's CPU, so that it gets a sliver of the core; the status and how
/// long the answer took.
fn starved_get(server: &Server, path: &str) -> (u16, Duration) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                pin_to_cpu0(0).expect("pin a spinner");
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        let resp = server.get(path);
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        (resp.status, took)
    })
}
