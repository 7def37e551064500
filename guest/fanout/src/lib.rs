//! Outbound HTTP from a route module: `/fanout/` fetches many URLs at once
//! and reports how each went, `/proxy/` relays one URL's answer (the proxy
//! benchmark's target), and `/health/` answers without touching the network.
//!
//! The host only lets requests out to destinations on the module's
//! allow-list; others come back as `denied` entries or a 502.

use std::time::{Duration, Instant};

use serde::Serialize;
use snow_guest::{
    fetch, join_all, race, sleep, streaming, Either, Error, FetchError, FetchRequest, Request,
    Response,
};

snow_guest::app!([
    (r"^/fanout/$", fanout),
    (
        r"^/proxy/$",
        streaming(proxy),
        ["GET", "HEAD", "POST", "PUT"]
    ),
    (r"^/health/$", health),
]);

/// Bounds the work one client request can make the host do.
const MAX_URLS: usize = 256;
/// Caps `timeout_ms`, so a query cannot hold upstream connections open for
/// longer than a minute.
const MAX_TIMEOUT_MS: u64 = 60_000;

/// The `/fanout/` answer.
#[derive(Debug, Serialize)]
struct Report {
    /// One entry per `url` parameter, in the order given.
    results: Vec<Probe>,
    total_ms: u64,
}

/// How one URL went; untagged so an entry is told apart by its fields
/// (`status` or `error`).
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Probe {
    Fetched {
        url: String,
        status: u16,
        ms: u64,
        /// Length of the response body.
        bytes: usize,
    },
    Failed {
        url: String,
        /// The `fetch-error` case: `timeout`, `dns`, `denied`...
        error: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        ms: u64,
    },
}

/// `GET /fanout/?url=A&url=B...[&timeout_ms=N]`: fetches every URL
/// concurrently, each against its own `timeout_ms` deadline when given, and
/// answers 200 with every outcome, failures included.
async fn fanout(req: Request) -> Result<Response, Error> {
    let urls = req.query_param_all("url");
    if urls.is_empty() {
        return Err(Error::bad_request("give at least one url parameter"));
    }
    if urls.len() > MAX_URLS {
        return Err(Error::bad_request(format!(
            "at most {MAX_URLS} url parameters, got {}",
            urls.len()
        )));
    }
    let deadline = timeout(&req)?;
    let started = Instant::now();
    let probes = urls.into_iter().map(|url| probe(url, deadline)).collect();
    let results = join_all(probes).await;
    Ok(Response::json(&Report {
        results,
        total_ms: millis(started.elapsed()),
    }))
}

/// One fetch, raced against `deadline` when there is one. The guest keeps
/// the deadline itself (rather than the request's timeout field) so that it
/// bounds exactly what the report measures; the losing fetch is dropped,
/// which tells the host to abandon it.
async fn probe(url: String, deadline: Option<Duration>) -> Probe {
    let started = Instant::now();
    let request = FetchRequest::get(url.as_str());
    let outcome = match deadline {
        Some(limit) => match race(fetch(request), sleep(limit)).await {
            Either::Left(outcome) => outcome,
            Either::Right(()) => Err(FetchError::Timeout),
        },
        None => fetch(request).await,
    };
    let ms = millis(started.elapsed());
    match outcome {
        Ok(response) => Probe::Fetched {
            url,
            status: response.status_code(),
            ms,
            bytes: response.body().len(),
        },
        Err(err) => Probe::Failed {
            url,
            error: err.kind(),
            detail: err.detail().map(str::to_owned),
            ms,
        },
    }
}

/// `GET /proxy/?url=U[&timeout_ms=N]` (or HEAD, POST, PUT, the request's
/// body forwarded as it arrives): answers with U's answer, relayed by the
/// host: its status, fields and body, upstream to client at the client's
/// pace, one call into the module per request. A failed fetch answers 502
/// (504 when it timed out); the host enforces the timeout (up to the
/// head), through the request's own field.
fn proxy(mut req: Request) -> Result<Response, Error> {
    let url = req
        .query_param("url")
        .ok_or_else(|| Error::bad_request("give a url parameter"))?
        .to_owned();
    let mut request = FetchRequest::new(req.method().to_owned(), url);
    if let Some(content_type) = req.header("content-type") {
        request = request.header("content-type", content_type.to_vec());
    }
    // An upload goes on as it arrives, at the pace the upstream takes it.
    request = request.forward_body_of(&mut req);
    if let Some(limit) = timeout(&req)? {
        request = request.timeout(limit);
    }
    Ok(Response::relay(request))
}

