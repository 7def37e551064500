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
//! - A host may be an address range: `http://10.0.0.0/8:8080`, or
//!   `http://[fd00::/8]:8080` for IPv6.
//! - An empty list allows nothing.
//!
//! Names are checked before connecting and the address connected to after:
//! a loopback, private or link-local address (see [`super::internal`]) is
//! reached only when a rule with the same scheme and port names that
//! address or a range holding it, never through a name alone.

use std::fmt;
use std::net::IpAddr;
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
    /// Addresses whose first `.1` bits are those of `.0`.
    Range(IpAddr, u8),
}

impl HostRule {
    /// Whether this rule names `ip` itself, rather than a name that may
    /// resolve to it.
    fn names(&self, ip: IpAddr) -> bool {
        match self {
            HostRule::Exact(Host::Ipv4(want)) => ip == IpAddr::V4(*want),
            HostRule::Exact(Host::Ipv6(want)) => ip == IpAddr::V6(*want),
            HostRule::Range(net, len) => in_range(*net, *len, ip),
            HostRule::Exact(Host::Domain(_)) | HostRule::Subdomains(_) => false,
        }
    }
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

    /// Whether a connection for `scheme` and `port` may go to `ip`: any
    /// public address, or an internal one that a rule for that scheme and
    /// port names. The error is the kind of internal address.
    pub fn permits_address(&self, scheme: &str, port: u16, ip: IpAddr) -> Result<(), &'static str> {
        let ip = canonical(ip);
        let Some(kind) = super::internal::kind(ip) else {
            return Ok(());
        };
        let named = self
            .rules
            .iter()
            .any(|rule| rule.scheme == scheme && rule.port == port && rule.host.names(ip));
        if named {
            Ok(())
        } else {
            Err(kind)
        }
    }

    /// Whether some rule, for any scheme and port, could let a connection
    /// reach `ip`; lets name lookups drop addresses no rule can permit.
    pub fn may_reach(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        super::internal::kind(ip).is_none() || self.rules.iter().any(|rule| rule.host.names(ip))
    }
}

/// IPv4 addresses written as IPv6 (`::ffff:a.b.c.d`) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn in_range(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, canonical(ip)) {
        (IpAddr::V4(net), IpAddr::V4(ip)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
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
            HostRule::Range(IpAddr::V4(net), len) => write!(f, "{}://{net}/{len}", self.scheme)?,
            HostRule::Range(IpAddr::V6(net), len) => write!(f, "{}://[{net}/{len}]", self.scheme)?,
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
    if let Some(range) = parse_range(scheme, rest) {
        return range;
    }
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

/// `10.0.0.0/8[:port]` or `[fd00::/8][:port]`; `None` when `rest` is not
/// an address followed by a prefix length.
fn parse_range(scheme: &str, rest: &str) -> Option<Result<AllowRule, RuleError>> {
    let (addr, len, port) = match rest.strip_prefix('[') {
        Some(inner) => {
            let (inside, after) = inner.split_once(']')?;
            let (addr, len) = inside.split_once('/')?;
            (addr.parse::<std::net::Ipv6Addr>().ok()?.into(), len, after)
        }
        None => {
            let (addr, tail) = rest.split_once('/')?;
            let (len, port) = tail.find(':').map_or((tail, ""), |at| tail.split_at(at));
            (addr.parse::<std::net::Ipv4Addr>().ok()?.into(), len, port)
        }
    };
    Some(range_rule(scheme, addr, len, port))
}

fn range_rule(scheme: &str, net: IpAddr, len: &str, port: &str) -> Result<AllowRule, RuleError> {
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return Err("scheme must be http or https".into()),
    };
    let bits = if net.is_ipv4() { 32 } else { 128 };
    let digits = !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit());
    let len: u8 = match len.parse() {
        Ok(len) if digits && len <= bits => len,
        _ => {
            let why = format!("the prefix length must be 0 to {bits}");
            return Err(RuleError::Other(why));
        }
    };
    let fixed = mask(net, len);
    if fixed != net {
        let why = format!("bits are set after the prefix; the range is {fixed}/{len}");
        return Err(RuleError::Other(why));
    }
    let port = match port {
        "" => default,
        ":" => return Err("the port is empty".into()),
        port => match port.strip_prefix(':').and_then(|p| p.parse::<u16>().ok()) {
            Some(port) if port > 0 => port,
            _ => return Err("invalid port number".into()),
        },
    };
    Ok(AllowRule {
        scheme,
        host: HostRule::Range(net, len),
        port,
    })
}

