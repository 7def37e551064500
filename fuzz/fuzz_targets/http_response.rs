//! Responses built from whatever a module might return: either the writer
//! refuses (and appends nothing), or the bytes it appends are one well-framed
//! response that an independent parser reads back exactly as intended. The
//! same headers as a module's header block (`fields`, one `name: value`
//! line each) are either refused or written as those fields would be.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use snow::http::response::{reason, ResponseOptions};
use snow::http::{fields, write_error, write_response, Response, Version};

/// Names the writer treats specially, so the fuzzer need not guess them.
const KNOWN_NAMES: [&str; 10] = [
    "content-length",
    "Content-Length",
    "TRANSFER-ENCODING",
    "connection",
    "Date",
    "content-type",
    "Set-Cookie",
    "X-A",
    "Host",
    "Content-Length ",
];

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    /// Printable ASCII only, so that valid responses are common.
    Plain(Vec<u8>),
    Any(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Chooses between a status near the valid range and any `u16`.
    near_status: bool,
    status: u16,
    headers: Vec<(Name, Value)>,
    body: Vec<u8>,
    head_request: bool,
    keep_alive: bool,
    http10: bool,
    /// Output already buffered for earlier pipelined responses.
    earlier: Vec<u8>,
    /// Line ends of the header block: `\r\n` rather than `\n`.
    crlf: bool,
    error_detail: String,
}

impl Name {
    fn get(&self) -> &str {
        match self {
            Name::Known(i) => KNOWN_NAMES[usize::from(*i) % KNOWN_NAMES.len()],
            Name::Any(s) => s,
        }
    }
}

impl Value {
    fn get(&self) -> Vec<u8> {
        match self {
            Value::Plain(v) => v.iter().map(|b| b' ' + b % 95).collect(),
            Value::Any(v) => v.clone(),
        }
    }
}

const SERVER_OWNED: [&str; 4] = ["content-length", "transfer-encoding", "connection", "date"];

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// RFC 9110 §5.5: field values hold HTAB, SP, VCHAR and obs-text only.
fn is_field_value(v: &[u8]) -> bool {
    v.iter().all(|&b| b == b'\t' || (b >= b' ' && b != 0x7f))
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Every CR in the head starts a CRLF and every LF ends one.
fn only_crlf_line_ends(head: &[u8]) {
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(head.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            b'\n' => assert_eq!(head.get(i.wrapping_sub(1)), Some(&b'\r'), "bare LF at {i}"),
            _ => {}
        }
    }
}

struct Expected<'a> {
    status: u16,
    headers: Vec<(&'a str, &'a [u8])>,
    body: &'a [u8],
    opts: ResponseOptions,
}

/// Parses `bytes` as exactly one response and checks it against `want`.
fn check_response(bytes: &[u8], want: &Expected) {
    let mut slots = vec![httparse::EMPTY_HEADER; want.headers.len() + 8];
    let mut parsed = httparse::Response::new(&mut slots);
    let head_len = match parsed.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!(
            "unparsable response {other:?}: {:?}",
            String::from_utf8_lossy(bytes)
        ),
    };
    only_crlf_line_ends(&bytes[..head_len]);
    assert_eq!(parsed.version, Some(1));
    assert_eq!(parsed.code, Some(want.status));
    assert_eq!(parsed.reason, Some(reason(want.status)));

    let count = |name: &str| {
        parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    let value = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };

    let bodiless = want.status == 204 || want.status == 304;
    if bodiless {
        assert_eq!(count("content-length"), 0);
    } else {
        assert_eq!(count("content-length"), 1);
        let length = want.body.len().to_string();
        assert_eq!(value("content-length"), Some(length.as_bytes()));
    }
    assert_eq!(count("transfer-encoding"), 0);
    assert_eq!(count("date"), 1);
    assert_eq!(value("date").map(<[u8]>::len), Some(29));
    let connection = match (want.opts.keep_alive, want.opts.version) {
        (false, _) => Some(&b"close"[..]),
        (true, Version::Http10) => Some(&b"keep-alive"[..]),
        (true, Version::Http11) => None,
    };
    assert_eq!(value("connection"), connection);
    assert!(count("connection") <= 1);

    // The caller's own headers survive in order and unaltered.
    let kept: Vec<(&str, &[u8])> = parsed
        .headers
        .iter()
        .filter(|h| {
            !SERVER_OWNED
                .iter()
                .any(|own| h.name.eq_ignore_ascii_case(own))
        })
        .map(|h| (h.name, trim(h.value)))
        .collect();
    let given: Vec<(&str, &[u8])> = want
        .headers
        .iter()
        .filter(|(n, _)| !SERVER_OWNED.iter().any(|own| n.eq_ignore_ascii_case(own)))
        .map(|&(n, v)| (n, trim(v)))
        .collect();
    assert_eq!(kept, given);

    let sent_body = if bodiless || want.opts.head_request {
        &[][..]
    } else {
        want.body
    };
    assert_eq!(&bytes[head_len..], sent_body, "body or trailing bytes");
}

