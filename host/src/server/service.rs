//! The seam between a connection and the modules: one call takes a request
//! to the module mounted at its path and gives back the response to send,
//! counting the request while it runs and recording its status, latency and
//! access line. A request still running when the shutdown grace runs out is
//! cancelled and answered 503.

use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::mounts::WorkerMounts;
use crate::deploy::Mount;
use crate::http;
use crate::runtime::wit;

pub struct Service {
    mounts: WorkerMounts,
    /// Turns true when the shutdown grace is over.
    grace_over: watch::Receiver<bool>,
}

impl Service {
    pub fn new(mounts: WorkerMounts, grace_over: watch::Receiver<bool>) -> Self {
        Self { mounts, grace_over }
    }

    /// The body limit of the module `path` goes to, if it has its own.
    pub fn max_body(&self, path: &str) -> Option<u64> {
        self.mounts.max_body(path)
    }

    /// Answers `request`: the module's response or the server's own (404
    /// when no module is mounted at its path, 5xx when the module fails).
    pub async fn call(&self, request: http::Request) -> http::Response {
        let received = request.received;
        let routed = self.mounts.route(&request.head.path);
        let prefix = routed
            .as_ref()
            .map_or("/", |(mount, _)| &mount.config.prefix);
        let (request, rest) = wit::request(request, prefix);
        let response = match &routed {
            Some((mount, dispatcher)) => {
                let _in_flight = InFlight::enter(mount);
                let mut grace_over = self.grace_over.clone();
                tokio::select! {
                    response = dispatcher.call(&request, rest) => response,
                    // Dropping the call cancels the request in the module.
                    _ = grace_over.wait_for(|over| *over) => {
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
            &request.method,
            &request.full_path,
            status,
            elapsed.as_micros() as u64,
            module,
        );
        response
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
