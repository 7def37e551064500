//! Searching a route's NFA as `regex` would with its lazy DFA and literal
//! prefilters turned off: the one-pass DFA when the pattern is anchored and
//! one-pass, else the bounded backtracker when the path fits its budget,
//! else the PikeVM. All three give `regex`'s leftmost-first captures; each
//! search cache is small and needs no warming, which matters to an instance
//! made for one request.

use regex_automata::dfa::onepass;
use regex_automata::nfa::thompson::backtrack::{self, BoundedBacktracker};
use regex_automata::nfa::thompson::pikevm::{self, PikeVM};
use regex_automata::util::captures::GroupInfo;
use regex_automata::util::primitives::NonMaxUsize;
use regex_automata::{Anchored, Input, PatternID};

use crate::pattern::Pattern;

/// A route's compiled search engines.
pub(crate) struct Matcher {
    onepass: Option<onepass::DFA>,
    backtrack: BoundedBacktracker,
    pikevm: PikeVM,
}

/// A matcher's scratch space.
pub(crate) struct Cache {
    onepass: Option<onepass::Cache>,
    backtrack: backtrack::Cache,
    pikevm: pikevm::Cache,
}

impl Matcher {
    pub(crate) fn new(pattern: &Pattern) -> Result<Self, String> {
        let nfa = pattern.nfa()?;
        // As `regex` does: a one-pass DFA only pays off for the captures
        // it reports, and it can search only from the start.
        let onepass = (nfa.is_always_start_anchored()
            && nfa.group_info().group_len(PatternID::ZERO) > 1)
            .then(|| onepass::DFA::new_from_nfa(nfa.clone()).ok())
            .flatten();
        let backtrack =
            BoundedBacktracker::new_from_nfa(nfa.clone()).map_err(|err| err.to_string())?;
        let pikevm = PikeVM::new_from_nfa(nfa).map_err(|err| err.to_string())?;
        Ok(Matcher {
            onepass,
            backtrack,
            pikevm,
        })
    }

    pub(crate) fn group_info(&self) -> &GroupInfo {
        self.pikevm.get_nfa().group_info()
    }

    pub(crate) fn create_cache(&self) -> Cache {
        Cache {
            onepass: self.onepass.as_ref().map(onepass::DFA::create_cache),
            backtrack: self.backtrack.create_cache(),
            pikevm: self.pikevm.create_cache(),
        }
    }

    /// Fills `slots` with the leftmost-first match's groups; false when
    /// `haystack` does not match.
    pub(crate) fn search(
        &self,
        cache: &mut Cache,
        haystack: &str,
        slots: &mut [Option<NonMaxUsize>],
    ) -> bool {
        let input = Input::new(haystack);
        if let (Some(dfa), Some(cache)) = (&self.onepass, &mut cache.onepass) {
            let anchored = input.clone().anchored(Anchored::Yes);
            if let Ok(found) = dfa.try_search_slots(cache, &anchored, slots) {
                return found.is_some();
            }
        }
        if haystack.len() < self.backtrack.max_haystack_len() {
            if let Ok(found) = self
                .backtrack
                .try_search_slots(&mut cache.backtrack, &input, slots)
            {
                return found.is_some();
            }
        }
        self.pikevm
            .search_slots(&mut cache.pikevm, &input, slots)
            .is_some()
    }
}

#[cfg(test)]
mod tests;
