//! What a module's route table must be before it serves: every pattern a
//! valid regular expression (the SDK compiles them lazily, so a bad one
//! would otherwise panic on the first request), methods that are HTTP
//! tokens, and a table of a sane size.

use anyhow::{bail, Result};

use crate::runtime::bindings::Route;

/// More routes than any hand-written table; beyond it a module is probing.
pub const MAX_ROUTES: usize = 4096;
/// Longest pattern accepted.
pub const MAX_PATTERN: usize = 4096;
/// Compiled size of one pattern; the regex crate's own default is 10 MiB.
const MAX_COMPILED: usize = 1 << 20;

pub fn check(module: &str, routes: &[Route]) -> Result<()> {
    if routes.len() > MAX_ROUTES {
        bail!(
            "module {module} lists {} routes; at most {MAX_ROUTES} are allowed",
            routes.len()
        );
    }
    for route in routes {
        let pattern = &route.pattern;
        if pattern.len() > MAX_PATTERN {
            bail!(
                "module {module}: a route pattern of {} bytes is longer than {MAX_PATTERN}",
                pattern.len()
            );
        }
        if let Err(err) = regex::RegexBuilder::new(pattern)
            .size_limit(MAX_COMPILED)
            .build()
        {
            bail!("module {module}: route `{pattern}` is not a valid regular expression: {err}");
        }
        if let Some(method) = route.methods.iter().find(|m| !is_token(m)) {
            bail!("module {module}: route `{pattern}` lists method {method:?}, which is not an HTTP method name");
        }
    }
    Ok(())
}

/// RFC 9110 `token`: what a method name is made of.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(pattern: &str, methods: &[&str]) -> Route {
        Route {
            pattern: pattern.to_string(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn good_tables_pass() {
        let routes = [
            route("^/home/$", &["GET", "HEAD"]),
            route(r"^/u/(\d+)/$", &[]),
        ];
        assert!(check("m", &routes).is_ok());
        assert!(check("m", &[]).is_ok());
    }

    #[test]
    fn bad_tables_are_refused_with_the_reason() {
        let long = "a".repeat(MAX_PATTERN + 1);
        let many: Vec<Route> = (0..=MAX_ROUTES)
            .map(|i| route(&format!("^/{i}$"), &[]))
            .collect();
        for (routes, why) in [
            (
                vec![route("^/(unclosed$", &[])],
                "route `^/(unclosed$` is not a valid regular expression: regex parse error",
            ),
            (vec![route("(a{1000}){1000}", &[])], "exceeds size limit"),
            (vec![route(&long, &[])], "longer than 4096"),
            (vec![route("^/$", &["GE T"])], "method \"GE T\""),
            (vec![route("^/$", &[""])], "method \"\""),
            (
                vec![route("^/$", &["GET\r\nX: y"])],
                "not an HTTP method name",
            ),
            (many, "4097 routes"),
        ] {
            let err = check("m", &routes).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
            assert!(err.starts_with("module m"), "{err}");
        }
    }
}
