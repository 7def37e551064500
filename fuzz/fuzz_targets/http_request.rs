//! The input is everything a client sends on one connection. It is served the
//! way `server/conn.rs` serves it — parse a head, decode its body, go on with
//! the next pipelined request while the connection stays open — once with the
//! whole input at hand, once arriving a byte at a time and once in pieces
//! whose sizes come from the input. All three must see the same requests.

#![no_main]

use libfuzzer_sys::fuzz_target;
use snow::http::{parse_head, BodyDecoder, Framing, Limits, ProtocolError, RequestHead, Version};

/// Small enough that inputs of a few KiB run into every limit, including a
/// chunked body whose chunks add up past `max_body`.
const LIMITS: Limits = Limits {
    max_request_line: 256,
    max_head: 1024,
    max_headers: 12,
    max_body: 1024,
};

/// What a parse error may be answered with; 408 belongs to the connection's
/// timers, the others to the parser.
const ERROR_STATUSES: [u16; 7] = [400, 408, 413, 414, 431, 501, 505];

#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// The input ran out inside a head; this many bytes were buffered.
    HeadPending(usize),
    /// The input ran out inside a body, after this much of it was decoded.
    BodyPending(Vec<u8>),
    /// A head was answered with an error status.
    RejectedHead(u16),
    /// A body was answered with an error status.
    RejectedBody(u16),
    /// A request without keep-alive was served; this many bytes went unread.
    Closed(usize),
}

#[derive(Debug)]
struct Transcript {
    requests: Vec<(RequestHead, Vec<u8>)>,
    end: End,
}

/// Serves `input` as a connection would, reading it in pieces of the sizes
/// `next_piece` returns.
fn serve(input: &[u8], mut next_piece: impl FnMut() -> usize) -> Transcript {
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut read = |buf: &mut Vec<u8>| -> bool {
        let left = input.len() - fed;
        if left == 0 {
            return false;
        }
        let n = next_piece().clamp(1, left);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        true
    };
    let mut requests = Vec::new();
    loop {
        let head = loop {
            match parse_head(&buf, &LIMITS) {
                Ok(Some((head, used))) => {
                    check_head(&head, used, &buf);
                    buf.drain(..used);
                    break head;
                }
                Ok(None) => {
                    assert!(
                        buf.len() <= LIMITS.max_head,
                        "a head past max_head is still pending"
                    );
                    if !read(&mut buf) {
                        return Transcript {
                            requests,
                            end: End::HeadPending(buf.len()),
                        };
                    }
                }
                Err(err) => {
                    return Transcript {
                        requests,
                        end: End::RejectedHead(check_error(&err)),
                    }
                }
            }
        };

        let mut decoder = BodyDecoder::new(&head.framing, LIMITS.max_body);
        let mut body = Vec::new();
        while !decoder.is_done() {
            match decoder.decode(&buf, &mut body) {
                Ok((used, done)) => {
                    assert!(used <= buf.len(), "consumed {used} of {}", buf.len());
                    assert_eq!(done, decoder.is_done());
                    check_body_so_far(&head.framing, &body);
                    if !done {
                        // Only the end of the body may stop it short of its input.
                        assert_eq!(used, buf.len(), "an unfinished body left input unread");
                    }
                    buf.drain(..used);
                    if !done && !read(&mut buf) {
                        return Transcript {
                            requests,
                            end: End::BodyPending(body),
                        };
                    }
                }
                Err(err) => {
                    check_body_so_far(&head.framing, &body);
                    let again = decoder.decode(b"0\r\n\r\n", &mut body);
                    assert_eq!(again, Err(err.clone()), "a failed decoder recovered");
                    return Transcript {
                        requests,
                        end: End::RejectedBody(check_error(&err)),
                    };
                }
            }
        }
        if let Framing::Length(n) = head.framing {
            assert_eq!(
                body.len() as u64,
                n,
                "Content-Length body of the wrong size"
            );
        }
        let keep_alive = head.keep_alive;
        requests.push((head, body));
        if !keep_alive {
            return Transcript {
                requests,
                end: End::Closed(buf.len() + input.len() - fed),
            };
        }
    }
}

fn check_error(err: &ProtocolError) -> u16 {
    let status = err.status();
    assert!(
        ERROR_STATUSES.contains(&status),
        "{err:?} answered with {status}"
    );
    assert!(!err.detail().is_empty());
    status
}

fn check_body_so_far(framing: &Framing, body: &[u8]) {
    let len = body.len() as u64;
    assert!(len <= LIMITS.max_body, "decoded {len} bytes past max_body");
    match *framing {
        Framing::None => assert!(body.is_empty()),
        Framing::Length(n) => assert!(len <= n, "{len} bytes decoded for Content-Length {n}"),
        Framing::Chunked => {}
    }
}

