//! Query-string parsing as browsers encode forms
//! (`application/x-www-form-urlencoded`): `&`-separated pairs,
//! percent-escapes, and `+` for a space, decoded by `form_urlencoded`. A
//! malformed escape stays as written and bytes that do not form UTF-8
//! become U+FFFD rather than failing, since clients send anything.

/// The first value of `name`, decoded; a name without `=` has an empty value.
pub(crate) fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| value_of(pair, name))
}

/// Every value of `name` in order, decoded.
pub(crate) fn values(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| value_of(pair, name))
        .collect()
}

/// The decoded value of `pair` when its decoded name is `name`. Handlers
/// ask for one or two parameters of a short query, so pairs whose name is
/// plainly another are passed over, and one written without escapes is
/// taken as it is, both without decoding: decoding every pair for every
/// lookup was most of what a proxy's handler cost.
fn value_of(pair: &str, name: &str) -> Option<String> {
    let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
    let escaped = |s: &str| s.bytes().any(|b| b == b'%' || b == b'+');
    if !escaped(raw_name) {
        if raw_name != name || pair.is_empty() {
            return None;
        }
        if !escaped(raw_value) {
            return Some(raw_value.to_owned());
        }
    }
    let (key, value) = form_urlencoded::parse(pair.as_bytes()).next()?;
    (key == name).then(|| value.into_owned())
}

/// Every pair in order, decoded, duplicates kept; empty pairs (`a=1&&b`)
/// are skipped.
pub(crate) fn pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `raw` decoded as a value.
    fn decode(raw: &str) -> String {
        param(&format!("k={raw}"), "k").expect("the pair is there")
    }

    #[test]
    fn decodes_percent_and_plus() {
        assert_eq!(decode("a%20b+c"), "a b c");
        assert_eq!(decode("%E2%9C%93"), "\u{2713}");
        assert_eq!(decode("%2B"), "+");
    }

    #[test]
    fn keeps_malformed_escapes() {
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn hostile_escapes_stay_as_written() {
        for raw in ["%", "%%", "%%%", "%G0", "%0G", "%-1", "%+1", "a%", "%4"] {
            assert_eq!(decode(raw), raw.replace('+', " "), "{raw}");
        }
        assert_eq!(decode("%%41"), "%A");
        assert_eq!(decode("%2"), "%2");
        assert_eq!(decode("%41%"), "A%");
    }

    #[test]
    fn plus_is_a_space_only_when_written_as_plus() {
        assert_eq!(decode("+"), " ");
        assert_eq!(decode("++"), "  ");
        assert_eq!(decode("a+%2B+b"), "a + b");
        assert_eq!(decode("%20"), " ");
        assert_eq!(param("a+b=c+d", "a b").as_deref(), Some("c d"));
        assert_eq!(param("a%2Bb=1", "a+b").as_deref(), Some("1"));
        assert_eq!(param("a+b=1", "a+b"), None);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(decode("%FF"), "\u{FFFD}");
        // A lone continuation byte, a truncated sequence, an overlong
        // encoding and a surrogate: never a panic, always U+FFFD.
        assert_eq!(decode("%80"), "\u{FFFD}");
        assert_eq!(decode("%C3%28"), "\u{FFFD}(");
        assert_eq!(decode("%E2%9C"), "\u{FFFD}");
        assert_eq!(decode("%C0%AF"), "\u{FFFD}\u{FFFD}");
        assert_eq!(decode("%ED%A0%80"), "\u{FFFD}\u{FFFD}\u{FFFD}");
        assert_eq!(decode("ok%FFok"), "ok\u{FFFD}ok");
        assert_eq!(param("%FF=v", "\u{FFFD}").as_deref(), Some("v"));
    }

    #[test]
    fn empty_keys_and_values() {
        assert_eq!(param("=v", "").as_deref(), Some("v"));
        assert_eq!(param("&=&", "").as_deref(), Some(""));
        assert_eq!(param("a=", "a").as_deref(), Some(""));
        assert_eq!(values("=1&=2&a=3", ""), ["1", "2"]);
        let all: Vec<_> = pairs("=&&a==b&").collect();
        assert_eq!(
            all,
            [(String::new(), String::new()), ("a".into(), "=b".into())]
        );
        assert_eq!(pairs("&&&").count(), 0);
    }

    /// Decoding every pair, the way a lookup worked before pairs were
    /// passed over.
    fn decoding_all(query: &str, name: &str) -> Vec<String> {
        form_urlencoded::parse(query.as_bytes())
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .collect()
    }

    #[test]
    fn passing_over_pairs_finds_what_decoding_all_finds() {
        let queries = [
            "",
            "&",
            "&&=&",
            "a",
            "a=",
            "=a",
            "a=1&a=2",
            "a%3D=1",
            "a+=1&a%20=2&a=3",
            "%61=1&a=2",
            "a=%zz&a=+&a=%",
            "url=http://h/x?y=1&timeout_ms=5",
            "a=b=c&=&a",
            "%FF=1&\u{e9}=2&a=\u{e9}",
            "a%=1&a%2=2&%a=3",
        ];
        let names = [
            "",
            "a",
            "a ",
            "a=",
            "url",
            "timeout_ms",
            "\u{e9}",
            "\u{fffd}",
            "a%",
            "x",
        ];
        for query in queries {
            for name in names {
                assert_eq!(
                    values(query, name),
                    decoding_all(query, name),
                    "{query:?} {name:?}"
                );
                assert_eq!(
                    param(query, name),
                    decoding_all(query, name).into_iter().next(),
                    "{query:?} {name:?}"
                );
            }
        }
    }

    #[test]
    fn finds_first_param() {
        let query = "a=1&b=two+words&a=3&flag&c=%3D";
        assert_eq!(param(query, "a").as_deref(), Some("1"));
        assert_eq!(param(query, "b").as_deref(), Some("two words"));
        assert_eq!(param(query, "flag").as_deref(), Some(""));
        assert_eq!(param(query, "c").as_deref(), Some("="));
        assert_eq!(param(query, "missing"), None);
        assert_eq!(param("", "a"), None);
    }

    #[test]
    fn finds_every_value_of_a_name() {
        let query = "url=http%3A%2F%2Fa%2F&x=1&url=b&url";
        assert_eq!(values(query, "url"), ["http://a/", "b", ""]);
        assert!(values(query, "missing").is_empty());
        assert!(values("", "url").is_empty());
    }

    #[test]
    fn names_are_decoded_too() {
        assert_eq!(param("my+key=v", "my key").as_deref(), Some("v"));
        let all: Vec<_> = pairs("x=1&&y").collect();
        assert_eq!(all, [("x".into(), "1".into()), ("y".into(), String::new())]);
    }
}
