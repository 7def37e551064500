//! Whether this host should get traffic: what `/readyz` answers, for the
//! balancer in front of many hosts.
//!
//! One [`Health`] per process, shared as `Arc<Health>`: `snow serve`
//! creates it, whatever needs a dependency to be up registers a check on it
//! with [`Health::add_check`] before the server starts, and the server
//! marks it serving once every worker has its modules, and draining on
//! SIGTERM.
//!
//! ```ignore
//! let health = Health::new();
//! health.add_check("store", move || {
//!     let store = store.clone();
//!     async move { store.ping().await.map_err(|_| "unreachable".to_string()) }
//! });
//! crate::server::serve(config, deployer, reload, client, health)
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::task::JoinSet;

/// How long one check may take before it counts as failed: a hung
/// dependency must not hang the probe, whose own timeout is often 1 s.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest reason `/readyz` gives: the answer is for a balancer's log, not
/// an error report, and it is served without a token.
const MAX_REASON: usize = 200;

/// What a check returns: `Err` with a short reason when not ready.
pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A readiness check, run afresh for every `/readyz` request.
pub type CheckFn = Box<dyn Fn() -> CheckFuture + Send + Sync>;

/// Liveness is the process answering at all; readiness is this.
#[derive(Default)]
pub struct Health {
    /// Every worker has instantiated the modules.
    serving: AtomicBool,
    /// SIGTERM came: the balancer should send no new traffic.
    draining: AtomicBool,
    checks: RwLock<Vec<Arc<Check>>>,
}

struct Check {
    name: String,
    run: CheckFn,
    /// Whether the last run failed, so that a failure is logged when it
    /// starts and when it ends rather than on every probe.
    failing: AtomicBool,
}

impl Health {
    /// A fresh state: not serving yet, not draining, no checks.
    pub fn new() -> Arc<Health> {
        Arc::new(Health::default())
    }

