//! The capture groups of the route a request matched.

use std::ops::Range;

use regex_automata::util::captures::GroupInfo;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::PatternID;

use crate::matcher::{Cache, Matcher};

/// Where each group matched, as offsets into the path, and the route's
/// group names. `regex`'s own `Captures` would hold a counted reference to
/// the group table, and counting it writes to the table's memory on every
/// request: in a snapshotted instance that is a page copied for nothing.
#[derive(Debug)]
pub(crate) struct Groups {
    info: &'static GroupInfo,
    slots: Vec<Option<NonMaxUsize>>,
}

impl Groups {
    /// Searches `path` with `matcher`; `None` when it does not match.
    pub(crate) fn search(matcher: &'static Matcher, cache: &mut Cache, path: &str) -> Option<Self> {
        let info = matcher.group_info();
        let mut slots = vec![None; info.slot_len()];
        matcher
            .search(cache, path, &mut slots)
            .then_some(Groups { info, slots })
    }

    /// The groups of a match of the whole path by a pattern without
    /// groups of its own.
    pub(crate) fn whole(matcher: &'static Matcher, len: usize) -> Self {
        let info = matcher.group_info();
        let mut slots = vec![None; info.slot_len()];
        if let Some((start, end)) = info.slots(PatternID::ZERO, 0) {
            for (slot, offset) in [(start, 0), (end, len)] {
                if let Some(slot) = slots.get_mut(slot) {
                    *slot = NonMaxUsize::new(offset);
                }
            }
        }
        Groups { info, slots }
    }

    /// Group `index`'s offsets: 0 is the whole match.
    pub(crate) fn get(&self, index: usize) -> Option<Range<usize>> {
        let (start, end) = self.info.slots(PatternID::ZERO, index)?;
        let start = (*self.slots.get(start)?)?.get();
        let end = (*self.slots.get(end)?)?.get();
        Some(start..end)
    }

    /// A named group's offsets.
    pub(crate) fn named(&self, name: &str) -> Option<Range<usize>> {
        self.get(self.info.to_index(PatternID::ZERO, name)?)
    }
}
