//! A Snow route module: regex routes, each to a plain or `async fn`
//! handler. `snow dev` serves it and reloads it on every change.

use std::time::Duration;

use snow_guest::{kv, sleep, Error, Request, Response};

snow_guest::app!([
    (r"^/home/$", home),
    (r"^/wait/$", wait),
    (r"^/echo/$", echo, "POST"),
    (r"^/visits/$", visits, "POST"),
]);

fn home(_: Request) -> &'static str {
    "Hello from Snow!"
}

/// Answers after `?ms=` milliseconds (at most a minute). While it waits,
/// the request is parked in the host and the worker serves others.
async fn wait(req: Request) -> Result<String, Error> {
    let ms: u64 = match req.query_param("ms") {
        Some(raw) => raw
            .parse()
            .map_err(|_| Error::bad_request(format!("ms must be a whole number, got {raw:?}")))?,
        None => 1_000,
    };
    let ms = ms.min(60_000);
    sleep(Duration::from_millis(ms)).await;
    Ok(format!("waited {ms} ms"))
}

fn echo(req: Request) -> Response {
    Response::bytes(req.into_body())
}

/// Counts in the host's `default` store, which every worker, every new
/// version of this module and (with Redis) every host shares.
async fn visits(_: Request) -> Result<String, Error> {
    let store = kv::open("default")?;
    let n = store.increment("visits", 1).await?;
    Ok(format!("visit {n}"))
}

// Native unit tests: the route table runs in-process, timers on a virtual
// clock. The end-to-end test through `snow` is in tests/.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use std::time::Duration;

    use snow_guest::testing::Client;

    use super::app;

    #[test]
    fn home_answers() {
        let response = Client::new(app()).get("/home/");
        assert_eq!(response.status_code(), 200);
        assert_eq!(response.body(), b"Hello from Snow!");
    }

    #[test]
    fn wait_answers_after_its_wait() {
        let client = Client::new(app());
        assert_eq!(client.get("/wait/?ms=250").body(), b"waited 250 ms");
        assert_eq!(client.elapsed(), Duration::from_millis(250));
        assert_eq!(client.get("/wait/?ms=soon").status_code(), 400);
    }

    #[test]
    fn visits_count_in_the_store() {
        let client = Client::new(app());
        assert_eq!(client.post("/visits/", "").body(), b"visit 1");
        assert_eq!(client.post("/visits/", "").body(), b"visit 2");
        assert_eq!(
            snow_guest::testing::store("default").get("visits"),
            Some(&b"2".to_vec())
        );
    }

    #[test]
    fn echo_is_post_only() {
        let client = Client::new(app());
        assert_eq!(client.post("/echo/", "ping").body(), b"ping");
        assert_eq!(client.get("/echo/").status_code(), 405);
    }
}
