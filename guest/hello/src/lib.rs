//! The default module the host embeds: a plain route, a parked one and an
//! echo, enough to see every path through the host.

use std::time::Duration;

use snow_guest::{sleep, Error, Request, Response};

snow_guest::app!([
    (r"^/home/$", home),
    (r"^/async/$", wait),
    (r"^/echo/$", echo, "POST"),
]);

/// Long enough to see a request parked; short enough for a demo.
const DEFAULT_WAIT_MS: u64 = 5_000;
/// Caps what a client can ask for, so a query cannot park a request for
/// longer than a minute.
const MAX_WAIT_MS: u64 = 60_000;

fn home(_: Request) -> &'static str {
    "home"
}

async fn wait(req: Request) -> Result<&'static str, Error> {
    let ms = wait_ms(&req)?;
    sleep(Duration::from_millis(ms)).await;
    Ok("done")
}

fn wait_ms(req: &Request) -> Result<u64, Error> {
    let Some(raw) = req.query_param("ms") else {
        return Ok(DEFAULT_WAIT_MS);
    };
    let ms: u64 = raw
        .parse()
        .map_err(|_| Error::bad_request(format!("ms must be a whole number, got {raw:?}")))?;
    Ok(ms.min(MAX_WAIT_MS))
}

fn echo(req: Request) -> Response {
    let content_type = req
        .header("content-type")
        .map_or_else(|| b"application/octet-stream".to_vec(), <[u8]>::to_vec);
    Response::bytes(req.into_body()).with_header("content-type", content_type)
}

// Native only: they run against the SDK's fake host.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::time::Duration;

    use snow_guest::testing::{handle, ready, resume_timer, timers, Client};

    use super::*;

    #[test]
    fn home_answers() {
        let response = Client::new(app()).get("/home/");
        assert_eq!(
            (response.status_code(), response.body()),
            (200, &b"home"[..])
        );
    }

    #[test]
    fn async_answers_after_its_wait() {
        let client = Client::new(app());
        assert_eq!(client.get("/async/?ms=250").body(), b"done");
        assert_eq!(client.elapsed(), Duration::from_millis(250));
        assert_eq!(client.post("/echo/", "x").body(), b"x");
    }

    #[test]
    fn async_waits_for_the_capped_timer() {
        let router = app();
        let req = Request::new("GET", "/async/").with_query("ms=90000");
        assert!(handle(router, 1, req).is_pending());
        assert!(handle(router, 2, Request::new("GET", "/async/")).is_pending());
        assert_eq!(timers(), [(1, MAX_WAIT_MS), (2, DEFAULT_WAIT_MS)]);
        assert_eq!(ready(resume_timer(1, 1)).body(), b"done");
    }

    #[test]
    fn async_rejects_a_bad_wait() {
        let req = Request::new("GET", "/async/").with_query("ms=soon");
        let response = ready(handle(app(), 1, req));
        assert_eq!(response.status_code(), 400);
        assert!(timers().is_empty());
    }

    #[test]
    fn echo_returns_body_and_type() {
        let router = app();
        let req = Request::new("POST", "/echo/")
            .with_header("Content-Type", "text/csv")
            .with_body(vec![0, 159, 146, 150]);
        let response = ready(handle(router, 1, req));
        assert_eq!(response.body(), [0, 159, 146, 150]);
        assert_eq!(response.header("content-type"), Some(&b"text/csv"[..]));
        let bare = ready(handle(router, 2, Request::new("POST", "/echo/")));
        assert_eq!(
            bare.header("content-type"),
            Some(&b"application/octet-stream"[..])
        );
    }

    #[test]
    fn others_are_404_or_405() {
        let router = app();
        let missing = ready(handle(router, 1, Request::new("GET", "/nope/")));
        assert_eq!(missing.status_code(), 404);
        let wrong = ready(handle(router, 2, Request::new("GET", "/echo/")));
        assert_eq!(wrong.status_code(), 405);
    }
}
