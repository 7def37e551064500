//! Where a redirect leads and what of the request survives it
//! (RFC 9110 §15.4).

use super::target::Target;
use super::{FetchError, FetchResponse};
use crate::http::BodyIn;

/// One request of a fetch: the first, or one a redirect led to.
#[derive(Debug)]
pub(super) struct Hop {
    pub method: String,
    pub target: Target,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The rest of a body forwarded as it arrives, until it is sent.
    pub upload: Option<BodyIn>,
    /// Whether a forwarded body went out with this hop: it cannot go
    /// again.
    pub streamed: bool,
}

/// Fields describing the body, meaningless once a redirect drops it.
const BODY_FIELDS: [&str; 4] = [
    "content-type",
    "content-encoding",
    "content-language",
    "content-location",
];

/// Fields that identify the caller to one origin only, or name that origin.
const ORIGIN_FIELDS: [&str; 4] = ["authorization", "proxy-authorization", "cookie", "host"];

/// The request `response` redirects `hop` to, or `None` when the response is
/// not a redirect to follow (not 301/302/303/307/308, or no `Location`).
pub(super) fn next_hop(hop: &Hop, response: &FetchResponse) -> Result<Option<Hop>, FetchError> {
    if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let Some(location) = response.header("location") else {
        return Ok(None);
    };
    let location =
        std::str::from_utf8(location).map_err(|_| FetchError::protocol("Location is not UTF-8"))?;
    let url = hop
        .target
        .url
        .join(location.trim())
        .map_err(|err| FetchError::protocol(format!("bad Location: {err}")))?;
    let target = Target::from_url(url)?;

    // 303 always means "GET the result"; for 301 and 302, turning POST into
    // GET is what every user agent does and what RFC 9110 allows.
    let to_get = match response.status {
        303 => hop.method != "HEAD",
        301 | 302 => hop.method == "POST",
        _ => false,
    };
    let (method, body) = if to_get {
        ("GET".to_owned(), Vec::new())
    } else if hop.streamed {
        // A forwarded body is gone once sent: the redirect is the answer.
        return Ok(None);
    } else {
        (hop.method.clone(), hop.body.clone())
    };
    let cross_origin = !hop.target.same_origin(&target);
    let headers = hop
        .headers
        .iter()
        .filter(|(name, _)| {
            let named = |list: &[&str]| list.iter().any(|n| name.eq_ignore_ascii_case(n));
            let dropped =
                (to_get && named(&BODY_FIELDS)) || (cross_origin && named(&ORIGIN_FIELDS));
            !dropped
        })
        .cloned()
        .collect();
    Ok(Some(Hop {
        method,
        target,
        headers,
        body,
        upload: None,
        streamed: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(method: &str, url: &str) -> Hop {
        Hop {
            method: method.to_owned(),
            target: Target::parse(url).unwrap(),
            headers: vec![
                ("Content-Type".to_owned(), b"text/plain".to_vec()),
                ("Authorization".to_owned(), b"secret".to_vec()),
                ("Cookie".to_owned(), b"a=b".to_vec()),
                ("X-Other".to_owned(), b"kept".to_vec()),
            ],
            body: b"payload".to_vec(),
            upload: None,
            streamed: false,
        }
    }

    fn redirect(status: u16, location: &str) -> FetchResponse {
        FetchResponse {
            status,
            headers: vec![("Location".to_owned(), location.as_bytes().to_vec())],
            body: Vec::new(),
        }
    }

    fn names(hop: &Hop) -> Vec<&str> {
        hop.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn relative_locations_resolve_against_the_request() {
        let first = hop("GET", "http://example.com/a/b?q=1");
        let next = next_hop(&first, &redirect(302, "c?d=2")).unwrap().unwrap();
        assert_eq!(next.target.url.as_str(), "http://example.com/a/c?d=2");
        let next = next_hop(&first, &redirect(301, "//other.example/x"))
            .unwrap()
            .unwrap();
        assert_eq!(next.target.url.as_str(), "http://other.example/x");
    }

    #[test]
    fn see_other_becomes_a_bodiless_get() {
        let next = next_hop(&hop("PUT", "http://example.com/"), &redirect(303, "/done"))
            .unwrap()
            .unwrap();
        assert_eq!(next.method, "GET");
        assert!(next.body.is_empty());
        assert_eq!(names(&next), ["Authorization", "Cookie", "X-Other"]);

        let next = next_hop(&hop("HEAD", "http://example.com/"), &redirect(303, "/done"))
            .unwrap()
            .unwrap();
        assert_eq!(next.method, "HEAD");
    }

    #[test]
    fn moved_post_becomes_get_but_other_methods_stay() {
        for status in [301, 302] {
            let next = next_hop(&hop("POST", "http://example.com/"), &redirect(status, "/x"))
                .unwrap()
                .unwrap();
            assert_eq!((next.method.as_str(), next.body.len()), ("GET", 0));
            let next = next_hop(&hop("PUT", "http://example.com/"), &redirect(status, "/x"))
                .unwrap()
                .unwrap();
            assert_eq!(
                (next.method.as_str(), next.body.as_slice()),
                ("PUT", &b"payload"[..])
            );
        }
    }

    #[test]
    fn temporary_and_permanent_redirects_keep_method_and_body() {
        for status in [307, 308] {
            let next = next_hop(&hop("POST", "http://example.com/"), &redirect(status, "/x"))
                .unwrap()
                .unwrap();
            assert_eq!(
                (next.method.as_str(), next.body.as_slice()),
                ("POST", &b"payload"[..])
            );
            assert_eq!(names(&next).len(), 4);
        }
    }

    #[test]
    fn credentials_stay_with_their_origin() {
        let next = next_hop(
            &hop("GET", "http://example.com/"),
            &redirect(307, "https://example.com/"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(names(&next), ["Content-Type", "X-Other"]);
    }

    #[test]
    fn non_redirects_and_missing_locations_are_not_followed() {
        let first = hop("GET", "http://example.com/");
        assert!(next_hop(&first, &redirect(200, "/x")).unwrap().is_none());
        assert!(next_hop(&first, &redirect(304, "/x")).unwrap().is_none());
        let mut no_location = redirect(302, "/x");
        no_location.headers.clear();
        assert!(next_hop(&first, &no_location).unwrap().is_none());
    }

    #[test]
    fn unusable_locations_fail() {
        let first = hop("GET", "http://example.com/");
        assert!(matches!(
            next_hop(&first, &redirect(302, "http://[bad")),
            Err(FetchError::Protocol(_))
        ));
        assert!(matches!(
            next_hop(&first, &redirect(302, "ftp://example.com/")),
            Err(FetchError::Invalid(_))
        ));
    }
}

#[cfg(test)]
mod forwarded {
    use super::*;

    #[test]
    fn a_forwarded_body_is_never_sent_twice() {
        let hop = Hop {
            method: "POST".into(),
            target: Target::parse("http://a.test/up").unwrap(),
            headers: Vec::new(),
            body: b"start".to_vec(),
            upload: None,
            streamed: true,
        };
        let redirect = |status: u16| FetchResponse {
            status,
            headers: vec![("location".to_owned(), b"/elsewhere".to_vec())],
            body: Vec::new(),
        };
        // The body would go again: the redirect is the answer.
        for status in [307, 308] {
            assert!(next_hop(&hop, &redirect(status)).unwrap().is_none());
        }
        // Turned into a GET, nothing is sent again: followed.
        let next = next_hop(&hop, &redirect(303)).unwrap().expect("followed");
        assert_eq!((next.method.as_str(), next.body.len()), ("GET", 0));
    }
}
