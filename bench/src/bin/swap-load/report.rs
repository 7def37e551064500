use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use snow_bench::stats::median;
use tokio::time::Instant;

use crate::marks::{Kind, Mark};
use crate::windows::Counts;

/// One deployment the script made during the run, on the run's clock.
pub struct Swap {
    pub to: String,
    pub start: Duration,
    /// When its answer arrived; `None` when the run ended first.
    pub done: Option<Duration>,
    pub status: Option<String>,
}

impl Swap {
    fn took(&self) -> Option<Duration> {
        self.done.map(|done| done.saturating_sub(self.start))
    }
}

/// Pairs each `done` with the `swap` before it.
pub fn swaps(marks: &[Mark], started: Instant) -> Vec<Swap> {
    let mut swaps: Vec<Swap> = Vec::new();
    for mark in marks {
        let at = mark.at.saturating_duration_since(started);
        match &mark.kind {
            Kind::Swap(to) => swaps.push(Swap {
                to: to.clone(),
                start: at,
                done: None,
                status: None,
            }),
            Kind::Done(status) => match swaps.last_mut() {
                Some(last) if last.done.is_none() => {
                    last.done = Some(at);
                    last.status = Some(status.clone());
                }
                _ => eprintln!("ignoring `done {status}` with no swap under way"),
            },
        }
    }
    swaps
}

/// The run's windows and swaps, and what they say about the dip.
pub struct Report {
    pub connections: usize,
    pub width: Duration,
    pub windows: Vec<Counts>,
    pub versions: Vec<String>,
    pub swaps: Vec<Swap>,
    /// How far either side of a swap a window counts as near it.
    pub near: Duration,
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    fn rate(&self, counts: &Counts) -> f64 {
        counts.ok() as f64 / self.width.as_secs_f64()
    }

    fn span(&self, index: usize) -> (Duration, Duration) {
        let start = self.width * index as u32;
        (start, start + self.width)
    }

    fn run_end(&self) -> Duration {
        self.width * self.windows.len() as u32
    }

    /// Whether window `index` overlaps a swap, from `near` before it was sent
    /// to `near` after its answer came.
    fn is_near(&self, index: usize) -> bool {
        let (from, to) = self.span(index);
        self.swaps.iter().any(|swap| {
            let begin = swap.start.saturating_sub(self.near);
            let end = swap.done.unwrap_or_else(|| self.run_end()) + self.near;
            from < end && to > begin
        })
    }

    /// Whether a swap was sent during window `index`.
    fn has_swap_start(&self, index: usize) -> bool {
        let (from, to) = self.span(index);
        self.swaps.iter().any(|s| s.start >= from && s.start < to)
    }

    /// Answers from a version other than the one just deployed, in windows
    /// that begin after the deployment was acknowledged and before the next
    /// one starts. The admin API answers once the new version is live, so
    /// these should not exist.
    fn stale(&self) -> u64 {
        let mut stale = 0;
        for (i, swap) in self.swaps.iter().enumerate() {
            let (Some(done), Some("200")) = (swap.done, swap.status.as_deref()) else {
                continue;
            };
            let Some(target) = self.versions.iter().position(|v| *v == swap.to) else {
                continue;
            };
            let until = self
                .swaps
                .get(i + 1)
                .map_or(self.run_end(), |next| next.start);
            for (index, counts) in self.windows.iter().enumerate() {
                let (from, to) = self.span(index);
                if from >= done && to <= until {
                    stale += counts.ok() - counts.per_version[target];
                }
            }
        }
        stale
    }

    /// The windows as rows of k req/s, one second to a row: `>` marks a
    /// window in which a swap was sent, `*` one counted as near a swap.
    pub fn grid(&self) -> String {
        let per_row = ((1.0 / self.width.as_secs_f64()).round() as usize).clamp(1, 20);
        let mut out = String::new();
        for (row, chunk) in self.windows.chunks(per_row).enumerate() {
            let at = self.width.as_secs_f64() * (row * per_row) as f64;
            let _ = write!(out, "t={at:4.1}s");
            for (offset, counts) in chunk.iter().enumerate() {
                let index = row * per_row + offset;
                let sent = if self.has_swap_start(index) { '>' } else { ' ' };
                let near = if self.is_near(index) { '*' } else { ' ' };
                let _ = write!(out, " {sent}{:5.1}{near}", self.rate(counts) / 1000.0);
            }
            out.push('\n');
        }
        out
    }

