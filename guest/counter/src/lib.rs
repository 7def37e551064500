//! Counters and a byte store on the host's `default` store: state that every
//! worker, every version of the module and (with Redis) every host shares.
//!
//! - `POST /counter/NAME/incr` adds one and answers the new value;
//! - `GET /counter/NAME` answers the value, 0 when unset;
//! - `PUT /kv/KEY` stores the body, `GET /kv/KEY` returns it (404 when
//!   unset), `DELETE /kv/KEY` removes it.

use snow_guest::{kv, Error, Request, Response};

snow_guest::app!([
    (r"^/counter/([^/]+)/incr$", incr, "POST"),
    (r"^/counter/([^/]+)$", value, "GET"),
    (r"^/kv/(.+)$", put, "PUT"),
    (r"^/kv/(.+)$", get, "GET"),
    (r"^/kv/(.+)$", delete, "DELETE"),
]);

const STORE: &str = "default";

fn store() -> Result<kv::Store, Error> {
    Ok(kv::open(STORE)?)
}

/// The route's capture, as the key within its namespace.
fn key(req: &Request, namespace: &str) -> Result<String, Error> {
    let name = req
        .group(1)
        .ok_or_else(|| Error::bad_request("no key in the path"))?;
    Ok(format!("{namespace}:{name}"))
}

async fn incr(req: Request) -> Result<String, Error> {
    let key = key(&req, "counter")?;
    Ok(store()?.increment(&key, 1).await?.to_string())
}

async fn value(req: Request) -> Result<String, Error> {
    let key = key(&req, "counter")?;
    let value = store()?.get(&key).await?;
    let text = match value {
        Some(bytes) => String::from_utf8(bytes)
            .map_err(|_| Error::new(500, "the counter holds something else"))?,
        None => "0".to_owned(),
    };
    Ok(text)
}

async fn put(req: Request) -> Result<Response, Error> {
    let key = key(&req, "kv")?;
    store()?.set(&key, req.into_body()).await?;
    Ok(Response::text("stored").with_status(201))
}

async fn get(req: Request) -> Result<Response, Error> {
    let key = key(&req, "kv")?;
    match store()?.get(&key).await? {
        Some(bytes) => Ok(Response::bytes(bytes)),
        None => Err(Error::new(404, "no such key")),
    }
}

async fn delete(req: Request) -> Result<Response, Error> {
    let key = key(&req, "kv")?;
    store()?.delete(&key).await?;
    Ok(Response::text("deleted"))
}

// Native only: they run against the SDK's fake host and its stores.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use snow_guest::kv::KvError;
    use snow_guest::testing::{self, Client};

    use super::*;

    #[test]
    fn counters_count_from_zero() {
        let client = Client::new(app());
        assert_eq!(client.get("/counter/a").body(), b"0");
        assert_eq!(client.post("/counter/a/incr", "").body(), b"1");
        assert_eq!(client.post("/counter/a/incr", "").body(), b"2");
        assert_eq!(client.post("/counter/b/incr", "").body(), b"1");
        assert_eq!(client.get("/counter/a").body(), b"2");
        assert_eq!(
            testing::store("default")
                .get("counter:a")
                .map(Vec::as_slice),
            Some(&b"2"[..])
        );
    }

    #[test]
    fn values_round_trip_and_missing_ones_are_404() {
        let client = Client::new(app());
        assert_eq!(client.get("/kv/x").status_code(), 404);
        let put = client.send(Request::new("PUT", "/kv/x").with_body(vec![0, 255, 7]));
        assert_eq!(put.status_code(), 201);
        let got = client.get("/kv/x");
        assert_eq!((got.status_code(), got.body()), (200, &[0, 255, 7][..]));
        assert_eq!(
            client.send(Request::new("DELETE", "/kv/x")).status_code(),
            200
        );
        assert_eq!(client.get("/kv/x").status_code(), 404);
    }

    #[test]
    fn store_failures_become_statuses() {
        let client = Client::new(app());
        testing::fail_store("default", Some(KvError::Unavailable("down".into())));
        assert_eq!(client.post("/counter/a/incr", "").status_code(), 503);
        testing::fail_store("default", None);
        testing::seed_store("default", "counter:t", "text");
        assert_eq!(client.post("/counter/t/incr", "").status_code(), 500);
        testing::deny_store("default");
        assert_eq!(client.get("/counter/a").status_code(), 500);
    }
}
