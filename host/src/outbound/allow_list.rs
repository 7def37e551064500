//! Which destinations a module may reach: rules of the form
//! `scheme://host[:port]`.
//!
//! - The scheme is `http` or `https` and must match exactly.
//! - Without a port a rule covers the scheme's default port only, so
//!   `http://example.com` does not reach `http://example.com:8080`.
//! - A host `*.example.com` covers every subdomain at any depth, but not
//!   `example.com` itself; `*` is allowed only as that whole first label.
//! - Hosts are compared after the same normalisation URLs get (lowercase,
//!   IDNA, canonical IP forms, a final dot ignored).
//! - An empty list allows nothing.

use std::fmt;
use std::str::FromStr;

use url::{Host, Url};

/// Parsed once, where the settings are read (flags or manifest), then shared
/// by every worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    rules: Vec<AllowRule>,
}

/// One `scheme://host[:port]` rule; [`FromStr`] is the one grammar for the
/// command line and the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    scheme: String,
    host: HostRule,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostRule {
    Exact(Host<String>),
    /// Any name ending in `.` followed by this domain.
    Subdomains(String),
}

impl AllowList {
    pub fn new(rules: Vec<AllowRule>) -> AllowList {
        AllowList { rules }
    }

    /// Parses every rule; the error names the first bad one and why.
    pub fn parse(rules: &[String]) -> Result<AllowList, String> {
        let rules = rules
            .iter()
            .map(|rule| rule.parse())
            .collect::<Result<_, _>>()?;
        Ok(AllowList { rules })
    }

