//! Turns a URL into what one request needs: a checked `http`/`https` URL,
//! its origin, and the URI hyper sends (never with the fragment).

use std::cell::RefCell;
use std::collections::HashMap;

use url::{Host, Position, Url};

use super::FetchError;

/// URLs parsed on this thread, kept for [`parse_url`]. Bounded in entries
/// and in each URL's length: modules choose the URLs.
const MEMO_ENTRIES: usize = 256;
const MEMO_URL_LEN: usize = 2048;

thread_local! {
    // foldhash: SipHash over the URL was 230 instructions a lookup; the
    // memo's size bound keeps even colliding URLs cheap.
    static PARSED: RefCell<HashMap<Box<str>, Url, foldhash::fast::RandomState>> =
        RefCell::new(HashMap::default());
}

/// `Url::parse`, remembering what it gave: a proxying module fetches the
/// same few URLs over and over, and parsing one (IDNA included) cost about
/// 2,000 instructions of a proxied request, against some 150 for a copy.
/// Only URLs that parsed are kept.
pub fn parse_url(url: &str) -> Result<Url, url::ParseError> {
    if url.len() > MEMO_URL_LEN {
        return Url::parse(url);
    }
    if let Some(parsed) = PARSED.with(|memo| memo.borrow().get(url).cloned()) {
        return Ok(parsed);
    }
    let parsed = Url::parse(url)?;
    PARSED.with(|memo| {
        let mut memo = memo.borrow_mut();
        if memo.len() >= MEMO_ENTRIES {
            memo.clear();
        }
        memo.insert(url.into(), parsed.clone());
    });
    Ok(parsed)
}

/// A checked `http`/`https` URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub url: Url,
    pub tls: bool,
    pub host: Host<String>,
    pub port: u16,
    /// The `Host` field value: the port is left out when it is the default.
    pub authority: String,
    /// Origin-form request-target: path and query, never the fragment.
    pub path: String,
}

