use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use snow_bench::keep_alive::KeepAlive;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::windows::{Outcome, Windows};

/// Everything the connections share.
pub struct Shared {
    pub addr: SocketAddr,
    pub request: Vec<u8>,
    /// Bodies the versions answer with; anything else is a failure.
    pub versions: Vec<String>,
    pub timeout: Duration,
    pub windows: Windows,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub stop: AtomicBool,
}

impl Shared {
    fn classify(&self, result: Result<snow_bench::response::Reply, String>) -> Outcome {
        let label = match result {
            Ok(reply) if reply.status == 200 => {
                match self
                    .versions
                    .iter()
                    .position(|v| v.as_bytes() == reply.body)
                {
                    Some(v) => return Outcome::Version(v),
                    None => "unexpected_body".to_string(),
                }
            }
            Ok(reply) => {
                self.count_error(&format!("status_{}", reply.status));
                return Outcome::Status;
            }
            Err(label) => label,
        };
        self.count_error(&label);
        Outcome::Failed
    }

    fn count_error(&self, label: &str) {
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(label.to_string()).or_default() += 1;
        }
    }
}

/// One keep-alive connection: a first request to open it, a report on
/// `ready`, then requests back to back from the moment `start` carries the
/// run's start until `stop` is set.
pub async fn hammer(
    shared: Arc<Shared>,
    ready: mpsc::UnboundedSender<bool>,
    mut start: watch::Receiver<Option<Instant>>,
) {
    let mut conn = KeepAlive::new(shared.addr, shared.timeout);
    let warm = conn.exchange(&shared.request).await;
    let _ = ready.send(matches!(&warm, Ok(reply) if reply.status == 200));
    drop(ready);
    // Copied out at once: the borrow holds the channel's lock.
    let started = match start.wait_for(Option::is_some).await {
        Ok(value) => *value,
        Err(_) => return,
    };
    let Some(started) = started else { return };
    while !shared.stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let result = conn.exchange(&shared.request).await;
        let done = Instant::now();
        let failed = result.is_err();
        let outcome = shared.classify(result);
        shared.windows.record(
            done.duration_since(started),
            done.duration_since(sent),
            outcome,
        );
        if failed {
            // A server that refuses connections would otherwise turn this
            // loop into a spin that takes the CPU the server needs.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
