//! Redirects: returned unless asked for, followed within the limit, and
//! checked against the allow-list when one is given.

use super::support::{client, client_with, get, http_server, ok, request, Seen, TestServer};
use crate::outbound::{AllowList, ClientConfig, FetchError};

fn redirect(status: u16, location: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} Redirect\r\nLocation: {location}\r\nContent-Length: 5\r\n\r\nmoved")
        .into_bytes()
}

/// `/s/<status>` redirects to `/final` with that status; `/loop` redirects
/// to itself; `/final` describes the request it got.
async fn redirecting_server() -> TestServer {
    http_server(|seen: &Seen| {
        if let Some(status) = seen.path.strip_prefix("/s/") {
            return redirect(status.parse().unwrap(), "/final");
        }
        match seen.path.as_str() {
            "/loop" => redirect(302, "/loop"),
            "/final" => ok(&format!(
                "{} {}",
                seen.method,
                String::from_utf8_lossy(&seen.body)
            )),
            _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
        }
    })
    .await
}

#[tokio::test]
async fn redirects_are_returned_unless_followed() {
    let server = redirecting_server().await;
    let response = client().fetch(get(&server.url("/s/302"))).await.unwrap();
    assert_eq!(response.status, 302);
    assert_eq!(response.header("location"), Some(&b"/final"[..]));
    assert_eq!(response.body, b"moved");
}

#[tokio::test]
async fn followed_redirects_end_at_the_final_response() {
    let server = redirecting_server().await;
    let client = client();
    for status in [301, 302, 303, 307, 308] {
        let mut req = get(&server.url(&format!("/s/{status}")));
        req.follow_redirects = true;
        let response = client.fetch(req).await.unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"GET "[..])
        );
    }
    assert_eq!(
        server.accepts(),
        1,
        "redirect responses leave the connection usable"
    );
}

#[tokio::test]
async fn methods_and_bodies_follow_the_status_rules() {
    let server = redirecting_server().await;
    let client = client();
    for (status, expected) in [
        (301, "GET "),
        (302, "GET "),
        (303, "GET "),
        (307, "POST data"),
        (308, "POST data"),
    ] {
        let mut req = request("POST", &server.url(&format!("/s/{status}")), b"data");
        req.follow_redirects = true;
        let response = client.fetch(req).await.unwrap();
        assert_eq!(response.body, expected.as_bytes(), "{status}");
    }
}

#[tokio::test]
async fn too_many_redirects_fail() {
    let server = redirecting_server().await;
    let client = client_with(ClientConfig {
        max_redirects: 2,
        ..ClientConfig::default()
    });
    let mut req = get(&server.url("/loop"));
    req.follow_redirects = true;
    let err = client.fetch(req).await.unwrap_err();
    assert!(matches!(err, FetchError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn redirects_to_denied_destinations_are_refused() {
    let target = http_server(|_| ok("elsewhere")).await;
    let target_url = target.url("/");
    let origin = http_server(move |_| redirect(302, &target_url)).await;
    let client = client();

    let only_origin = AllowList::parse(&[format!("http://{}", origin.addr)]).unwrap();
    let mut req = get(&origin.url("/"));
    req.follow_redirects = true;
    let err = client
        .fetch_allowed(req.clone(), Some(&only_origin))
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::Denied);
    assert_eq!(
        target.accepts(),
        0,
        "nothing connects to a denied destination"
    );

    let both = AllowList::parse(&[
        format!("http://{}", origin.addr),
        format!("http://{}", target.addr),
    ])
    .unwrap();
    let response = client.fetch_allowed(req, Some(&both)).await.unwrap();
    assert_eq!(response.body, b"elsewhere");
}

#[tokio::test]
async fn the_first_destination_is_checked_too() {
    let server = http_server(|_| ok("")).await;
    let client = client();
    let empty = AllowList::parse(&[]).unwrap();
    let err = client
        .fetch_allowed(get(&server.url("/")), Some(&empty))
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::Denied);
    assert_eq!(server.accepts(), 0);
}