/// `net` with every bit after the first `len` cleared.
fn mask(net: IpAddr, len: u8) -> IpAddr {
    match net {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

fn host_matches(rule: &HostRule, host: &Host<&str>) -> bool {
    match (rule, host) {
        (HostRule::Exact(Host::Domain(want)), Host::Domain(got)) => {
            got.strip_suffix('.').unwrap_or(got) == want
        }
        (HostRule::Exact(Host::Ipv4(want)), Host::Ipv4(got)) => want == got,
        (HostRule::Exact(Host::Ipv6(want)), Host::Ipv6(got)) => want == got,
        (HostRule::Range(net, len), Host::Ipv4(got)) => in_range(*net, *len, (*got).into()),
        (HostRule::Range(net, len), Host::Ipv6(got)) => in_range(*net, *len, (*got).into()),
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
    fn ranges_cover_their_addresses() {
        let l = list(&["http://10.0.0.0/8:8080", "https://[fd00::/8]"]);
        assert!(allows(&l, "http://10.1.2.3:8080/"));
        assert!(!allows(&l, "http://11.0.0.1:8080/"));
        assert!(!allows(&l, "http://10.1.2.3/"), "port differs");
        assert!(allows(&l, "https://[fd12::1]/"));
        assert!(!allows(&l, "https://[fe80::1]/"));
        assert!(
            !allows(&l, "https://ten.example/"),
            "names are not in ranges"
        );
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_need_a_rule_naming_them() {
        let l = list(&[
            "http://internal.example:8080",
            "http://10.0.0.5:8080",
            "http://192.168.0.0/16",
        ]);
        assert_eq!(l.permits_address("http", 8080, ip("8.8.8.8")), Ok(()));
        assert_eq!(l.permits_address("http", 8080, ip("10.0.0.5")), Ok(()));
        assert_eq!(
            l.permits_address("http", 80, ip("10.0.0.5")),
            Err("private"),
            "named for another port"
        );
        assert_eq!(
            l.permits_address("https", 8080, ip("10.0.0.5")),
            Err("private")
        );
        assert_eq!(
            l.permits_address("http", 8080, ip("10.0.0.6")),
            Err("private")
        );
        assert_eq!(l.permits_address("http", 80, ip("192.168.7.7")), Ok(()));
        assert_eq!(
            l.permits_address("http", 80, ip("::ffff:192.168.7.7")),
            Ok(()),
            "mapped IPv4 compares as IPv4"
        );
        assert_eq!(
            l.permits_address("http", 8080, ip("::ffff:127.0.0.1")),
            Err("loopback")
        );
        assert_eq!(
            l.permits_address("http", 8080, ip("169.254.169.254")),
            Err("link-local")
        );
        assert!(l.may_reach(ip("10.0.0.5")));
        assert!(l.may_reach(ip("1.2.3.4")));
        assert!(!l.may_reach(ip("127.0.0.1")));
        assert!(!l.may_reach(ip("::1")));
    }

    #[test]
    fn bad_ranges_are_rejected_with_the_reason() {
        for (rule, why) in [
            ("http://10.0.0.1/8", "the range is 10.0.0.0/8"),
            ("http://10.0.0.0/33", "0 to 32"),
            ("http://10.0.0.0/+8", "0 to 32"),
            ("http://10.0.0.0/8:", "the port is empty"),
            ("http://10.0.0.0/8:0", "invalid port"),
            ("http://10.0.0.0/8:x", "invalid port"),
            ("http://[fd00::/129]", "0 to 128"),
            ("http://[fd00::1/8]", "the range is fd00::/8"),
            ("http://[fd00::/8]x", "invalid port"),
            ("ftp://10.0.0.0/8", "scheme must be http or https"),
        ] {
            let err = rule.parse::<AllowRule>().expect_err(rule);
            assert!(err.contains(why), "{rule:?}: {err}");
        }
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
            ("HTTP://10.0.0.0/8:80", "http://10.0.0.0/8"),
            ("http://[FD00::/8]:8080", "http://[fd00::/8]:8080"),
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
