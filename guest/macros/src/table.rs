//! A pattern's NFA as numbers, in the format `snow_guest`'s `pattern`
//! module reads back (its tags and layout are documented there).

use regex_automata::nfa::thompson::{self, State, WhichCaptures, NFA};
use regex_automata::util::syntax;
use regex_automata::PatternID;

const BYTE_RANGE: u32 = 0;
const SPARSE: u32 = 1;
const LOOK: u32 = 2;
const UNION: u32 = 3;
const BINARY_UNION: u32 = 4;
const CAPTURE_START: u32 = 5;
const CAPTURE_END: u32 = 6;
const FAIL: u32 = 7;
const MATCH: u32 = 8;

/// The table and the capture group names it refers to.
pub struct Compiled {
    pub numbers: Vec<u32>,
    pub names: Vec<String>,
}

/// Compiles `pattern` as `regex` does (Unicode, UTF-8, every group
/// captured, leftmost-first) and encodes the NFA.
pub fn compile(pattern: &str) -> Result<Compiled, String> {
    let nfa = thompson::Compiler::new()
        .syntax(syntax::Config::new())
        .configure(
            thompson::Config::new()
                .which_captures(WhichCaptures::All)
                .shrink(false),
        )
        .build(pattern)
        .map_err(|err| explain(&err))?;
    encode(&nfa)
}

/// The error and what it says caused it: the syntax error with its
/// position is the cause of "error parsing regex".
fn explain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(err) = cause {
        text = format!("{text}: {err}");
        cause = err.source();
    }
    text
}

fn encode(nfa: &NFA) -> Result<Compiled, String> {
    let pid = PatternID::ZERO;
    let start = nfa
        .start_pattern(pid)
        .ok_or("the NFA has no pattern")?
        .as_u32();
    let mut numbers = vec![
        nfa.start_anchored().as_u32(),
        nfa.start_unanchored().as_u32(),
        start,
        u32::from(nfa.is_utf8()),
        u32::try_from(nfa.states().len()).map_err(|_| "too many states")?,
    ];
    let mut names = Vec::new();
    let info = nfa.group_info();
    for state in nfa.states() {
        match state {
            State::ByteRange { trans } => numbers.extend([
                BYTE_RANGE,
                range(trans.start, trans.end),
                trans.next.as_u32(),
            ]),
            State::Sparse(sparse) => {
                numbers.extend([SPARSE, len(sparse.transitions.len())?]);
                for trans in sparse.transitions.iter() {
                    numbers.extend([range(trans.start, trans.end), trans.next.as_u32()]);
                }
            }
            State::Dense(_) => return Err("dense NFA states are not encoded".into()),
            State::Look { look, next } => numbers.extend([LOOK, look.as_repr(), next.as_u32()]),
            State::Union { alternates } => {
                numbers.extend([UNION, len(alternates.len())?]);
                numbers.extend(alternates.iter().map(|id| id.as_u32()));
            }
            State::BinaryUnion { alt1, alt2 } => {
                numbers.extend([BINARY_UNION, alt1.as_u32(), alt2.as_u32()])
            }
            State::Capture {
                next,
                group_index,
                slot,
                ..
            } => {
                let group = group_index.as_u32();
                if slot.as_usize() % 2 == 0 {
                    // 0 is no name; a name's index into `names` is one less.
                    // A repeated group (`(?P<n>x){3}`) starts more than
                    // once and keeps its one entry.
                    let name = match info.to_name(pid, group_index.as_usize()) {
                        Some(name) => match names.iter().position(|known| known == name) {
                            Some(index) => len(index + 1)?,
                            None => {
                                names.push(name.to_owned());
                                len(names.len())?
                            }
                        },
                        None => 0,
                    };
                    numbers.extend([CAPTURE_START, next.as_u32(), group, name]);
                } else {
                    numbers.extend([CAPTURE_END, next.as_u32(), group]);
                }
            }
            State::Fail => numbers.push(FAIL),
            State::Match { .. } => numbers.push(MATCH),
        }
    }
    Ok(Compiled { numbers, names })
}

fn range(start: u8, end: u8) -> u32 {
    u32::from(start) | (u32::from(end) << 8)
}

fn len(n: usize) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| "the NFA is too large".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_the_starts_and_counts_the_states() {
        let compiled = compile(r"^/a/(\d+)$").expect("valid pattern");
        let states = compiled.numbers[4] as usize;
        assert!(states > 5, "{states}");
        assert_eq!(compiled.numbers[3], 1, "UTF-8 mode");
        assert!(compiled.names.is_empty());
    }

    #[test]
    fn names_are_listed_once_each_in_group_order() {
        let compiled = compile(r"^/(?P<a>x)/(y)/(?P<b>z)$").expect("valid pattern");
        assert_eq!(compiled.names, ["a", "b"]);
        let compiled = compile(r"^/(?P<a>x){3}/(?P<b>z)+$").expect("valid pattern");
        assert_eq!(compiled.names, ["a", "b"], "repeated groups");
    }

    #[test]
    fn bad_patterns_say_why() {
        let err = compile(r"^/(x$").err().expect("unclosed group");
        assert!(err.contains("unclosed"), "{err}");
        assert!(compile(r"(?P<n>a)(?P<n>b)").is_err(), "duplicate name");
    }
}