/// Scheme, host and port: what decides whether credentials may follow a
/// redirect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Origin {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, FetchError> {
        let url = parse_url(url).map_err(|err| FetchError::invalid(format!("bad URL: {err}")))?;
        Target::from_url(url)
    }

    pub fn from_url(url: Url) -> Result<Target, FetchError> {
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => return Err(FetchError::invalid(format!("unsupported scheme {other:?}"))),
        };
        // Credentials in a URL would be sent nowhere (there is no auth
        // support) and silently dropping them hides a mistake.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::invalid(
                "credentials in the URL are not supported",
            ));
        }
        let host = url
            .host()
            .ok_or_else(|| FetchError::invalid("URL has no host"))?
            .to_owned();
        let port = url
            .port_or_known_default()
            .filter(|&p| p != 0)
            .ok_or_else(|| FetchError::invalid("URL has no usable port"))?;
        // Slices of the serialization, which leaves a default port out.
        let authority = url[Position::BeforeHost..Position::AfterPort].to_owned();
        let path = url[Position::BeforePath..Position::AfterQuery].to_owned();
        // The URL parser percent-encodes what it must; anything left outside
        // visible ASCII would break the request line.
        if path.is_empty() || !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FetchError::invalid("URL path cannot be sent"));
        }
        Ok(Target {
            url,
            tls,
            host,
            port,
            authority,
            path,
        })
    }

    pub fn origin(&self) -> Origin {
        Origin {
            tls: self.tls,
            host: self.host.to_string(),
            port: self.port,
        }
    }

    /// Whether `other` is the same origin (scheme, host and port).
    pub fn same_origin(&self, other: &Target) -> bool {
        self.origin() == other.origin()
    }

    /// The absolute URI of the request, as hyper takes it.
    pub fn uri(&self) -> Result<http::Uri, FetchError> {
        let scheme = if self.tls { "https" } else { "http" };
        http::Uri::builder()
            .scheme(scheme)
            .authority(self.authority.as_str())
            .path_and_query(self.path.as_str())
            .build()
            .map_err(|err| FetchError::invalid(format!("URL cannot be sent: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::parse(url).unwrap()
    }

    #[test]
    fn a_remembered_parse_is_the_parse_and_the_memo_stays_bounded() {
        for url in [
            "http://a.test/x?y=1",
            "https://B.test:8443/",
            "http://[::1]:80/p",
        ] {
            assert_eq!(parse_url(url), Url::parse(url));
            assert_eq!(parse_url(url), Url::parse(url));
            assert_eq!(
                Target::parse(url).unwrap(),
                Target::from_url(Url::parse(url).unwrap()).unwrap()
            );
        }
        // What fails is not remembered, and fails again the same way.
        for bad in [
            "nonsense",
            "http://[::1/",
            "http://a b/",
            "http://a.test:99999/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
            assert_eq!(parse_url(bad), Url::parse(bad));
        }
        // Parsed but refused as a target, every time.
        for refused in ["ftp://a.test/", "http://u:p@a.test/", "http://a.test:0/"] {
            assert!(Target::parse(refused).is_err(), "{refused}");
            assert!(Target::parse(refused).is_err(), "{refused}");
        }
        // A module fetching ever new or huge URLs does not grow it without end.
        for i in 0..3 * MEMO_ENTRIES {
            let url = format!("http://a.test/{i}");
            assert_eq!(target(&url).path, format!("/{i}"));
        }
        let long = format!("http://a.test/{}", "x".repeat(MEMO_URL_LEN));
        assert_eq!(parse_url(&long), Url::parse(&long));
        PARSED.with(|memo| {
            let memo = memo.borrow();
            assert!(memo.len() <= MEMO_ENTRIES, "{}", memo.len());
            assert!(memo.keys().all(|url| url.len() <= MEMO_URL_LEN));
            assert!(!memo.keys().any(|url| **url == *"nonsense"));
        });
    }

    #[test]
    fn default_ports_stay_out_of_the_host_field() {
        let t = target("http://Example.COM/a/b?x=1#frag");
        assert_eq!((t.tls, t.port), (false, 80));
        assert_eq!(t.authority, "example.com");
        assert_eq!(t.path, "/a/b?x=1");

        let t = target("https://example.com:8443");
        assert_eq!((t.tls, t.port), (true, 8443));
        assert_eq!(t.authority, "example.com:8443");
        assert_eq!(t.path, "/");

        let t = target("https://example.com:443/");
        assert_eq!(t.authority, "example.com");
    }

    #[test]
    fn ip_hosts_keep_their_brackets() {
        let t = target("http://[::1]:8080/x");
        assert_eq!(t.authority, "[::1]:8080");
        assert_eq!(t.host, Host::<String>::Ipv6("::1".parse().unwrap()));
        let t = target("http://127.0.0.1/");
        assert_eq!(t.host, Host::<String>::Ipv4("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn unusable_urls_are_invalid() {
        for url in [
            "ftp://example.com/",
            "example.com/path",
            "/relative",
            "http://user:pw@example.com/",
            "http://example.com:0/",
            "http://exa mple.com/",
            "mailto:someone@example.com",
        ] {
            assert!(
                matches!(Target::parse(url), Err(FetchError::Invalid(_))),
                "{url}"
            );
        }
    }

    #[test]
    fn unsafe_path_bytes_are_encoded_by_the_parser() {
        let t = target("http://example.com/a b\"<>?q= x");
        assert!(t.path.bytes().all(|b| b.is_ascii_graphic()), "{}", t.path);
    }

    #[test]
    fn uris_keep_everything_but_the_fragment() {
        let uri = target("https://Example.com:8443/a%20b?q=1#frag")
            .uri()
            .unwrap();
        assert_eq!(uri.to_string(), "https://example.com:8443/a%20b?q=1");
        let uri = target("http://[::1]/").uri().unwrap();
        assert_eq!(uri.host(), Some("[::1]"));
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let a = target("http://example.com/one");
        assert!(a.same_origin(&target("http://EXAMPLE.com:80/two")));
        assert!(!a.same_origin(&target("https://example.com/")));
        assert!(!a.same_origin(&target("http://example.com:8080/")));
        assert!(!a.same_origin(&target("http://www.example.com/")));
    }
}