    /// Every window in full, for the file the bench script keeps.
    pub fn series(&self) -> String {
        let mut out = String::new();
        for swap in &self.swaps {
            let _ = writeln!(
                out,
                "# swap to {} sent at {:.1} ms, answered {} at {}",
                swap.to,
                ms(swap.start),
                swap.status.as_deref().unwrap_or("never"),
                swap.done.map_or("-".into(), |d| format!("{:.1} ms", ms(d)))
            );
        }
        let _ = writeln!(
            out,
            "t_ms\treq_per_s\tok\tnon_200\tfailed\t{}\tmax_latency_ms\tnear_swap",
            self.versions.join("\t")
        );
        for (index, counts) in self.windows.iter().enumerate() {
            let versions: Vec<String> = counts.per_version.iter().map(u64::to_string).collect();
            let _ = writeln!(
                out,
                "{:.0}\t{:.0}\t{}\t{}\t{}\t{}\t{:.2}\t{}",
                ms(self.span(index).0),
                self.rate(counts),
                counts.ok(),
                counts.non_200,
                counts.failed,
                versions.join("\t"),
                counts.max_latency_us as f64 / 1000.0,
                if self.is_near(index) { "yes" } else { "no" }
            );
        }
        out
    }
}

/// One line of `key=value` pairs so scripts can pick fields out with a split.
/// Missing measurements print as `na`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rates: Vec<f64> = self.windows.iter().map(|c| self.rate(c)).collect();
        let near: Vec<usize> = (0..self.windows.len())
            .filter(|&i| self.is_near(i))
            .collect();
        let median_rps = median(&rates);
        // Windows that end before the first swap comes near: the rate with
        // no swap anywhere in sight.
        let quiet_until = self
            .swaps
            .first()
            .map_or(self.run_end(), |s| s.start.saturating_sub(self.near));
        let before: Vec<f64> = (0..self.windows.len())
            .filter(|&i| self.span(i).1 <= quiet_until)
            .map(|i| rates[i])
            .collect();
        let lowest = near
            .iter()
            .map(|&i| (i, rates[i]))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let dip = match (median_rps, lowest) {
            (Some(m), Some((_, low))) if m > 0.0 => Some(((1.0 - low / m) * 100.0).max(0.0)),
            _ => None,
        };
        // The mean rate from each swap being sent to `near` after its
        // answer, over the median: one figure per swap, averaged, so that a
        // lone slow window (the machine's noise) weighs less than in `dip`.
        let after: Vec<f64> = self
            .swaps
            .iter()
            .filter_map(|swap| {
                let end = swap.done? + self.near;
                let during: Vec<f64> = (0..self.windows.len())
                    .filter(|&i| {
                        let (begin, finish) = self.span(i);
                        finish > swap.start && begin < end
                    })
                    .map(|i| rates[i])
                    .collect();
                mean(&during)
            })
            .collect();
        let kept = match (median_rps, mean(&after)) {
            (Some(m), Some(a)) if m > 0.0 => Some(a / m * 100.0),
            _ => None,
        };
        let latency = |near_swap: bool| {
            (0..self.windows.len())
                .filter(|&i| self.is_near(i) == near_swap)
                .map(|i| self.windows[i].max_latency_us as f64 / 1000.0)
                .reduce(f64::max)
        };
        let took: Vec<f64> = self.swaps.iter().filter_map(|s| s.took()).map(ms).collect();
        let swaps_ok = self
            .swaps
            .iter()
            .filter(|s| s.status.as_deref() == Some("200"))
            .count();
        let ok: u64 = self.windows.iter().map(Counts::ok).sum();
        let non_200: u64 = self.windows.iter().map(|c| c.non_200).sum();
        let failed: u64 = self.windows.iter().map(|c| c.failed).sum();
        write!(
            f,
            "connections={} windows={} window_ms={:.0} swaps={} swaps_ok={swaps_ok}",
            self.connections,
            self.windows.len(),
            ms(self.width),
            self.swaps.len()
        )?;
        write!(
            f,
            " median_rps={} before_swaps_rps={} min_near_rps={} min_near_at_ms={} dip_pct={}",
            or_na(median_rps, 0),
            or_na(median(&before), 0),
            or_na(lowest.map(|(_, r)| r), 0),
            or_na(lowest.map(|(i, _)| ms(self.span(i).0)), 0),
            or_na(dip, 1)
        )?;
        write!(f, " kept_after_swaps_pct={}", or_na(kept, 1))?;
        write!(
            f,
            " near_max_latency_ms={} far_max_latency_ms={} swap_median_ms={} swap_max_ms={}",
            or_na(latency(true), 2),
            or_na(latency(false), 2),
            or_na(median(&took), 1),
            or_na(took.iter().copied().reduce(f64::max), 1)
        )?;
        write!(f, " ok={ok}")?;
        for (v, name) in self.versions.iter().enumerate() {
            let served: u64 = self.windows.iter().map(|c| c.per_version[v]).sum();
            write!(f, " served_{name}={served}")?;
        }
        write!(
            f,
            " non_200={non_200} failed={failed} stale={}",
            self.stale()
        )?;
        snow_bench::errors_field::write(f, &self.errors)
    }
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn or_na(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) => format!("{v:.decimals$}"),
        None => "na".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(one: u64, two: u64) -> Counts {
        Counts {
            per_version: vec![one, two],
            non_200: 0,
            failed: 0,
            max_latency_us: 1000,
        }
    }

    fn millis(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// Ten windows of 100 ms at 100 requests each, one swap to `two` sent at
    /// 500 ms and answered at 550 ms, with a slow window right after it.
    fn report() -> Report {
        let mut windows: Vec<Counts> = (0..5).map(|_| window(100, 0)).collect();
        windows.push(window(20, 30));
        windows.extend((0..4).map(|_| window(0, 100)));
        Report {
            connections: 1,
            width: millis(100),
            windows,
            versions: vec!["one".into(), "two".into()],
            swaps: vec![Swap {
                to: "two".into(),
                start: millis(500),
                done: Some(millis(550)),
                status: Some("200".into()),
            }],
            near: millis(300),
            errors: BTreeMap::new(),
        }
    }

    fn field(line: &str, key: &str) -> String {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn near_covers_the_swap_and_its_margins() {
        let report = report();
        let near: Vec<usize> = (0..10).filter(|&i| report.is_near(i)).collect();
        // 200..850 ms overlaps windows 2 to 8.
        assert_eq!(near, vec![2, 3, 4, 5, 6, 7, 8]);
        assert!(report.has_swap_start(5));
    }

    #[test]
    fn summary_reports_the_dip_against_the_median() {
        let line = report().to_string();
        assert_eq!(field(&line, "median_rps"), "1000");
        assert_eq!(field(&line, "before_swaps_rps"), "1000");
        assert_eq!(field(&line, "min_near_rps"), "500");
        assert_eq!(field(&line, "min_near_at_ms"), "500");
        assert_eq!(field(&line, "dip_pct"), "50.0");
        // 500..850 ms: windows 5 to 8, at 500, 1000, 1000 and 1000 req/s.
        assert_eq!(field(&line, "kept_after_swaps_pct"), "87.5");
        assert_eq!(field(&line, "swap_median_ms"), "50.0");
        assert_eq!(field(&line, "stale"), "0");
    }

    #[test]
    fn old_version_answers_after_the_swap_are_stale() {
        let mut report = report();
        report.windows[7] = window(3, 97);
        // Window 5 holds the swap itself, so its old answers are not stale.
        assert_eq!(report.stale(), 3);
    }

    #[test]
    fn done_marks_pair_with_the_swap_before_them() {
        let start = Instant::now();
        let mark = |ms: u64, kind| Mark {
            at: start + millis(ms),
            kind,
        };
        let marks = vec![
            mark(1000, Kind::Swap("two".into())),
            mark(1040, Kind::Done("200".into())),
            mark(2000, Kind::Swap("one".into())),
        ];
        let swaps = swaps(&marks, start);
        assert_eq!(swaps.len(), 2);
        assert_eq!(swaps[0].took(), Some(millis(40)));
        assert_eq!(swaps[1].done, None);
    }
}
