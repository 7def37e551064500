use super::*;

/// Each pattern compiled by `app!`'s macro and from its text, beside
/// `regex`'s own compile of it.
macro_rules! patterns {
    ($($pattern:literal),* $(,)?) => {
        vec![$((
            $pattern,
            snow_guest_macros::pattern!(crate, $pattern),
            Pattern::from($pattern),
        )),*]
    };
}

const PATHS: &[&str] = &[
    "",
    "/",
    "/home/",
    "/home",
    "/home/x",
    "/u/42/",
    "/u/42/bob/",
    "/u//bob/",
    "/u/٣/",
    "/files/a/b/c.txt",
    "/files/",
    "/é/",
    "/É/",
    "/a\nb",
    "/abcabcabc",
    "/x/y/z/",
    "/2024-01-31/",
    "/api/v2/items/7?x=1",
    "/café/ünïcode/☃",
];

fn groups(matcher: &Matcher, cache: &mut Cache, path: &str) -> Option<Vec<Option<(usize, usize)>>> {
    let info = matcher.group_info();
    let mut slots = vec![None; info.slot_len()];
    if !matcher.search(cache, path, &mut slots) {
        return None;
    }
    let group = |i: usize| {
        let (start, end) = info.slots(PatternID::ZERO, i)?;
        Some((slots[start]?.get(), slots[end]?.get()))
    };
    Some((0..info.group_len(PatternID::ZERO)).map(group).collect())
}

fn reference(regex: &regex::Regex, path: &str) -> Option<Vec<Option<(usize, usize)>>> {
    let caps = regex.captures(path)?;
    Some(
        (0..caps.len())
            .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
            .collect(),
    )
}

#[test]
fn both_builds_find_what_regex_finds() {
    let cases = patterns![
        r"^/home/$",
        r"^/u/(\d+)/$",
        r"^/u/(\d+)/(?P<name>[a-z]+)?/?$",
        r"^/files/(.*)$",
        r"^/files/(.+?)(\.txt)?$",
        r"^/(?i)é/$",
        r"/home",
        r"(a|ab)(c|bcd)?",
        r"^/(abc)+$",
        r"^/(?P<r>[a-z]){2,}",
        r"^/(?:(a)|b)*c",
        r"^/(\w+)/(\w+)/(\w+)/$",
        r"^/(\d{4})-(\d{2})-(\d{2})/$",
        r"^/api/v(?P<version>[0-9]+)/(?P<kind>[a-z]+)/(?P<id>[0-9]+)",
        r"(?m)^b$",
        r"\bitems\b",
        r"^/[^/]*$",
        r"",
        r"^",
        r"x*",
        r"☃$",
        r"^/(?P<a>[^/]+)/(?P<b>[^/]+)/(?P<c>.+)$",
    ];
    for (source, precompiled, from_text) in cases {
        let regex = regex::Regex::new(source).expect("a valid pattern");
        for pattern in [&precompiled, &from_text] {
            let matcher = Matcher::new(pattern).expect("both builds compile");
            let mut cache = matcher.create_cache();
            for path in PATHS {
                assert_eq!(
                    groups(&matcher, &mut cache, path),
                    reference(&regex, path),
                    "{source:?} on {path:?}"
                );
            }
        }
        assert_eq!(precompiled.as_str(), source);
    }
}

#[test]
fn long_paths_fall_back_to_the_pikevm_and_agree() {
    let cases = patterns![r"(a|b)*(c)", r"^/(x+)+y$", r"^/(.*)/(.*)$"];
    let long = format!("/{}c", "ab".repeat(300_000));
    let nested = format!("/{}", "x".repeat(200_000));
    let slashes = format!("/{}/{}", "a".repeat(100_000), "b".repeat(100_000));
    for (source, precompiled, _) in cases {
        let regex = regex::Regex::new(source).expect("a valid pattern");
        let matcher = Matcher::new(&precompiled).expect("compiles");
        let mut cache = matcher.create_cache();
        for path in [&long, &nested, &slashes] {
            assert!(path.len() >= matcher.backtrack.max_haystack_len() / 8);
            assert_eq!(
                groups(&matcher, &mut cache, path),
                reference(&regex, path),
                "{source:?}"
            );
        }
    }
}

#[test]
fn a_bad_runtime_pattern_is_an_error() {
    for bad in ["^/(x$", "[z-a]", r"\p{NoSuchClass}", "(?P<n>a)(?P<n>b)"] {
        let err = Matcher::new(&Pattern::from(bad)).err().expect(bad);
        assert!(!err.is_empty(), "{bad}");
    }
}
