//! Header fields as one buffer, the contract's `fields`: a line
//! `name: value` per field, each ended by `\n`.
//!
//! The host writes exactly that form. A module's block is read leniently
//! (a `\r\n` line end, a last line without one, spaces and tabs around a
//! value), because people write these by hand; names and values are then
//! checked by whoever sends them, as any other header would be.

use super::head::{is_field_value_byte, is_tchar};

/// Longest part of a bad line quoted in the error: a module's output ends
/// up in the log.
const QUOTED: usize = 64;

/// A line of a module's header block that is not `name: value`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header line {line:?} is not `name: value`")]
pub struct FieldsError {
    /// The line's start, lossily decoded.
    pub line: String,
}

/// Appends `name: value\n` for each field.
pub fn encode_into<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.push(b'\n');
    }
}

/// How many bytes [`encode_into`] appends for `fields`.
pub fn encoded_len<'a>(fields: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> usize {
    fields.into_iter().map(|(n, v)| n.len() + v.len() + 3).sum()
}

/// The block for `fields`.
pub fn encode(fields: &[(String, Vec<u8>)]) -> Vec<u8> {
    let pairs = || fields.iter().map(|(n, v)| (n.as_str(), &v[..]));
    let mut out = Vec::with_capacity(encoded_len(pairs()));
    encode_into(&mut out, pairs());
    out
}

/// Whether `block` is exactly what [`encode_into`] writes for fields that
/// may be sent as they are: every line `token: value\n`, the value without
/// surrounding spaces or tabs and without a control byte but HTAB. Such a
/// block needs no other check, and its lines go into a head as they are;
/// modules built with the SDK write their blocks this way.
pub fn is_sendable(block: &[u8]) -> bool {
    let mut rest = block;
    while !rest.is_empty() {
        let name = rest.iter().take_while(|&&b| is_tchar(b)).count();
        let Some(after) = rest.get(name..).and_then(|r| r.strip_prefix(b": ")) else {
            return false;
        };
        if name == 0 {
            return false;
        }
        // One pass finds the line's end and checks the value on the way.
        let end = after
            .iter()
            .position(|&b| !is_field_value_byte(b))
            .unwrap_or(after.len());
        if after.get(end) != Some(&b'\n') {
            return false;
        }
        let value = &after[..end];
        let ows = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t'));
        if ows(value.first()) || ows(value.last()) {
            return false;
        }
        rest = &after[end + 1..];
    }
    true
}

/// The lines of a block [`is_sendable`] accepted, without their `\n`,
/// each with its name.
pub fn sendable_lines(block: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    block.split_inclusive(|&b| b == b'\n').map(|line| {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let name = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        (&line[..name], line)
    })
}

/// The fields of a module's block, in order. Empty lines are skipped.
pub fn decode(block: &[u8]) -> Result<Vec<(String, Vec<u8>)>, FieldsError> {
    iter(block)
        .map(|field| field.map(|(name, value)| (name.to_owned(), value.to_vec())))
        .collect()
}

/// The fields of a block without copying them.
pub fn iter(block: &[u8]) -> impl Iterator<Item = Result<(&str, &[u8]), FieldsError>> {
    block
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(|line| {
            let bad = || FieldsError {
                line: String::from_utf8_lossy(&line[..line.len().min(QUOTED)]).into_owned(),
            };
            let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
            let name = std::str::from_utf8(&line[..colon]).map_err(|_| bad())?;
            Ok((name, trim(&line[colon + 1..])))
        })
}

fn trim(value: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(fields: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
        fields.iter().map(|(n, v)| (n.as_str(), &v[..])).collect()
    }

    #[test]
    fn what_the_host_writes_reads_back_the_same() {
        let fields = vec![
            ("Host".to_owned(), b"example.com".to_vec()),
            ("x-empty".to_owned(), Vec::new()),
            ("x-bytes".to_owned(), vec![b'a', 0xff, b'\t', b'b']),
        ];
        let block = encode(&fields);
        assert_eq!(block, b"Host: example.com\nx-empty: \nx-bytes: a\xff\tb\n");
        assert_eq!(decode(&block).expect("decode"), fields);
    }

    #[test]
    fn a_hand_written_block_is_read_leniently() {
        let block = b"a:1\r\nb :\t two words \n\n\r\nc: last";
        let fields = decode(block).expect("decode");
        assert_eq!(
            pairs(&fields),
            [("a", &b"1"[..]), ("b ", b"two words"), ("c", b"last")]
        );
        // The name keeps its space: the sender's token check refuses it.
        assert!(!crate::http::head::is_token(fields[1].0.as_bytes()));
        assert_eq!(decode(b"").expect("empty"), []);
    }

    #[test]
    fn a_value_may_hold_colons_and_keeps_its_inner_bytes() {
        let fields = decode(b"location: http://a:8080/x?y=z\n").expect("decode");
        assert_eq!(pairs(&fields), [("location", &b"http://a:8080/x?y=z"[..])]);
        // A lone CR inside a value stays for the value check to refuse.
        let fields = decode(b"x: a\rinjected: b\n").expect("decode");
        assert_eq!(pairs(&fields), [("x", &b"a\rinjected: b"[..])]);
        assert!(!crate::http::head::is_field_value(&fields[0].1));
    }

    #[test]
    fn only_blocks_in_the_written_form_with_sendable_fields_are_sendable() {
        let written = encode(&[
            ("content-type".to_owned(), b"text/plain".to_vec()),
            ("x-empty".to_owned(), Vec::new()),
            ("x-bytes".to_owned(), vec![b'a', 0xff, b'\t', b'b']),
        ]);
        assert!(is_sendable(&written));
        assert!(is_sendable(b""));
        let hostile: [&[u8]; 14] = [
            b"a:1\n",               // no space after the colon
            b"a: 1",                // no line end
            b"a: 1\r\n",            // CR line end
            b"a: 1\rinjected: 2\n", // lone CR in the value
            b"a: 1\n\n",            // an empty line
            b": 1\n",               // no name
            b"a b: 1\n",            // a space in the name
            b"a : 1\n",             // a space before the colon
            b"\xc3\xa9: 1\n",       // a name that is not a token
            b"a:  1\n",             // a value with a leading space
            b"a: 1 \n",             // ... or a trailing tab or space
            b"a: 1\t\n",
            b"a: \x7f\n", // DEL
            b"a: \x00\n", // NUL
        ];
        for block in hostile {
            assert!(!is_sendable(block), "{:?}", String::from_utf8_lossy(block));
        }
    }

    #[test]
    fn sendable_lines_are_the_fields_as_iter_reads_them() {
        let block = b"content-type: text/plain\nx-colon: a:b\nx-empty: \n";
        assert!(is_sendable(block));
        let lines: Vec<_> = sendable_lines(block).collect();
        let fields: Vec<_> = iter(block).flatten().collect();
        assert_eq!(lines.len(), fields.len());
        for ((name, line), (field, value)) in lines.into_iter().zip(fields) {
            assert_eq!(name, field.as_bytes());
            assert_eq!(line, [field.as_bytes(), b": ", value].concat());
        }
    }

    #[test]
    fn a_line_that_is_not_a_field_is_refused_and_quoted_shortly() {
        let err = decode(b"ok: 1\nno colon here\n").expect_err("no colon");
        assert_eq!(err.line, "no colon here");
        let long = vec![b'x'; 100_000];
        let err = decode(&long).expect_err("long line");
        assert_eq!(err.line.len(), QUOTED);
        let err = decode(b"\xff\xfe: v\n").expect_err("name not UTF-8");
        assert!(err.to_string().contains("is not `name: value`"), "{err}");
    }
}
