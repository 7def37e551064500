// Shared by the two versions: each answers with its own VERSION, so a test
// can tell which version served every response.

use std::time::Duration;

use snow_guest::{sleep, Request};

snow_guest::app!([
    (r"^(/[a-z]+)?/version/$", version),
    (r"^(/[a-z]+)?/slow/$", slow),
    (r"^(/[a-z]+)?/env/([A-Z_]+)/$", env),
]);

fn version(_: Request) -> &'static str {
    VERSION
}

/// Parks, then answers with the version that took the request: a swap in
/// between must not change it.
async fn slow(req: Request) -> &'static str {
    let ms = req
        .query_param("ms")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(100);
    sleep(Duration::from_millis(ms)).await;
    VERSION
}

/// Configuration reaches a module as environment variables.
fn env(req: Request) -> String {
    let name = req.group(2).unwrap_or_default();
    std::env::var(name).unwrap_or_else(|_| "(unset)".into())
}