fn health(_: Request) -> &'static str {
    "ok"
}

/// The optional `timeout_ms` parameter: a whole number of milliseconds, at
/// least 1 (a zero deadline could never succeed), capped at
/// `MAX_TIMEOUT_MS`.
fn timeout(req: &Request) -> Result<Option<Duration>, Error> {
    let Some(raw) = req.query_param("timeout_ms") else {
        return Ok(None);
    };
    let ms: u64 = raw.parse().map_err(|_| {
        Error::bad_request(format!("timeout_ms must be a whole number, got {raw:?}"))
    })?;
    if ms == 0 {
        return Err(Error::bad_request("timeout_ms must be at least 1"));
    }
    Ok(Some(Duration::from_millis(ms.min(MAX_TIMEOUT_MS))))
}

fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

// Native only: they run against the SDK's fake host.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use serde_json::Value;
    use snow_guest::testing::{
        fetches, forgotten, handle, ready, resume_fetch, resume_timer, timers, Client,
    };

    use super::*;

    fn get(path: &str, query: &str) -> Request {
        Request::new("GET", path).with_query(query)
    }

    fn json(response: &Response) -> Value {
        assert_eq!(response.status_code(), 200);
        assert_eq!(
            response.header("content-type"),
            Some(&b"application/json"[..])
        );
        serde_json::from_slice(response.body()).expect("JSON body")
    }

    fn sent_urls() -> Vec<(u64, String)> {
        fetches()
            .into_iter()
            .map(|(op, req)| (op, req.url))
            .collect()
    }

    #[test]
    fn fanout_fetches_every_url_at_once() {
        let router = __SnowModule::router();
        let query =
            "url=http://a.test/&url=http%3A%2F%2Fb.test%2F%3Fq%3D1%26r%3D2&url=http://c.test/";
        assert!(handle(router, 1, get("/fanout/", query)).is_pending());
        assert_eq!(
            sent_urls(),
            [
                (1, "http://a.test/".to_owned()),
                (2, "http://b.test/?q=1&r=2".to_owned()),
                (3, "http://c.test/".to_owned()),
            ]
        );
        let (_, first) = &fetches()[0];
        assert_eq!(
            (
                first.method.as_str(),
                first.timeout_ms,
                first.follow_redirects
            ),
            ("GET", 0, true)
        );
        assert!(timers().is_empty());

        let denied = resume_fetch(1, 2, Err(FetchError::Denied));
        assert!(denied.is_pending());
        let dns = resume_fetch(1, 3, Err(FetchError::Dns("no such host".into())));
        assert!(dns.is_pending());
        let body = json(&ready(resume_fetch(
            1,
            1,
            Ok(Response::text("hello").with_status(201)),
        )));

        let results = body["results"].as_array().expect("results");
        assert_eq!(results.len(), 3);
        assert_eq!(results[0]["url"], "http://a.test/");
        assert_eq!(
            (&results[0]["status"], &results[0]["bytes"]),
            (&201.into(), &5.into())
        );
        assert!(results[0]["ms"].is_u64());
        assert_eq!(results[1]["error"], "denied");
        assert!(results[1].get("detail").is_none());
        assert_eq!(results[2]["url"], "http://c.test/");
        assert_eq!(
            (&results[2]["error"], &results[2]["detail"]),
            (&"dns".into(), &"no such host".into())
        );
        assert!(body["total_ms"].is_u64());
        assert!(forgotten().is_empty());
    }

    #[test]
    fn fanout_timeouts_race_each_fetch() {
        let router = __SnowModule::router();
        let query = "url=http://fast.test/&url=http://slow.test/&timeout_ms=100";
        assert!(handle(router, 1, get("/fanout/", query)).is_pending());
        // Each probe starts its fetch, then its deadline.
        assert_eq!(
            sent_urls(),
            [
                (1, "http://fast.test/".to_owned()),
                (3, "http://slow.test/".to_owned())
            ]
        );
        assert_eq!(timers(), [(2, 100), (4, 100)]);

        assert!(resume_fetch(1, 1, Ok(Response::bytes(vec![0; 345]))).is_pending());
        assert_eq!(forgotten(), [2]);
        let body = json(&ready(resume_timer(1, 4)));
        assert_eq!(forgotten(), [2, 3]);

        let results = body["results"].as_array().expect("results");
        assert_eq!(
            (&results[0]["status"], &results[0]["bytes"]),
            (&200.into(), &345.into())
        );
        assert_eq!(results[1]["url"], "http://slow.test/");
        assert_eq!(results[1]["error"], "timeout");
    }

    #[test]
    fn fanout_caps_the_timeout() {
        let query = "url=http://a.test/&timeout_ms=999999";
        assert!(handle(__SnowModule::router(), 1, get("/fanout/", query)).is_pending());
        assert_eq!(timers(), [(2, MAX_TIMEOUT_MS)]);
    }

    #[test]
    fn fanout_rejects_bad_queries_before_fetching() {
        let router = __SnowModule::router();
        let too_many = vec!["url=http://a.test/"; MAX_URLS + 1].join("&");
        let bad = [
            "",
            "urls=http://a.test/",
            too_many.as_str(),
            "url=http://a.test/&timeout_ms=soon",
            "url=http://a.test/&timeout_ms=-1",
            "url=http://a.test/&timeout_ms=0",
        ];
        for (id, query) in (1..).zip(bad) {
            let response = ready(handle(router, id, get("/fanout/", query)));
            assert_eq!(response.status_code(), 400, "query {query:?}");
        }
        assert!(fetches().is_empty());
    }

    #[test]
    fn proxy_relays_the_request_in_one_call() {
        let router = __SnowModule::router();
        let query = "url=http://origin.test/page&timeout_ms=250";
        let post = Request::new("POST", "/proxy/")
            .with_query(query)
            .with_header("content-type", "text/csv")
            .with_body("payload");
        let response = ready(handle(router, 1, post));
        let sent = response.relayed_request().expect("a relay");
        assert_eq!(
            (sent.url.as_str(), sent.timeout_ms, sent.body.as_slice()),
            ("http://origin.test/page", 250, &b"payload"[..])
        );
        assert_eq!(sent.header("content-type"), Some(&b"text/csv"[..]));
        assert!(fetches().is_empty() && timers().is_empty());
    }

    #[test]
    fn proxy_passes_the_upstreams_answer_on() {
        let client =
            Client::new(__SnowModule::router()).with_upstream(|req| match req.url.as_str() {
                "http://origin.test/gone" => Ok(Response::text("gone")
                    .with_status(410)
                    .with_header("x-upstream", "1")
                    .with_header("connection", "close")),
                "http://down.test/" => Err(FetchError::Connect("refused".into())),
                _ => Err(FetchError::Timeout),
            });
        let gone = client.get("/proxy/?url=http://origin.test/gone");
        assert_eq!((gone.status_code(), gone.body()), (410, &b"gone"[..]));
        assert_eq!(gone.header("x-upstream"), Some(&b"1"[..]));
        assert_eq!(gone.header("connection"), None);
        assert_eq!(
            client.get("/proxy/?url=http://down.test/").status_code(),
            502
        );
        assert_eq!(
            client.get("/proxy/?url=http://slow.test/").status_code(),
            504
        );
        assert_eq!(client.get("/proxy/").status_code(), 400);
    }

    #[test]
    fn health_answers_without_fetching() {
        let router = __SnowModule::router();
        let response = ready(handle(router, 1, Request::new("GET", "/health/")));
        assert_eq!((response.status_code(), response.body()), (200, &b"ok"[..]));
        let post = ready(handle(router, 2, Request::new("POST", "/health/")));
        assert_eq!(post.status_code(), 405);
        assert!(fetches().is_empty());
    }
}