    pub fn allows(&self, url: &Url) -> bool {
        let Some(port) = url.port_or_known_default() else {
            return false;
        };
        let Some(host) = url.host() else {
            return false;
        };
        self.rules.iter().any(|rule| {
            rule.scheme == url.scheme() && rule.port == port && host_matches(&rule.host, &host)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

impl FromStr for AllowRule {
    type Err = String;

    /// Errors quote the rule, so they read alone and after a key path.
    fn from_str(text: &str) -> Result<AllowRule, String> {
        parse_rule(text).map_err(|why| match why {
            RuleError::Shape => {
                format!("`{text}` is not an origin like https://api.example.com[:port]")
            }
            RuleError::Other(why) => format!("`{text}`: {why}"),
        })
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = if self.scheme == "https" { 443 } else { 80 };
        match &self.host {
            HostRule::Exact(host) => write!(f, "{}://{host}", self.scheme)?,
            HostRule::Subdomains(domain) => write!(f, "{}://*.{domain}", self.scheme)?,
        }
        if self.port != default {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

enum RuleError {
    /// Not `scheme://authority` at all.
    Shape,
    Other(String),
}

impl From<&str> for RuleError {
    fn from(why: &str) -> Self {
        RuleError::Other(why.to_owned())
    }
}

fn parse_rule(rule: &str) -> Result<AllowRule, RuleError> {
    let rule = rule.trim();
    // The URL parser drops tabs and newlines inside a URL; a rule holding
    // any is a mistake, not a host.
    if rule.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("contains whitespace or a control character".into());
    }
    let (scheme, rest) = rule.split_once("://").ok_or(RuleError::Shape)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#', '@', '\\']) {
        return Err("only scheme://host[:port] is allowed, without path, query or user".into());
    }
    if rest.ends_with(':') {
        return Err("the port is empty".into());
    }
    let (wildcard, authority) = match rest.strip_prefix("*.") {
        Some(suffix) => (true, suffix),
        None => (false, rest),
    };
    if authority.contains('*') {
        return Err("`*` may only be the first label, as in `*.example.com`".into());
    }
    // The URL parser normalises the host exactly as it does for requests.
    let url = Url::parse(&format!("{scheme}://{authority}"))
        .map_err(|err| RuleError::Other(err.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("scheme must be http or https".into());
    }
    let port = url.port_or_known_default().ok_or("no port")?;
    let host = match url.host().ok_or("no host")? {
        Host::Domain(domain) => {
            let domain = domain.strip_suffix('.').unwrap_or(domain);
            if domain.is_empty() {
                return Err("empty host".into());
            }
            if wildcard {
                HostRule::Subdomains(domain.to_owned())
            } else {
                HostRule::Exact(Host::Domain(domain.to_owned()))
            }
        }
        _ if wildcard => return Err("`*.` needs a domain name, not an IP address".into()),
        ip => HostRule::Exact(ip.to_owned()),
    };
    Ok(AllowRule {
        scheme: url.scheme().to_owned(),
        host,
        port,
    })
}

fn host_matches(rule: &HostRule, host: &Host<&str>) -> bool {
    match (rule, host) {
        (HostRule::Exact(Host::Domain(want)), Host::Domain(got)) => {
            got.strip_suffix('.').unwrap_or(got) == want
        }
        (HostRule::Exact(Host::Ipv4(want)), Host::Ipv4(got)) => want == got,
        (HostRule::Exact(Host::Ipv6(want)), Host::Ipv6(got)) => want == got,
        (HostRule::Subdomains(suffix), Host::Domain(got)) => {
            let got = got.strip_suffix('.').unwrap_or(got);
            got.strip_suffix(suffix.as_str())
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(rules: &[&str]) -> AllowList {
        let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
        AllowList::parse(&rules).unwrap()
    }

    fn allows(list: &AllowList, url: &str) -> bool {
        list.allows(&Url::parse(url).unwrap())
    }

    #[test]
    fn empty_list_denies_everything() {
        let empty = list(&[]);
        assert!(empty.is_empty());
        assert!(!allows(&empty, "http://example.com/"));
    }

    #[test]
    fn exact_hosts_match_scheme_host_and_default_port() {
        let l = list(&["https://api.example.com"]);
        assert!(!l.is_empty());
        assert!(allows(&l, "https://api.example.com/v1?x=1"));
        assert!(allows(&l, "https://API.Example.COM:443/"));
        assert!(allows(&l, "https://api.example.com./"));
        assert!(!allows(&l, "http://api.example.com/"), "scheme differs");
        assert!(!allows(&l, "https://api.example.com:8443/"), "port differs");
        assert!(!allows(&l, "https://example.com/"));
        assert!(!allows(&l, "https://x.api.example.com/"));
        assert!(!allows(&l, "https://api.example.com.evil.test/"));
    }

    #[test]
    fn explicit_ports_match_only_themselves() {
        let l = list(&["http://localhost:8080", "http://127.0.0.1:80/"]);
        assert!(allows(&l, "http://localhost:8080/"));
        assert!(!allows(&l, "http://localhost/"));
        assert!(!allows(&l, "http://localhost:8081/"));
        assert!(allows(&l, "http://127.0.0.1/"), ":80 is the default port");
        assert!(!allows(&l, "http://127.0.0.1:8080/"));
    }

    #[test]
    fn wildcards_cover_subdomains_only() {
        let l = list(&["https://*.example.com"]);
        assert!(allows(&l, "https://a.example.com/"));
        assert!(allows(&l, "https://a.b.example.com/"));
        assert!(!allows(&l, "https://example.com/"), "the bare domain");
        assert!(!allows(&l, "https://badexample.com/"));
        assert!(!allows(&l, "https://a.example.com.evil.test/"));
        assert!(!allows(&l, "https://a.example.com:444/"));
        assert!(!allows(&l, "http://a.example.com/"));
    }

    #[test]
    fn ip_hosts_compare_canonically() {
        let l = list(&["http://[::1]:3000", "http://10.0.0.1"]);
        assert!(allows(&l, "http://[0:0::1]:3000/"));
        assert!(allows(&l, "http://10.0.0.1/"));
        assert!(!allows(&l, "http://10.0.0.2/"));
    }

    #[test]
    fn international_names_normalise_alike() {
        let l = list(&["https://Bücher.example"]);
        assert!(allows(&l, "https://xn--bcher-kva.example/"));
        assert!(allows(&l, "https://bücher.example/"));
    }

    #[test]
    fn bad_rules_are_rejected() {
        for rule in [
            "*",
            "https://*",
            "https://*.",
            "http://a.*.example.com",
            "http://*example.com",
            "https://*.127.0.0.1",
            "example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://example.com?x",
            "https://user@example.com",
            "https://example.com:99999",
            "https://example.com:*",
            "https://",
        ] {
            assert!(
                AllowList::parse(&[rule.to_string()]).is_err(),
                "{rule} should be rejected"
            );
        }
    }

    #[test]
    fn hostile_rules_are_rejected_with_the_reason() {
        let cases = [
            ("", "is not an origin"),
            ("ftp://x", "scheme must be http or https"),
            ("https://*.", "empty host"),
            ("https://a.example:99999", "invalid port"),
            ("http://[::1", "invalid IPv6"),
            ("https://user:pw@a.example", "without path, query or user"),
            ("https://a.example/v1", "without path, query or user"),
            ("https://a.example#top", "without path, query or user"),
            ("https://a.example\\x", "without path, query or user"),
            ("https://a.example:", "the port is empty"),
            ("https://a.exa\tmple", "control character"),
            ("https://a.ex\nample", "control character"),
            ("https://a b.example", "whitespace"),
            (
                "ftp//nope",
                "is not an origin like https://api.example.com[:port]",
            ),
        ];
        for (rule, why) in cases {
            let err = rule.parse::<AllowRule>().expect_err(rule);
            assert!(err.contains(why), "{rule:?}: {err}");
            assert!(err.contains(&format!("`{rule}`")), "{rule:?}: {err}");
        }
    }

    #[test]
    fn rules_print_in_normal_form() {
        for (rule, shown) in [
            ("HTTPS://API.Example.COM:443", "https://api.example.com"),
            ("http://*.internal:8080", "http://*.internal:8080"),
            ("http://[2001:DB8::1]:80/", "http://[2001:db8::1]"),
            ("http://my_service:9000", "http://my_service:9000"),
        ] {
            let parsed: AllowRule = rule.parse().unwrap_or_else(|e| panic!("{rule}: {e}"));
            assert_eq!(parsed.to_string(), shown);
        }
    }

    #[test]
    fn errors_name_the_rule() {
        let err =
            AllowList::parse(&["https://ok.example".into(), "gopher://x".into()]).unwrap_err();
        assert!(err.contains("gopher://x"), "{err}");
    }
}
