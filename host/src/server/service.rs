//! The seam between a connection and the modules: one call takes a request
//! to the module mounted at its path and gives back the response to send,
//! counting the request while it runs and recording its status, latency and
//! access line. A request still running when the shutdown grace runs out is
//! cancelled and answered 503.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;

use super::mounts::{Handler, Mounts};
use crate::deploy::Mount;
use crate::http;
use crate::runtime::wit;

pub struct Service {
    mounts: Mounts,
    /// Turns true when the shutdown grace is over.
    grace_over: watch::Receiver<bool>,
}

impl Service {
    pub fn new(mounts: Mounts, grace_over: watch::Receiver<bool>) -> Self {
        Self { mounts, grace_over }
    }

    /// Where a request for `path` goes, read before its body: the module
    /// decides how long the body may be.
    pub fn route(&self, path: &str) -> Routed {
        Routed(self.mounts.route(path))
    }

    /// Answers `request`, which `routed` says where to take: the module's
    /// response or the server's own (404 when no module is mounted at its
    /// path, 5xx when the module fails).
    pub async fn call(&self, request: http::Request, routed: Routed) -> http::Response {
        let received = request.received;
        let Routed(routed) = routed;
        let prefix = routed
            .as_ref()
            .map_or("/", |(mount, _)| &mount.config.prefix);
        let http::Request {
            head, body, rest, ..
        } = request;
        let request = wit::request(&head, body, rest.is_none(), prefix);
        let response = match &routed {
            Some((mount, dispatcher)) => {
                let _in_flight = InFlight::enter(mount);
                // Most calls are answered at their first poll: the grace is
                // only waited on (its receiver cloned, a waiter queued) by
                // those that are not.
                let grace_over = async {
                    let mut grace_over = self.grace_over.clone();
                    grace_over.wait_for(|over| *over).await.map(|_| ())
                };
                tokio::select! {
                    biased;
                    response = dispatcher.call(&request, rest) => response,
                    // Dropping the call cancels the request in the module.
                    _ = grace_over => {
                        http::Response::plain(503, "the server is shutting down")
                    }
                }
            }
            None => http::Response::plain(404, "no module is mounted at this path"),
        };
        let status = response.status();
        let elapsed = received.elapsed();
        let module = match &routed {
            Some((_, dispatcher)) => {
                dispatcher.stats().request(status, elapsed);
                &**dispatcher.module_name()
            }
            None => "-",
        };
        crate::logging::access(
            &head.method,
            &head.path,
            status,
            elapsed.as_micros() as u64,
            module,
        );
        response
    }
}

/// The mount and dispatcher a request goes to, if any.
pub struct Routed(Option<(Arc<Mount>, Handler)>);

impl Routed {
    /// The module's own body limit, if it has one.
    pub fn max_body(&self) -> Option<u64> {
        self.0
            .as_ref()
            .and_then(|(mount, _)| mount.config.limits.max_body)
    }
}

/// Counts a request against its module version while it runs, so
/// `GET /modules` shows what an old version still has to finish.
struct InFlight<'a>(&'a Mount);

impl<'a> InFlight<'a> {
    fn enter(mount: &'a Mount) -> Self {
        mount.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(mount)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
