//! Header fields as the contract carries them: one buffer, a line
//! `name: value` per field, each ended by `\n`.

// A `wasi:http` build has no snow boundary: only `check` serves it.
#![cfg_attr(feature = "wasi-http", allow(dead_code))]

use crate::Header;

/// A header the SDK will not send: its line would be read as another
/// field, or as more than one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadHeader {
    pub name: String,
}

impl std::fmt::Display for BadHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "header {:?}: a line break or a colon in the name, or a line break in the value",
            self.name
        )
    }
}

/// The block for `headers`; refused when a name or value would not stay
/// one line, so that a value a client chose cannot add fields of its own.
pub(crate) fn encode(headers: &[Header]) -> Result<Vec<u8>, BadHeader> {
    check(headers)?;
    Ok(encode_checked(headers))
}

/// Whether every header stays one line of its block.
pub(crate) fn check(headers: &[Header]) -> Result<(), BadHeader> {
    match headers.iter().find(|h| !one_line(h)) {
        Some(bad) => Err(BadHeader {
            name: bad.name.chars().take(64).collect(),
        }),
        None => Ok(()),
    }
}

/// Only what would move a line's boundaries is checked here: a line break
/// anywhere, or a colon in the name. The host checks names and values
/// fully, as it does any module's, and answers 500 for the rest.
fn one_line(header: &Header) -> bool {
    let name = header.name.as_bytes();
    !name.iter().any(|&b| b == b'\n' || b == b':') && !header.value.contains(&b'\n')
}

/// The block for headers that passed [`check`].
pub(crate) fn encode_checked(headers: &[Header]) -> Vec<u8> {
    let len = headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 3)
        .sum();
    let mut out = Vec::with_capacity(len);
    for header in headers {
        out.extend_from_slice(header.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&header.value);
        out.push(b'\n');
    }
    out
}

/// The fields of a block the host wrote. A line the host would never write
/// (no `:`) is skipped rather than guessed at.
pub(crate) fn decode(block: &[u8]) -> Vec<Header> {
    let mut headers = Vec::new();
    for_each(block, |name, value| {
        // The host's names are ASCII: the lossy path never runs for them.
        let name = match std::str::from_utf8(name) {
            Ok(name) => name.to_owned(),
            Err(_) => String::from_utf8_lossy(name).into_owned(),
        };
        headers.push(Header {
            name,
            value: value.to_vec(),
        });
        false
    });
    headers
}

/// The value of the block's first field named `name`, compared
/// case-insensitively, without reading the block into headers.
pub(crate) fn find<'b>(block: &'b [u8], name: &str) -> Option<&'b [u8]> {
    let mut found = None;
    for_each(block, |field, value| {
        let hit = field.eq_ignore_ascii_case(name.as_bytes());
        if hit {
            found = Some(value);
        }
        hit
    });
    found
}

/// Calls `f` with each field's name and value, in order, until it
/// returns true.
fn for_each<'b>(block: &'b [u8], mut f: impl FnMut(&'b [u8], &'b [u8]) -> bool) {
    let mut rest = block;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if f(&line[..colon], line[colon + 1..].trim_ascii()) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip() {
        let headers = vec![
            Header::new("content-type", "text/plain"),
            Header::new("x-empty", ""),
            Header::new("x-bytes", vec![b'a', 0xff, b'\t', b'b']),
        ];
        let block = encode(&headers).expect("encode");
        assert_eq!(
            block,
            b"content-type: text/plain\nx-empty: \nx-bytes: a\xff\tb\n"
        );
        assert_eq!(decode(&block), headers);
        assert_eq!(encode(&[]).expect("empty"), b"");
    }

    #[test]
    fn find_reads_a_block_as_decode_does() {
        let blocks: [&[u8]; 4] = [
            b"Content-Type: text/plain\nx-two: a\nX-Two: b\nx-sp:\t padded \r\nlast:  end",
            b"x-a:b: c\n: empty name\nno colon\n\n\r\nx-a: 1\n",
            b" x-lead: 1\nx-trail : 2\nx-cr: v\r\n",
            b"",
        ];
        let names = [
            "content-type",
            "X-TWO",
            "x-sp",
            "last",
            "x-a",
            "x-a:b",
            "",
            "no colon",
            "x-lead",
            " x-lead",
            "x-trail",
            "x-trail ",
            "x-cr",
            "missing",
            "x-two\nx",
        ];
        for block in blocks {
            let decoded = decode(block);
            for name in names {
                assert_eq!(
                    find(block, name),
                    crate::Header::find(&decoded, name),
                    "{name:?} in {:?}",
                    String::from_utf8_lossy(block)
                );
            }
        }
    }

    #[test]
    fn a_header_that_would_add_or_rename_a_field_is_refused() {
        for value in [&b"a\nset-cookie: x=1"[..], b"a\r\nb: c", b"\n"] {
            let err = encode(&[Header::new("x-echo", value)]).expect_err("refused");
            assert_eq!(err.name, "x-echo");
        }
        for name in ["a:b", "set-cookie: x=1; y", "a\nb", "\n"] {
            assert!(encode(&[Header::new(name, "v")]).is_err(), "{name:?}");
        }
        let long = "\n".repeat(1000);
        let err = encode(&[Header::new(long, "v")]).expect_err("refused");
        assert!(err.to_string().len() < 400, "{err}");
        // The host refuses what stays one line but is not a field: the
        // line reaches it whole.
        for (name, value) in [
            ("a b", &b"v"[..]),
            ("", b"v"),
            ("x", b"a\rb"),
            ("x", b"a\0b"),
        ] {
            let block = encode(&[Header::new(name, value)]).expect("one line");
            assert_eq!(block.iter().filter(|&&b| b == b'\n').count(), 1);
        }
    }

    #[test]
    fn a_field_is_found_without_reading_the_block() {
        let block = b"Host: h\nx-a: v: w\r\nX-A: second\nbroken line\nx-b:\tpadded \n";
        assert_eq!(find(block, "x-a"), Some(&b"v: w"[..]));
        assert_eq!(find(block, "HOST"), Some(&b"h"[..]));
        assert_eq!(find(block, "x-b"), Some(&b"padded"[..]));
        assert_eq!(find(block, "broken line"), None);
        assert_eq!(find(block, "missing"), None);
        assert_eq!(find(b"", "x"), None);
    }

    #[test]
    fn an_odd_block_gives_what_it_can_not_a_panic() {
        let odd = decode(b"no colon\n:\n\xff: v");
        assert_eq!(odd, [Header::new("", ""), Header::new("\u{fffd}", "v")]);
    }
}
