//! The signals a running server obeys, and the drain between SIGTERM and
//! the end of accepting.
//!
//! Behind a balancer, a host that stops accepting the moment it is told to
//! stop loses the requests the balancer still sends it until its next probe
//! fails. With a drain delay, SIGTERM first turns `/readyz` to 503 and goes
//! on serving for that long, so the balancer takes the host out of rotation
//! before accepting stops. SIGINT, someone at a terminal, stops at once.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal as Watched, SignalKind};

use crate::health::Health;

pub struct Signals {
    term: Watched,
    int: Watched,
    hup: Watched,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Term,
    Int,
    Hup,
}

/// As the logs name them.
impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Term => "SIGTERM",
            Signal::Int => "SIGINT",
            Signal::Hup => "SIGHUP",
        })
    }
}

impl Signals {
    /// Must run inside the acceptor runtime.
    pub fn watch() -> Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("watching SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("watching SIGINT")?,
            hup: signal(SignalKind::hangup()).context("watching SIGHUP")?,
        })
    }

    /// The next signal; cancel-safe, as each `recv` is.
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Term,
            _ = self.int.recv() => Signal::Int,
            _ = self.hup.recv() => Signal::Hup,
        }
    }
}

/// What a signal leads to.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Reload,
    /// Readiness fails at once; accepting stops after the delay.
    Drain,
    /// Accepting stops now.
    Stop,
}

/// What `signal` does, `draining` telling whether a drain delay runs.
fn step(signal: Signal, draining: bool, delay: Duration) -> Step {
    match signal {
        Signal::Hup => Step::Reload,
        Signal::Term if !draining && !delay.is_zero() => Step::Drain,
        // SIGINT, SIGTERM with no delay, or a second signal during one.
        Signal::Term | Signal::Int => Step::Stop,
    }
}

/// Resolves when accepting should stop: at SIGINT, at SIGTERM with no
/// `delay`, or `delay` after SIGTERM, sooner if a second SIGTERM or a
/// SIGINT comes meanwhile. Each SIGHUP runs `on_hangup`, draining or not.
/// `health` reads as draining from the first SIGTERM or SIGINT on.
pub async fn until_stop(
    signals: &mut Signals,
    health: &Health,
    delay: Duration,
    mut on_hangup: impl AsyncFnMut(),
) {
    let mut drain_ends = None;
    loop {
        let drained = async move {
            match drain_ends {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let signal = tokio::select! {
            signal = signals.next() => signal,
            () = drained => {
                tracing::info!("drain delay over");
                return;
            }
        };
        match step(signal, drain_ends.is_some(), delay) {
            Step::Reload => on_hangup().await,
            Step::Drain => {
                health.start_draining();
                drain_ends = Some(tokio::time::Instant::now() + delay);
                tracing::info!(
                    "SIGTERM: draining; /readyz answers 503 and requests are still served for {} \
                     before accepting stops (SIGTERM again or SIGINT to stop sooner)",
                    humantime::format_duration(delay)
                );
            }
            Step::Stop => {
                if drain_ends.is_some() {
                    tracing::info!("{signal} during the drain delay: stopping now");
                }
                health.start_draining();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sigterm_with_a_delay_drains() {
        let secs = Duration::from_secs;
        assert_eq!(step(Signal::Term, false, secs(5)), Step::Drain);
        assert_eq!(step(Signal::Term, false, Duration::ZERO), Step::Stop);
        assert_eq!(step(Signal::Int, false, secs(5)), Step::Stop);
        assert_eq!(step(Signal::Int, false, Duration::ZERO), Step::Stop);
        // A second signal cuts the delay short.
        assert_eq!(step(Signal::Term, true, secs(5)), Step::Stop);
        assert_eq!(step(Signal::Int, true, secs(5)), Step::Stop);
        // Reloads go on while draining.
        assert_eq!(step(Signal::Hup, false, secs(5)), Step::Reload);
        assert_eq!(step(Signal::Hup, true, secs(5)), Step::Reload);
    }
}