fn named<'h>(head: &'h RequestHead, name: &'static str) -> impl Iterator<Item = &'h [u8]> {
    head.headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
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

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Re-derives from the accepted head what a second parser behind or in front
/// of this one would conclude, and demands that no reading is ambiguous.
fn check_head(head: &RequestHead, used: usize, buf: &[u8]) {
    assert!(
        used > 0 && used <= buf.len(),
        "consumed {used} of {}",
        buf.len()
    );
    assert!(used <= LIMITS.max_head, "accepted a {used}-byte head");
    assert!(head.headers.len() <= LIMITS.max_headers);

    // The verdict must not depend on what follows the head.
    assert_eq!(
        parse_head(&buf[..used], &LIMITS),
        Ok(Some((head.clone(), used))),
        "the head alone parses differently"
    );

    assert!(!head.method.is_empty() && head.method.bytes().all(is_tchar));
    if head.path == "*" {
        assert_eq!(head.method, "OPTIONS");
    } else {
        assert!(head.path.starts_with('/'), "path {:?}", head.path);
    }
    for part in [&head.path, &head.query] {
        assert!(
            part.bytes().all(|b| b.is_ascii_graphic() && b != b'#'),
            "target part {part:?}"
        );
    }

    for (name, value) in &head.headers {
        assert!(
            !name.is_empty() && name.bytes().all(is_tchar),
            "name {name:?}"
        );
        assert!(
            !value.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)),
            "value {value:?}"
        );
    }

    let hosts = named(head, "host").count();
    match head.version {
        Version::Http11 => assert_eq!(hosts, 1, "HTTP/1.1 with {hosts} Host headers"),
        Version::Http10 => assert!(hosts <= 1),
    }
    if head.expect_continue {
        assert_eq!(head.version, Version::Http11);
    }

    let te: Vec<&[u8]> = named(head, "transfer-encoding").collect();
    let cl: Vec<&[u8]> = named(head, "content-length").collect();
    match head.framing {
        Framing::None => assert!(te.is_empty() && cl.is_empty()),
        Framing::Chunked => {
            assert!(cl.is_empty(), "chunked with Content-Length");
            assert_eq!(head.version, Version::Http11);
            let codings: Vec<&[u8]> = te
                .iter()
                .flat_map(|v| v.split(|&b| b == b','))
                .map(trim)
                .filter(|c| !c.is_empty())
                .collect();
            assert!(
                codings.len() == 1 && codings[0].eq_ignore_ascii_case(b"chunked"),
                "chunked framing from {te:?}"
            );
        }
        Framing::Length(n) => {
            assert!(te.is_empty(), "Content-Length with Transfer-Encoding");
            assert!(!cl.is_empty() && n <= LIMITS.max_body);
            for element in cl.iter().flat_map(|v| v.split(|&b| b == b',')) {
                let digits = trim(element);
                assert!(
                    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
                    "Content-Length element {digits:?}"
                );
                let value = std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse().ok());
                assert_eq!(value, Some(n), "Content-Length element {digits:?} for {n}");
            }
        }
    }
}

/// Piece sizes of 1 to 16 bytes, read backwards from the end of the input so
/// that mutations near the end reshape the split points while leaving the
/// request at the front intact.
fn pieces(data: &[u8]) -> impl FnMut() -> usize + '_ {
    let mut i = 0;
    move || {
        let byte = data[data.len() - 1 - i % data.len()];
        i += 1;
        1 + usize::from(byte.rotate_right(i as u32 % 8) % 16)
    }
}

/// Head errors whose status may depend on how much of the request line has
/// arrived: with all of it at hand the parser can see that it is too long
/// (414, or 431 behind many empty lines) or how a version token ends (400
/// rather than 505), where bytes arriving one by one stop at the first bad
/// one. Either way the request is refused; only the status differs.
const SPLIT_DEPENDENT_STATUSES: [u16; 4] = [400, 414, 431, 505];

fn same_requests(a: &Transcript, b: &Transcript, what: &str) {
    assert_eq!(a.requests, b.requests, "requests differ {what}");
    match (&a.end, &b.end) {
        (End::RejectedHead(x), End::RejectedHead(y))
            if SPLIT_DEPENDENT_STATUSES.contains(x) && SPLIT_DEPENDENT_STATUSES.contains(y) => {}
        (x, y) => assert_eq!(x, y, "connection ends differently {what}"),
    }
}

/// The chunked decoder on its own, fed the raw input: no head needs to be
/// found first, so every byte reaches the chunk-size and trailer states.
fn chunked_alone(data: &[u8]) {
    let mut whole = BodyDecoder::new(&Framing::Chunked, LIMITS.max_body);
    let mut whole_body = Vec::new();
    let whole_result = whole.decode(data, &mut whole_body);
    assert!(whole_body.len() as u64 <= LIMITS.max_body);
    if let Ok((used, done)) = whole_result {
        assert!(used <= data.len());
        assert!(done || used == data.len());
    }

    let mut split = BodyDecoder::new(&Framing::Chunked, LIMITS.max_body);
    let mut split_body = Vec::new();
    let mut next = pieces(data);
    let mut pos = 0;
    let split_result = loop {
        let end = (pos + next()).min(data.len());
        match split.decode(&data[pos..end], &mut split_body) {
            Ok((used, done)) => {
                pos += used;
                if done || end == data.len() {
                    break Ok((pos, done));
                }
            }
            Err(err) => break Err(err),
        }
    };
    assert_eq!(
        split_body, whole_body,
        "chunked body depends on split points"
    );
    match (whole_result, split_result) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("one piece gave {a:?}, pieces gave {b:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = serve(data, || usize::MAX);
    let bytewise = serve(data, || 1);
    same_requests(&whole, &bytewise, "between one piece and single bytes");
    if !data.is_empty() {
        let split = serve(data, pieces(data));
        same_requests(&whole, &split, "between one piece and input-sized pieces");
        chunked_alone(data);
    }
});
