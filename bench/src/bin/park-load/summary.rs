use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::rss::Memory;

/// The run's result, displayed as one line of `key=value` pairs so scripts
/// can pick fields out with a split. Missing measurements print as `na`.
pub struct Summary {
    n: usize,
    holds: Vec<Duration>,
    errors: BTreeMap<String, usize>,
    ramp: Duration,
    wall: Duration,
    memory: Option<Memory>,
}

impl Summary {
    pub fn new(
        n: usize,
        mut holds: Vec<Duration>,
        errors: BTreeMap<String, usize>,
        ramp: Duration,
        wall: Duration,
        memory: Option<Memory>,
    ) -> Self {
        holds.sort_unstable();
        Self {
            n,
            holds,
            errors,
            ramp,
            wall,
            memory,
        }
    }

    /// Nearest-rank percentile of the successful hold times, in ms.
    fn hold_ms(&self, percentile: f64) -> Option<f64> {
        if self.holds.is_empty() {
            return None;
        }
        let rank = ((percentile / 100.0) * self.holds.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.holds.len()) - 1;
        Some(self.holds[index].as_secs_f64() * 1000.0)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ok = self.holds.len();
        write!(f, "n={} ok={} failed={}", self.n, ok, self.n - ok)?;
        for (name, percentile) in [("p50", 50.0), ("p99", 99.0), ("max", 100.0)] {
            write!(f, " hold_{name}_ms={}", or_na(self.hold_ms(percentile), 1))?;
        }
        write!(
            f,
            " ramp_ms={:.0} wall_ms={:.0}",
            self.ramp.as_secs_f64() * 1000.0,
            self.wall.as_secs_f64() * 1000.0
        )?;
        let (idle, peak, hwm, per_request) = match &self.memory {
            Some(m) => {
                let grown = m.peak_kib.saturating_sub(m.idle_kib) as f64;
                (
                    Some(m.idle_kib as f64),
                    Some(m.peak_kib as f64),
                    m.hwm_kib.map(|v| v as f64),
                    Some(grown / self.n as f64),
                )
            }
            None => (None, None, None, None),
        };
        write!(
            f,
            " idle_rss_kib={} peak_rss_kib={} hwm_rss_kib={} per_request_kib={}",
            or_na(idle, 0),
            or_na(peak, 0),
            or_na(hwm, 0),
            or_na(per_request, 2)
        )?;
        let pss_per_request = self.memory.as_ref().and_then(|m| {
            let grown = m.peak_pss_kib?.saturating_sub(m.idle_pss_kib?) as f64;
            Some(grown / self.n as f64)
        });
        write!(f, " per_request_pss_kib={}", or_na(pss_per_request, 2))?;
        snow_bench::errors_field::write(f, &self.errors)
    }
}

fn or_na(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) => format!("{v:.decimals$}"),
        None => "na".to_string(),
    }
}