/// `response` without its `date` line, which may tick between two writes.
fn without_date(response: &[u8]) -> Vec<u8> {
    let start = response
        .windows(8)
        .position(|w| w == b"\r\ndate: ")
        .expect("a date line");
    let len = response[start + 2..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("the date line ends");
    [&response[..start], &response[start + 2 + len..]].concat()
}

/// The headers as a module's block: refused, or one response whose
/// fields are the block's lines as `fields::decode` reads them, and the
/// very bytes `write_response` gives when the block is just those fields.
fn check_block(input: &Input, status: u16, headers: &[(&str, &[u8])], opts: &ResponseOptions) {
    let end: &[u8] = if input.crlf { b"\r\n" } else { b"\n" };
    let mut block = Vec::new();
    for (name, value) in headers {
        block.extend_from_slice(name.as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(value);
        block.extend_from_slice(end);
    }
    let response = Response::with_fields(status, block.clone(), input.body.clone());
    let decoded = fields::decode(&block);
    let Ok(response) = response else {
        // Refused: then the block's fields are not all sendable.
        let sendable = (200..=599).contains(&status)
            && decoded
                .as_ref()
                .is_ok_and(|fields| fields.iter().all(|(n, v)| is_token(n) && is_field_value(v)));
        assert!(!sendable, "refused a sendable block {block:?}");
        return;
    };
    let decoded = decoded.expect("an accepted block decodes");
    let mut out = Vec::new();
    response.write(&mut out, opts);
    let fields: Vec<(&str, &[u8])> = decoded.iter().map(|(n, v)| (n.as_str(), &v[..])).collect();
    check_response(
        &out,
        &Expected {
            status,
            headers: fields.clone(),
            body: &input.body,
            opts: *opts,
        },
    );
    let plain = headers
        .iter()
        .all(|(n, v)| is_token(n) && is_field_value(v) && trim(v) == *v && !v.contains(&b'\r'));
    if plain {
        let mut direct = Vec::new();
        write_response(
            &mut direct,
            status,
            fields.iter().copied(),
            &input.body,
            opts,
        )
        .expect("sendable fields");
        assert_eq!(
            String::from_utf8_lossy(&without_date(&out)),
            String::from_utf8_lossy(&without_date(&direct)),
            "the block and its fields were written differently"
        );
    }
}

fuzz_target!(|input: Input| {
    let status = if input.near_status {
        150 + input.status % 500
    } else {
        input.status
    };
    let names: Vec<&str> = input.headers.iter().map(|(n, _)| n.get()).collect();
    let values: Vec<Vec<u8>> = input.headers.iter().map(|(_, v)| v.get()).collect();
    let headers: Vec<(&str, &[u8])> = names
        .iter()
        .copied()
        .zip(values.iter().map(Vec::as_slice))
        .collect();
    let version = if input.http10 {
        Version::Http10
    } else {
        Version::Http11
    };
    let opts = ResponseOptions {
        head_request: input.head_request,
        keep_alive: input.keep_alive,
        version,
    };
    check_block(&input, status, &headers, &opts);

    let mut out = input.earlier.clone();
    let result = write_response(
        &mut out,
        status,
        headers.iter().copied(),
        &input.body,
        &opts,
    );
    assert_eq!(
        &out[..input.earlier.len()],
        &input.earlier[..],
        "earlier output changed"
    );
    let acceptable = (200..=599).contains(&status)
        && headers
            .iter()
            .all(|(n, v)| is_token(n) && is_field_value(v));
    match result {
        Ok(()) => check_response(
            &out[input.earlier.len()..],
            &Expected {
                status,
                headers,
                body: &input.body,
                opts,
            },
        ),
        Err(err) => {
            assert_eq!(out.len(), input.earlier.len(), "{err} but output appended");
            assert!(!acceptable, "refused a valid response: {err}");
        }
    }

    let mut out = input.earlier.clone();
    write_error(&mut out, input.status, &input.error_detail, version);
    let status = if (200..=599).contains(&input.status) {
        input.status
    } else {
        500
    };
    let body = format!("{status} {}: {}\n", reason(status), input.error_detail);
    check_response(
        &out[input.earlier.len()..],
        &Expected {
            status,
            headers: vec![("content-type", b"text/plain; charset=utf-8")],
            body: body.as_bytes(),
            opts: ResponseOptions {
                head_request: false,
                keep_alive: false,
                version,
            },
        },
    );
});
