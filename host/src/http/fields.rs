//! Header fields as one buffer, the contract's `fields`: a line
//! `name: value` per field, each ended by `\n`.
//!
//! The host writes exactly that form. A module's block is read leniently
//! (a `\r\n` line end, a last line without one, spaces and tabs around a
//! value), because people write these by hand; names and values are then
//! checked by whoever sends them, as any other header would be.

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
