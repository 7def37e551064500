//! Turns a URL into what one request needs: a checked `http`/`https` URL,
//! its origin, and the URI hyper sends (never with the fragment).

use url::{Host, Position, Url};

use super::FetchError;

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
        let url = Url::parse(url).map_err(|err| FetchError::invalid(format!("bad URL: {err}")))?;
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
