//! The ` errors=kind:count,...` field every load tool ends its summary with.

use std::collections::BTreeMap;
use std::fmt::{self, Display};

/// Writes ` errors=none`, or the kinds with their counts in name order.
pub fn write(f: &mut fmt::Formatter<'_>, errors: &BTreeMap<String, impl Display>) -> fmt::Result {
    if errors.is_empty() {
        return write!(f, " errors=none");
    }
    let kinds: Vec<String> = errors
        .iter()
        .map(|(kind, count)| format!("{kind}:{count}"))
        .collect();
    write!(f, " errors={}", kinds.join(","))
}
