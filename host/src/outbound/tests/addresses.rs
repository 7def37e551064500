//! Names that lead inside: an allowed name resolving to a loopback address
//! is refused unless a rule names the address itself, whether the name is
//! the first destination or a redirect, and whichever pool a connection
//! sits in. `localhost` is the name the system resolver maps to 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::support::{client, get, http_server, ok, TestServer};
use crate::outbound::{AllowList, FetchError};

fn rules(rules: &[String]) -> AllowList {
    AllowList::parse(rules).unwrap()
}

/// A server counting the requests it answers (connections may be opened
/// and dropped unseen).
async fn counting() -> (TestServer, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    let server = http_server(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        ok("inside")
    })
    .await;
    (server, seen)
}

fn by_name(server: &TestServer) -> String {
    format!("http://localhost:{}", server.addr.port())
}

#[tokio::test]
async fn an_allowed_name_resolving_to_loopback_is_denied() {
    let (server, seen) = counting().await;
    let allow = rules(&[by_name(&server)]);
    let err = client()
        .fetch_allowed(get(&format!("{}/", by_name(&server))), Some(&allow))
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::Denied);
    assert_eq!(server.accepts(), 0, "no connection is even attempted");
    assert_eq!(seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_rule_naming_the_address_or_its_range_permits_it() {
    let (server, seen) = counting().await;
    let port = server.addr.port();
    for named in [
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.0/8:{port}"),
        format!("http://0.0.0.0/0:{port}"),
    ] {
        let allow = rules(&[by_name(&server), named.clone()]);
        let response = client()
            .fetch_allowed(get(&format!("{}/", by_name(&server))), Some(&allow))
            .await
            .unwrap_or_else(|err| panic!("{named}: {err}"));
        assert_eq!(response.body, b"inside", "{named}");
    }
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_address_named_for_another_port_does_not_open_this_one() {
    let (server, seen) = counting().await;
    let other = server.addr.port().wrapping_add(1).max(1);
    // The lookup keeps 127.0.0.1 (a rule names it), so the check on the
    // connected address is what refuses.
    let allow = rules(&[by_name(&server), format!("http://127.0.0.1:{other}")]);
    let err = client()
        .fetch_allowed(get(&format!("{}/", by_name(&server))), Some(&allow))
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::Denied);
    assert_eq!(seen.load(Ordering::SeqCst), 0, "no request was sent");

    let https_only = rules(&[
        by_name(&server),
        format!("https://127.0.0.1:{}", server.addr.port()),
    ]);
    let err = client()
        .fetch_allowed(get(&format!("{}/", by_name(&server))), Some(&https_only))
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::Denied, "the scheme must match too");
    assert_eq!(seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_to_a_name_leading_inside_is_denied() {
    let (inside, seen) = counting().await;
    let target = format!("{}/secret", by_name(&inside));
    let origin = http_server(move |_| {
        format!("HTTP/1.1 302 Found\r\nlocation: {target}\r\ncontent-length: 0\r\n\r\n")
            .into_bytes()
    })
    .await;
    let allow = rules(&[format!("http://{}", origin.addr), by_name(&inside)]);
    let mut req = get(&origin.url("/"));
    req.follow_redirects = true;
    let err = client().fetch_allowed(req, Some(&allow)).await.unwrap_err();
    assert_eq!(err, FetchError::Denied);
    assert_eq!(seen.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_connection_one_list_permits_is_not_reused_under_another() {
    let (server, seen) = counting().await;
    let url = format!("{}/", by_name(&server));
    let client = client();
    let wide = rules(&[
        by_name(&server),
        format!("http://127.0.0.1:{}", server.addr.port()),
    ]);
    client.fetch_allowed(get(&url), Some(&wide)).await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    let narrow = rules(&[by_name(&server)]);
    let err = client
        .fetch_allowed(get(&url), Some(&narrow))
        .await
        .unwrap_err();
    assert_eq!(err, FetchError::Denied);
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn fetches_without_a_list_reach_any_address() {
    let (server, _) = counting().await;
    let response = client()
        .fetch(get(&format!("{}/", by_name(&server))))
        .await
        .unwrap();
    assert_eq!(response.body, b"inside");
}