    /// Registers a readiness check: `/readyz` answers 503 while it fails.
    ///
    /// `check` is called for every `/readyz` request (checks run at once,
    /// not one after another) and must be cheap: a ping, not a query. One
    /// that takes longer than [`CHECK_TIMEOUT`] fails, and is dropped. The
    /// reason an `Err` carries is logged when the check starts failing and
    /// shown, cut to 200 characters, to whoever probes `/readyz`, which
    /// needs no token: keep addresses and secrets out of it.
    pub fn add_check<F, Fut>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let check = Check {
            name: name.into(),
            run: Box::new(move || Box::pin(check())),
            failing: AtomicBool::new(false),
        };
        self.checks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(check));
    }

    /// Every worker is up with the modules: ready, checks permitting.
    pub fn set_serving(&self) {
        self.serving.store(true, Ordering::Relaxed);
    }

    /// From now on `/readyz` answers 503 `draining`. True the first time.
    pub fn start_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::Relaxed)
    }

    /// Whether a stop signal has come.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// `Ok` when this host should get traffic, else why not: `draining`,
    /// `starting`, or the first failing check (in the order they were
    /// added) as `NAME: REASON`.
    pub async fn readiness(&self) -> Result<(), String> {
        if self.is_draining() {
            return Err("draining".into());
        }
        if !self.serving.load(Ordering::Relaxed) {
            return Err("starting".into());
        }
        let checks = self
            .checks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut running = JoinSet::new();
        for (index, check) in checks.iter().enumerate() {
            let run = tokio::time::timeout(CHECK_TIMEOUT, (check.run)());
            running.spawn(async move { (index, run.await) });
        }
        let mut results: Vec<Option<Result<(), String>>> = vec![None; checks.len()];
        while let Some(done) = running.join_next().await {
            match done {
                Ok((index, Ok(result))) => results[index] = Some(result),
                Ok((index, Err(_elapsed))) => {
                    results[index] = Some(Err(format!(
                        "no answer within {}",
                        humantime::format_duration(CHECK_TIMEOUT)
                    )))
                }
                // Its slot stays `None`, read below as a panic.
                Err(err) => tracing::error!("a readiness check panicked: {err}"),
            }
        }
        let mut first_failure = None;
        for (check, result) in checks.iter().zip(results) {
            let result = result.unwrap_or_else(|| Err("the check panicked".into()));
            let was_failing = check.failing.swap(result.is_err(), Ordering::Relaxed);
            match result {
                Ok(()) if was_failing => {
                    tracing::info!(check = %check.name, "readiness check passes again");
                }
                Ok(()) => {}
                Err(reason) => {
                    if !was_failing {
                        tracing::warn!(check = %check.name, "readiness check failing: {reason}");
                    }
                    first_failure
                        .get_or_insert_with(|| short(&format!("{}: {reason}", check.name)));
                }
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}

/// `reason` on one line, at most [`MAX_REASON`] characters.
fn short(reason: &str) -> String {
    let line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match line.char_indices().nth(MAX_REASON) {
        Some((end, _)) => format!("{}…", &line[..end]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn serving() -> Arc<Health> {
        let health = Health::new();
        health.set_serving();
        health
    }

    #[tokio::test]
    async fn ready_once_serving_with_no_checks() {
        let health = Health::new();
        assert_eq!(health.readiness().await, Err("starting".into()));
        health.set_serving();
        assert_eq!(health.readiness().await, Ok(()));
    }

    #[tokio::test]
    async fn draining_wins_over_everything() {
        let health = serving();
        health.add_check("broken", || async { Err("down".into()) });
        assert!(health.start_draining());
        assert!(!health.start_draining(), "only the first call starts it");
        assert!(health.is_draining());
        assert_eq!(health.readiness().await, Err("draining".into()));
        let starting = Health::new();
        starting.start_draining();
        assert_eq!(starting.readiness().await, Err("draining".into()));
    }

    #[tokio::test]
    async fn the_first_failing_check_is_the_reason() {
        let health = serving();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        health.add_check("fine", move || {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        });
        let up = Arc::new(AtomicBool::new(false));
        let store_up = up.clone();
        health.add_check("store", move || {
            let up = store_up.load(Ordering::Relaxed);
            async move {
                if up {
                    Ok(())
                } else {
                    Err("unreachable".into())
                }
            }
        });
        health.add_check("other", || async { Err("also down".into()) });
        assert_eq!(health.readiness().await, Err("store: unreachable".into()));
        up.store(true, Ordering::Relaxed);
        assert_eq!(health.readiness().await, Err("other: also down".into()));
        assert_eq!(calls.load(Ordering::Relaxed), 2, "run for every probe");
    }

    #[tokio::test]
    async fn a_hung_check_fails_after_the_timeout_and_others_run_meanwhile() {
        let health = serving();
        health.add_check("hung", std::future::pending);
        health.add_check("also hung", std::future::pending);
        health.add_check("slow", || async {
            tokio::time::sleep(CHECK_TIMEOUT / 2).await;
            Ok(())
        });
        let started = std::time::Instant::now();
        assert_eq!(
            health.readiness().await,
            Err("hung: no answer within 1s".into())
        );
        let took = started.elapsed();
        assert!(took >= CHECK_TIMEOUT, "{took:?}");
        // Run side by side: one timeout, where one after another would
        // take two and a half.
        assert!(took < CHECK_TIMEOUT * 5 / 2, "{took:?}");
    }

    #[tokio::test]
    async fn a_panicking_check_fails_without_failing_the_probe() {
        let health = serving();
        health.add_check("bad", || async { panic!("check bug") });
        assert_eq!(
            health.readiness().await,
            Err("bad: the check panicked".into())
        );
    }

    #[tokio::test]
    async fn long_or_multi_line_reasons_are_cut_to_one_short_line() {
        let health = serving();
        health.add_check("noisy", || async {
            Err(format!("a\r\nb{}", "x".repeat(5000)))
        });
        let reason = health.readiness().await.unwrap_err();
        assert!(reason.starts_with("noisy: a  bxxx"), "{reason}");
        assert!(!reason.contains(['\r', '\n']));
        assert_eq!(reason.chars().count(), MAX_REASON + 1);
        assert_eq!(
            short("é".repeat(300).as_str()).chars().count(),
            MAX_REASON + 1
        );
        assert_eq!(short("fine"), "fine");
    }
}
