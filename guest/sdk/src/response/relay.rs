//! What a relayed response becomes where the module itself must make it:
//! on a host without relays (`wasi:http`), and in native tests. Snow's
//! host does the same on its side of `outbound.relay`.

use super::{Headers, Response};
use crate::outbound::{FetchError, OutgoingRequest};
use crate::{Error, Header, IntoResponse};

/// Fields that describe one connection, not the response (RFC 9110,
/// 7.6.1): the client's connection has its own.
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The relay run as a streamed fetch, the body piped through the module.
// Only a build without relays at the host runs it.
#[cfg_attr(not(feature = "wasi-http"), allow(dead_code))]
pub(crate) async fn by_fetch(req: OutgoingRequest, overrides: Headers) -> Response {
    let upstream = crate::fetch::fetch_outgoing(req).await.map(|mut upstream| {
        // The upstream's head on the body sent on as it streams in.
        let headers = std::mem::take(&mut upstream.headers);
        let status = upstream.status;
        let mut response = Response::stream_from(upstream.into_body_stream());
        response.status = status;
        response.headers = headers;
        response
    });
    answer(upstream, overrides)
}

/// The client's response to a relay whose upstream answered `upstream`.
pub(crate) fn answer(upstream: Result<Response, FetchError>, overrides: Headers) -> Response {
    match upstream {
        Ok(mut response) => {
            let headers = std::mem::take(&mut response.headers).into_list();
            response.headers = Headers::from_list(end_to_end(headers, overrides));
            response
        }
        Err(err) => Error::from(err).into_response(),
    }
}

/// The upstream's fields without those of its connection, and with
/// `overrides` replacing the fields of their names.
fn end_to_end(mut headers: Vec<Header>, overrides: Headers) -> Vec<Header> {
    let overrides = overrides.into_list();
    let named: Vec<String> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("connection"))
        .flat_map(|h| {
            String::from_utf8_lossy(&h.value)
                .split(',')
                .map(|name| name.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    headers.retain(|h| {
        !HOP_BY_HOP
            .iter()
            .any(|hop| h.name.eq_ignore_ascii_case(hop))
            && !named.iter().any(|n| h.name.eq_ignore_ascii_case(n))
            && !overrides
                .iter()
                .any(|o| h.name.eq_ignore_ascii_case(&o.name))
    });
    headers.extend(overrides);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstreams_connection_fields_stay_behind_and_overrides_win() {
        let upstream = Response::text("hi")
            .append_header("connection", "x-hop")
            .append_header("x-hop", "secret")
            .append_header("keep-alive", "timeout=5")
            .append_header("set-cookie", "a=1")
            .append_header("set-cookie", "b=2")
            .append_header("cache-control", "private");
        let overrides = Response::status(200).with_header("Cache-Control", "no-store");
        let (_, overrides, _) = overrides.into_head_parts();
        let out = answer(Ok(upstream), overrides);
        let names: Vec<&str> = out.headers().iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["content-type", "set-cookie", "set-cookie", "Cache-Control"]
        );
        assert_eq!(out.header("cache-control"), Some(&b"no-store"[..]));
        assert_eq!(out.body(), b"hi");
    }

    #[test]
    fn a_failed_relay_answers_like_a_failed_fetch() {
        let timed_out = answer(Err(FetchError::Timeout), Headers::default());
        assert_eq!(timed_out.status_code(), 504);
        let denied = answer(Err(FetchError::Denied), Headers::default());
        assert_eq!(denied.status_code(), 502);
    }
}
