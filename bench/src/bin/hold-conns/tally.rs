use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::conn::{Kind, Outcome};

/// Counts per kind of connection, displayed as one line of `key=value` pairs
/// so scripts can pick fields out with a split.
#[derive(Default)]
pub struct Tally {
    opened_stalled: usize,
    open_stalled: usize,
    opened_idle: usize,
    open_idle: usize,
    setup: Duration,
    errors: BTreeMap<String, usize>,
}

impl Tally {
    /// A connection that reached its held state.
    pub fn opened(&mut self, kind: Kind) {
        match kind {
            Kind::Stalled => self.opened_stalled += 1,
            Kind::Idle => self.opened_idle += 1,
        }
    }

    pub fn set_up_in(&mut self, setup: Duration) {
        self.setup = setup;
    }

    /// Where a connection stood when the hold ended.
    pub fn finished(&mut self, kind: Kind, outcome: Outcome) {
        match (outcome, kind) {
            (Ok(()), Kind::Stalled) => self.open_stalled += 1,
            (Ok(()), Kind::Idle) => self.open_idle += 1,
            (Err(label), _) => self.add_errors(&label, 1),
        }
    }

    pub fn add_errors(&mut self, label: &str, count: usize) {
        *self.errors.entry(label.to_string()).or_default() += count;
    }

    /// The line printed once every connection is in place, before the hold.
    pub fn ready_line(&self) -> String {
        format!(
            "ready opened_stalled={} opened_idle={} setup_ms={:.0}",
            self.opened_stalled,
            self.opened_idle,
            self.setup.as_secs_f64() * 1000.0
        )
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "opened_stalled={} open_stalled={} opened_idle={} open_idle={} setup_ms={:.0}",
            self.opened_stalled,
            self.open_stalled,
            self.opened_idle,
            self.open_idle,
            self.setup.as_secs_f64() * 1000.0
        )?;
        snow_bench::errors_field::write(f, &self.errors)
    }
}
