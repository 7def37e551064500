//! Query-string parsing as browsers encode forms: `&`-separated pairs,
//! percent-escapes, and `+` for a space.

/// The first value of `name`, decoded; a name without `=` has an empty value.
pub(crate) fn param(query: &str, name: &str) -> Option<String> {
    pairs(query)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Every value of `name` in order, decoded.
pub(crate) fn values(query: &str, name: &str) -> Vec<String> {
    pairs(query)
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value)
        .collect()
}

/// Every pair in order, decoded, duplicates kept.
pub(crate) fn pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
}

/// Decodes `%XX` and `+`. A malformed escape stays as written rather than
/// failing, and bytes that do not form UTF-8 become U+FFFD, since clients
/// send anything.
pub(crate) fn decode(raw: &str) -> String {
    if !raw.contains(['%', '+']) {
        return raw.to_owned();
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

fn hex(byte: Option<&u8>) -> Option<u8> {
    char::from(*byte?).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn invalid_utf8_is_replaced() {
        assert_eq!(decode("%FF"), "\u{FFFD}");
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
