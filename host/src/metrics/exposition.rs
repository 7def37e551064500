//! Writing the text exposition format 0.0.4.

use std::fmt::{self, Write as _};

use crate::runtime::TrapReason;

/// The exposition text being built.
#[derive(Default)]
pub(super) struct Exposition(pub(super) String);

impl Exposition {
    /// HELP and TYPE lines; `help` must not hold a backslash or newline.
    pub(super) fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample line; label values must already be escaped.
    pub(super) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        self.0.push_str(name);
        let mut separator = '{';
        for (label, value) in labels {
            self.0.push(separator);
            separator = ',';
            let _ = write!(self.0, "{label}=\"{value}\"");
        }
        if !labels.is_empty() {
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// Every reason, zeros included, so that the first trap of a module is
    /// an increase an alert can see rather than a series appearing at 1.
    pub(super) fn by_reason(&mut self, name: &str, module: &str, counts: &[u64]) {
        for (reason, count) in TrapReason::ALL.iter().zip(counts) {
            let labels = [("module", module), ("reason", reason.label())];
            self.sample(name, &labels, count);
        }
    }
}

/// Escapes a label value as the format requires: backslash, double quote
/// and line feed.
pub(super) fn escape_label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}
