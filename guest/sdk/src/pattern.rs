//! A route's pattern and how its NFA is made: read from the table
//! `app!` compiled it to when the module was built, or compiled from its
//! text when the module starts (a pattern that is not a string literal).
//!
//! The table (written by `snow-guest-macros`) is a list of `u32`: a header
//! `[start_anchored, start_unanchored, pattern_start, utf8, states]`, then
//! each state in order, a tag and its fields:
//!
//! | tag | state | fields |
//! |---|---|---|
//! | 0 | byte range | `start \| end << 8`, next |
//! | 1 | sparse | n, then n × (`start \| end << 8`, next) |
//! | 2 | look-around | `Look::as_repr`, next |
//! | 3 | union | n, then n alternates |
//! | 4 | binary union | alt1, alt2 |
//! | 5 | capture start | next, group, name (0: none; else index + 1) |
//! | 6 | capture end | next, group |
//! | 7 | fail | |
//! | 8 | match | |
//!
//! States are added to `regex-automata`'s NFA builder in the same order,
//! none of them empty, so each keeps its number.

use std::borrow::Cow;
use std::sync::Arc;

use regex_automata::nfa::thompson::{self, Builder, Transition, NFA};
use regex_automata::util::look::Look;
use regex_automata::util::primitives::StateID;

/// A route's regular expression, with `regex`'s syntax.
pub struct Pattern {
    source: Cow<'static, str>,
    build: Build,
}

enum Build {
    Table(&'static [u32], &'static [&'static str]),
    /// Kept as a pointer so that a module whose patterns are all literals
    /// links no regex compiler.
    Source(fn(&str) -> Result<NFA, String>),
}

impl Pattern {
    /// A pattern `app!` compiled when the module was built.
    #[doc(hidden)]
    pub const fn precompiled(
        source: &'static str,
        table: &'static [u32],
        names: &'static [&'static str],
    ) -> Self {
        Pattern {
            source: Cow::Borrowed(source),
            build: Build::Table(table, names),
        }
    }

    fn from_source(source: Cow<'static, str>) -> Self {
        Pattern {
            source,
            build: Build::Source(compile),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The pattern's NFA.
    pub(crate) fn nfa(&self) -> Result<NFA, String> {
        match self.build {
            Build::Table(table, names) => decode(table, names),
            Build::Source(compile) => compile(&self.source),
        }
    }
}

impl From<&'static str> for Pattern {
    fn from(source: &'static str) -> Self {
        Pattern::from_source(Cow::Borrowed(source))
    }
}

impl From<String> for Pattern {
    fn from(source: String) -> Self {
        Pattern::from_source(Cow::Owned(source))
    }
}

impl From<&String> for Pattern {
    fn from(source: &String) -> Self {
        Pattern::from_source(Cow::Owned(source.clone()))
    }
}

/// What `snow-guest-macros` does at build time, done now.
fn compile(source: &str) -> Result<NFA, String> {
    thompson::Compiler::new()
        .syntax(regex_automata::util::syntax::Config::new())
        .configure(
            thompson::Config::new()
                .which_captures(thompson::WhichCaptures::All)
                .shrink(false),
        )
        .build(source)
        .map_err(|err| err.to_string())
}

// The state tags of the table above.
const BYTE_RANGE: u32 = 0;
const SPARSE: u32 = 1;
const LOOK: u32 = 2;
const UNION: u32 = 3;
const BINARY_UNION: u32 = 4;
const CAPTURE_START: u32 = 5;
const CAPTURE_END: u32 = 6;
const FAIL: u32 = 7;
const MATCH: u32 = 8;

/// Rebuilds the NFA a table describes.
fn decode(table: &[u32], names: &[&str]) -> Result<NFA, String> {
    let mut words = Words(table.iter());
    let start_anchored = words.state()?;
    let start_unanchored = words.state()?;
    let pattern_start = words.state()?;
    let utf8 = words.next()? != 0;
    let states = words.next()?;
    let mut builder = Builder::new();
    builder.set_utf8(utf8);
    builder.start_pattern().map_err(|err| err.to_string())?;
    for _ in 0..states {
        let added = match words.next()? {
            BYTE_RANGE => builder.add_range(words.transition()?),
            SPARSE => builder.add_sparse(words.list(Words::transition)?),
            LOOK => {
                let look = Look::from_repr(words.next()?).ok_or("unknown look-around")?;
                builder.add_look(words.state()?, look)
            }
            UNION => builder.add_union(words.list(Words::state)?),
            BINARY_UNION => builder.add_union(vec![words.state()?, words.state()?]),
            CAPTURE_START => {
                let next = words.state()?;
                let group = words.next()?;
                let name = match words.next()? {
                    0 => None,
                    n => Some(Arc::from(
                        *names.get(n as usize - 1).ok_or("unknown group name")?,
                    )),
                };
                builder.add_capture_start(next, group, name)
            }
            CAPTURE_END => {
                let next = words.state()?;
                builder.add_capture_end(next, words.next()?)
            }
            FAIL => builder.add_fail(),
            MATCH => builder.add_match(),
            tag => return Err(format!("unknown state tag {tag}")),
        };
        added.map_err(|err| err.to_string())?;
    }
    builder
        .finish_pattern(pattern_start)
        .map_err(|err| err.to_string())?;
    builder
        .build(start_anchored, start_unanchored)
        .map_err(|err| err.to_string())
}

struct Words<'a>(std::slice::Iter<'a, u32>);

impl Words<'_> {
    fn next(&mut self) -> Result<u32, String> {
        self.0
            .next()
            .copied()
            .ok_or_else(|| "table ends early".into())
    }

    /// A count, then that many items.
    fn list<T>(&mut self, item: impl Fn(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        let n = self.next()?;
        (0..n).map(|_| item(self)).collect()
    }

    fn state(&mut self) -> Result<StateID, String> {
        let id = self.next()?;
        StateID::new(id as usize).map_err(|_| format!("state {id} out of range"))
    }

    fn transition(&mut self) -> Result<Transition, String> {
        let range = self.next()?;
        Ok(Transition {
            start: (range & 0xff) as u8,
            end: ((range >> 8) & 0xff) as u8,
            next: self.state()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_table_is_an_error_not_a_panic() {
        let good = snow_guest_macros::pattern!(crate, r"^/u/(?P<id>\d+)/(x|y|z)$");
        let Build::Table(table, names) = good.build else {
            panic!("a literal is compiled when the module is built");
        };
        assert!(decode(table, names).is_ok());
        for cut in 0..table.len() {
            assert!(decode(&table[..cut], names).is_err(), "cut at {cut}");
        }
        let mut bad = table.to_vec();
        bad[5] = 99;
        assert!(decode(&bad, names).is_err(), "unknown tag");
        assert!(decode(table, &[]).is_err(), "missing name");
    }
}
