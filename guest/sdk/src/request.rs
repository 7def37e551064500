//! The request a handler receives: the host's fields as sent, plus the
//! capture groups of the route that matched.

use std::cell::OnceCell;

use serde::de::DeserializeOwned;

use crate::groups::Groups;
use crate::{query, Error};

/// One header; the name is ASCII, the value raw bytes as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name, as sent.
    pub name: String,
    /// The raw value bytes.
    pub value: Vec<u8>,
}

impl Header {
    /// A header field.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The value of the first of `headers` named `name`, compared
    /// case-insensitively.
    pub(crate) fn find<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
        headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_slice())
    }
}

/// An incoming request.
#[derive(Debug)]
pub struct Request {
    /// The method, path, full path and query, each followed by `\n`: the
    /// host sends them so, and one string keeps them in one allocation.
    line: String,
    /// Where each of the four parts ends in `line`.
    ends: [usize; 4],
    /// The header block as the host sent it, read on demand: most handlers
    /// never look at a header.
    fields: Vec<u8>,
    /// The headers, once something asked for all of them or added one.
    headers: OnceCell<Vec<Header>>,
    body: Vec<u8>,
    /// False while more of the body is to be read from the host.
    body_complete: bool,
    captures: Option<Groups>,
}

impl Request {
    /// A request with no query, headers or body; mostly for tests.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Request::from_parts(
            method.into(),
            path.into(),
            String::new(),
            Vec::new(),
            Vec::new(),
        )
    }

    pub(crate) fn from_parts(
        method: String,
        path: String,
        query: String,
        headers: Vec<Header>,
        body: Vec<u8>,
    ) -> Self {
        let mut request = Request {
            line: String::new(),
            ends: [0; 4],
            fields: Vec::new(),
            headers: OnceCell::from(headers),
            body,
            body_complete: true,
            captures: None,
        };
        request.set_line([&method, &path, &path, &query]);
        request
    }

    /// The request as the contract's `request.head` gives it: four lines,
    /// then the header block.
    #[cfg(any(not(feature = "wasi-http"), test))]
    pub(crate) fn from_head(mut head: Vec<u8>, body: Vec<u8>, body_complete: bool) -> Self {
        // One pass finds the four line ends; a short head leaves the
        // missing parts empty at its end.
        let mut ends = [head.len(); 4];
        let mut found = 0;
        for (end, at) in ends.iter_mut().zip(memchr::memchr_iter(b'\n', &head)) {
            *end = at;
            found += 1;
        }
        let fields = match found {
            4 => head.split_off(ends[3] + 1),
            _ => Vec::new(),
        };
        let line = match String::from_utf8(head) {
            Ok(line) => line,
            Err(err) => {
                // Lossy decoding moves the ends: mark them again.
                let line = String::from_utf8_lossy(err.as_bytes()).into_owned();
                let mut rest = line.match_indices('\n').map(|(at, _)| at);
                ends = [(); 4].map(|()| rest.next().unwrap_or(line.len()));
                line
            }
        };
        Request {
            line,
            ends,
            fields,
            headers: OnceCell::new(),
            body,
            body_complete,
            captures: None,
        }
    }

    /// Replaces the four parts; lengths, not separators, mark them, so a
    /// part holding `\n` (a test's) stays whole.
    fn set_line(&mut self, parts: [&str; 4]) {
        let mut line = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for (part, end) in parts.iter().zip(&mut self.ends) {
            line.push_str(part);
            *end = line.len();
            line.push('\n');
        }
        self.line = line;
    }

    /// Part `index` of the line: the method, path, full path or query.
    fn part(&self, index: usize) -> &str {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1] + 1,
        };
        self.line.get(start..self.ends[index]).unwrap_or_default()
    }

    fn parts(&self) -> [String; 4] {
        [0, 1, 2, 3].map(|i| self.part(i).to_owned())
    }

    /// Marks the body as only its start, the rest to be read on.
    #[cfg(any(feature = "wasi-http", test))]
    pub(crate) fn with_body_complete(mut self, complete: bool) -> Self {
        self.body_complete = complete;
        self
    }

    /// Whether the whole body is in hand: always, but in a handler wrapped
    /// in [`streaming`](crate::streaming), which reads it on with
    /// [`Request::body_stream`].
    pub fn body_complete(&self) -> bool {
        self.body_complete
    }

    /// The body as it arrives, in chunks: what came with the request first,
    /// then the rest as the client sends it. Takes the body out of the
    /// request. Meant for handlers wrapped in
    /// [`streaming`](crate::streaming); in others the body is already
    /// whole and comes as one chunk.
    pub fn body_stream(&mut self) -> crate::BodyStream {
        let complete = std::mem::replace(&mut self.body_complete, true);
        crate::BodyStream::new(std::mem::take(&mut self.body), complete)
    }

    /// The path as the client sent it, for a request whose `path` is
    /// relative to a mount prefix.
    pub fn with_full_path(mut self, full_path: impl Into<String>) -> Self {
        let [method, path, _, query] = self.parts();
        self.set_line([&method, &path, &full_path.into(), &query]);
        self
    }

    /// Replaces the query (the part after `?`, without it).
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        let [method, path, full_path, _] = self.parts();
        self.set_line([&method, &path, &full_path, &query.into()]);
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        let mut headers = self
            .headers
            .take()
            .unwrap_or_else(|| crate::fields::decode(&self.fields));
        self.fields = Vec::new();
        headers.push(Header::new(name, value));
        self.headers = OnceCell::from(headers);
        self
    }

    /// Replaces the body, whole.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.body_complete = true;
        self
    }

    /// Spans into `path`, with the route's group names.
    pub(crate) fn set_captures(&mut self, captures: Groups) {
        self.captures = Some(captures);
    }

    /// The method as sent, e.g. `GET`.
    pub fn method(&self) -> &str {
        self.part(0)
    }

    /// The path below the prefix the module is mounted at, percent-escapes
    /// untouched; routes match this. Mounted at `/api`, a request for
    /// `/api/users` has the path `/users` (and `/api` itself has `/`).
    pub fn path(&self) -> &str {
        self.part(1)
    }

    /// The path as the client sent it, mount prefix included.
    pub fn full_path(&self) -> &str {
        self.part(2)
    }

    /// The raw query string, empty when there was none.
    pub fn query(&self) -> &str {
        self.part(3)
    }

    /// The first value of a query parameter, percent-decoded with `+` as a
    /// space.
    pub fn query_param(&self, name: &str) -> Option<String> {
        query::param(self.query(), name)
    }

    /// Every value of a repeated query parameter (`?url=a&url=b`) in
    /// order, decoded like `query_param`; empty when it is absent.
    pub fn query_param_all(&self, name: &str) -> Vec<String> {
        query::values(self.query(), name)
    }

    /// Every query parameter in order, decoded.
    pub fn query_params(&self) -> Vec<(String, String)> {
        query::pairs(self.query()).collect()
    }

    /// Every header field, in the order received.
    pub fn headers(&self) -> &[Header] {
        self.headers
            .get_or_init(|| crate::fields::decode(&self.fields))
    }

    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        match self.headers.get() {
            Some(headers) => Header::find(headers, name),
            None => crate::fields::find(&self.fields, name),
        }
    }

    /// Like `header`, but `None` also when the value is not UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.header(name)?).ok()
    }

    /// The whole body, already de-chunked.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body without copying it.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8; the error answers 400.
    pub fn text(&self) -> Result<&str, Error> {
        Ok(std::str::from_utf8(&self.body)?)
    }

    /// The body parsed as JSON; the error answers 400.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// A capture group of the route's regex, numbered like `regex` does:
    /// 1 is the first group, 0 the whole match. `None` when the group did
    /// not take part in the match or does not exist.
    pub fn group(&self, index: usize) -> Option<&str> {
        let span = self.captures.as_ref()?.get(index)?;
        self.path().get(span)
    }

    /// A named capture group, e.g. `(?P<id>\d+)`.
    pub fn named(&self, name: &str) -> Option<&str> {
        let span = self.captures.as_ref()?.named(name)?;
        self.path().get(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_gives_its_four_parts_and_its_fields() {
        let req = Request::from_head(
            b"POST\n/p\n/mount/p\na=1&b=%20\nHost: h\nx-a: v: w\n".to_vec(),
            b"body".to_vec(),
            false,
        );
        assert_eq!(
            (req.method(), req.path(), req.full_path(), req.query()),
            ("POST", "/p", "/mount/p", "a=1&b=%20")
        );
        assert_eq!(req.query_param("b").as_deref(), Some(" "));
        assert_eq!(req.header("X-A"), Some(&b"v: w"[..]));
        assert_eq!(
            req.headers(),
            [Header::new("Host", "h"), Header::new("x-a", "v: w")]
        );
        assert!(!req.body_complete());
        // Added headers join the ones that came.
        let req = req.with_header("x-b", "1");
        assert_eq!(req.headers().len(), 3);
        assert_eq!(req.header("host"), Some(&b"h"[..]));
        let req = req.with_query("c=3").with_full_path("/m/p");
        assert_eq!(
            (req.method(), req.path(), req.full_path(), req.query()),
            ("POST", "/p", "/m/p", "c=3")
        );
    }

    #[test]
    fn a_short_or_broken_head_gives_empty_parts_not_a_panic() {
        let req = Request::from_head(b"GET".to_vec(), Vec::new(), true);
        assert_eq!((req.method(), req.path(), req.query()), ("GET", "", ""));
        assert!(req.headers().is_empty());
        let req = Request::from_head(b"G\xffT\n/\xe2\n/\n\n".to_vec(), Vec::new(), true);
        assert_eq!((req.method(), req.path()), ("G\u{fffd}T", "/\u{fffd}"));
        assert_eq!((req.full_path(), req.query()), ("/", ""));
        let req = Request::from_head(Vec::new(), Vec::new(), true);
        assert_eq!((req.method(), req.full_path()), ("", ""));
    }

    #[test]
    fn a_test_path_with_a_line_break_stays_whole() {
        let req = Request::new("GET", "/a\nb").with_query("q\n");
        assert_eq!(
            (req.path(), req.full_path(), req.query()),
            ("/a\nb", "/a\nb", "q\n")
        );
    }

    #[test]
    fn headers_are_case_insensitive() {
        let req = Request::new("GET", "/")
            .with_header("Content-Type", "text/plain")
            .with_header("x-bin", vec![0xff, 0x00]);
        assert_eq!(req.header("content-type"), Some(&b"text/plain"[..]));
        assert_eq!(req.header_str("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(req.header("x-bin"), Some(&[0xff, 0x00][..]));
        assert_eq!(req.header_str("x-bin"), None);
        assert_eq!(req.header("missing"), None);
    }

    #[test]
    fn text_and_json_errors_are_bad_requests() {
        let req = Request::new("POST", "/").with_body(vec![0xc3]);
        assert_eq!(req.text().map_err(|e| e.status_code()), Err(400));
        let req = Request::new("POST", "/").with_body("{\"a\": 1}");
        let value: serde_json::Value = req.json().expect("valid JSON");
        assert_eq!(value["a"], 1);
        let bad = Request::new("POST", "/").with_body("{");
        let err = bad.json::<serde_json::Value>().expect_err("invalid JSON");
        assert_eq!(err.status_code(), 400);
    }

    #[test]
    fn captures_by_index_and_name() {
        let pattern = snow_guest_macros::pattern!(crate, r"^/u/(\d+)/(?P<name>[a-z]+)?/?$");
        let matcher = crate::matcher::Matcher::new(&pattern).expect("a valid pattern");
        let matcher = Box::leak(Box::new(matcher));
        let mut req = Request::new("GET", "/u/42/bob/");
        let groups = Groups::search(matcher, &mut matcher.create_cache(), "/u/42/bob/");
        req.set_captures(groups.expect("a match"));
        assert_eq!(req.group(0), Some("/u/42/bob/"));
        assert_eq!(req.group(1), Some("42"));
        assert_eq!(req.group(2), Some("bob"));
        assert_eq!(req.named("name"), Some("bob"));
        assert_eq!(req.group(3), None);
        assert_eq!(req.named("nope"), None);
    }

    #[test]
    fn no_captures_without_a_route() {
        let req = Request::new("GET", "/x");
        assert_eq!(req.group(0), None);
        assert_eq!(req.named("x"), None);
    }
}
