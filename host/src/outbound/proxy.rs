//! Proxies named by the standard environment variables, for `snow fetch`.
//!
//! `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY`, each read in
//! upper case first and then in lower case, as hyper-util (and Go) read
//! them. Only `http://` proxies are supported: plain requests go to the
//! proxy in absolute form, `https` ones through a `CONNECT` tunnel, so TLS
//! still runs end to end with the destination. A value that cannot be used
//! is an error rather than silently ignored.
//!
//! Module fetches never use these: see `ClientConfig::proxy`.

use hyper_util::client::proxy::matcher::Matcher;

/// Validated proxy settings; empty variables count as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Proxy for `http` destinations.
    pub http: Option<String>,
    /// Proxy for `https` destinations.
    pub https: Option<String>,
    /// Destinations reached directly: comma-separated names (covering
    /// their subdomains), IP addresses or networks, or `*` for all.
    pub no_proxy: String,
}

impl ProxyConfig {
    /// Reads the process environment; `Ok(None)` when no proxy is set.
    pub fn from_env() -> Result<Option<ProxyConfig>, String> {
        ProxyConfig::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `var`, so tests need no real environment.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<ProxyConfig>, String> {
        let read = |upper: &str| -> Result<Option<String>, String> {
            let lower = upper.to_ascii_lowercase();
            let Some((name, value)) = [upper, lower.as_str()]
                .into_iter()
                .find_map(|name| var(name).map(|value| (name, value)))
            else {
                return Ok(None);
            };
            if value.trim().is_empty() {
                return Ok(None);
            }
            check_proxy_url(&value)
                .map(Some)
                .map_err(|why| format!("{name}={value:?}: {why}"))
        };
        let all = read("ALL_PROXY")?;
        let http = read("HTTP_PROXY")?.or_else(|| all.clone());
        let https = read("HTTPS_PROXY")?.or(all);
        if http.is_none() && https.is_none() {
            return Ok(None);
        }
        let no_proxy = var("NO_PROXY").or_else(|| var("no_proxy"));
        Ok(Some(ProxyConfig {
            http,
            https,
            no_proxy: no_proxy.unwrap_or_default(),
        }))
    }

    /// hyper-util's matcher for these settings: which proxy, if any, a
    /// destination goes through, with the credentials of its URL.
    pub(super) fn matcher(&self) -> Matcher {
        Matcher::builder()
            .http(self.http.clone().unwrap_or_default())
            .https(self.https.clone().unwrap_or_default())
            .no(self.no_proxy.clone())
            .build()
    }
}

/// `[http://][user[:password]@]host[:port][/]`, trimmed.
fn check_proxy_url(value: &str) -> Result<String, String> {
    let value = value.trim();
    let uri: http::Uri = value
        .parse()
        .map_err(|err| format!("not a proxy URL: {err}"))?;
    match uri.scheme_str() {
        None | Some("http") => {}
        Some(other) => {
            return Err(format!(
                "{other}:// proxies are not supported, only http://"
            ))
        }
    }
    let authority = uri
        .authority()
        .ok_or_else(|| "not a proxy URL: no host".to_owned())?;
    let host = authority.host();
    if host.is_empty() || host == "[]" {
        return Err("not a proxy URL: no host".to_owned());
    }
    let host_port = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, rest)| rest);
    let port = host_port
        .rsplit_once(':')
        .map(|(_, port)| port)
        .filter(|port| !port.ends_with(']'));
    if port.is_some_and(|port| port.parse::<u16>().is_err()) {
        return Err("not a proxy URL: bad port".to_owned());
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err("a proxy URL has no path".to_owned());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<Option<ProxyConfig>, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProxyConfig::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn nothing_set_means_no_proxy() {
        assert_eq!(from(&[]), Ok(None));
        assert_eq!(from(&[("NO_PROXY", "example.com")]), Ok(None));
        assert_eq!(from(&[("HTTP_PROXY", "  ")]), Ok(None));
    }

    #[test]
    fn upper_case_wins_and_lower_case_works_alone() {
        let both = from(&[
            ("HTTP_PROXY", "http://upper:1"),
            ("http_proxy", "http://lower:2"),
        ]);
        assert_eq!(
            both.unwrap().unwrap().http.as_deref(),
            Some("http://upper:1")
        );
        let lower = from(&[("https_proxy", "lower:3"), ("no_proxy", "a.test")])
            .unwrap()
            .unwrap();
        assert_eq!(lower.https.as_deref(), Some("lower:3"));
        assert_eq!(lower.http, None);
        assert_eq!(lower.no_proxy, "a.test");
    }

    #[test]
    fn all_proxy_fills_in_for_either_scheme() {
        let config = from(&[
            ("ALL_PROXY", "http://all:1"),
            ("HTTPS_PROXY", "http://tls:2"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(config.http.as_deref(), Some("http://all:1"));
        assert_eq!(config.https.as_deref(), Some("http://tls:2"));
    }

    #[test]
    fn unusable_values_are_errors_naming_the_variable() {
        for (name, value) in [
            ("HTTP_PROXY", "socks5://127.0.0.1:1080"),
            ("https_proxy", "https://proxy.test:3128"),
            ("ALL_PROXY", "http://[bad"),
            ("HTTP_PROXY", "http://"),
            ("HTTP_PROXY", "http://proxy.test:3128/some/path"),
            ("HTTP_PROXY", "http://proxy.test:99999"),
            ("HTTP_PROXY", "proxy\r\nInjected: 1"),
        ] {
            let err = from(&[(name, value)]).unwrap_err();
            assert!(
                err.starts_with(&format!("{name}=")),
                "{name}={value:?}: {err}"
            );
        }
    }

    #[test]
    fn the_matcher_follows_no_proxy() {
        let config = from(&[
            ("HTTP_PROXY", "http://user:pw@proxy.test:3128"),
            ("NO_PROXY", "direct.test, 10.0.0.0/8"),
        ])
        .unwrap()
        .unwrap();
        let matcher = config.matcher();
        let via = |url: &str| matcher.intercept(&url.parse().unwrap());
        let proxied = via("http://example.test/").expect("proxied");
        assert_eq!(
            proxied.uri().authority().unwrap().as_str(),
            "proxy.test:3128"
        );
        assert!(proxied.basic_auth().is_some());
        assert!(via("http://www.direct.test/").is_none());
        assert!(via("http://10.1.2.3/").is_none());
        assert!(via("https://example.test/").is_none(), "no https proxy set");
    }
}
