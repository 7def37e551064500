//! Bearer-token authentication of admin requests (RFC 6750 §2.1).

use crate::config::AdminToken;
use crate::http::{RequestHead, Response};

/// What a refused request is told; the same whatever was wrong, so a
/// client learns nothing about the token from the answer.
const UNAUTHORIZED: &str = "this admin request needs `Authorization: Bearer <token>`";

const CHALLENGE: &[(&str, &[u8])] = &[("www-authenticate", b"Bearer realm=\"snow-admin\"")];

/// Checks `head` against `token`. Without a token every request passes:
/// the admin API then listens on loopback only (`snow serve` refuses
/// anything else).
pub(super) fn authorize(token: Option<&AdminToken>, head: &RequestHead) -> Result<(), Response> {
    let Some(token) = token else {
        return Ok(());
    };
    let mut values = head
        .headers()
        .filter(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value);
    // Two headers could be read differently by a proxy in front: refuse.
    let presented = match (values.next(), values.next()) {
        (Some(value), None) => bearer(value),
        _ => None,
    };
    match presented {
        Some(presented) if token.matches(presented) => Ok(()),
        Some(_) => {
            tracing::warn!(path = %head.path, "admin request refused: wrong bearer token");
            Err(unauthorized())
        }
        None => Err(unauthorized()),
    }
}

/// The token of `Bearer <token>`: the scheme in any case, then one or more
/// spaces (`1*SP` in RFC 6750). Other schemes and an empty token are `None`.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = value.split_at(space);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[start..])
}

pub(super) fn unauthorized() -> Response {
    Response::plain_with(401, UNAUTHORIZED, CHALLENGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_parsed_per_rfc_6750() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"BEARER   abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer a b"), Some(&b"a b"[..]));
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer\tabc"), None);
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearerabc"), None);
        assert_eq!(bearer(b" Bearer abc"), None);
        assert_eq!(bearer(b""), None);
    }
}
