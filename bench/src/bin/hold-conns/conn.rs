use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use snow_bench::response::{self, Progress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Bytes sent one at a time by a dripping connection. Each pass adds one
/// complete header line, so the head stays valid and never ends.
const DRIP: &[u8] = b"x-drip: 1\r\n";

/// Far beyond the few hundred bytes of a /home/ response; stops a misbehaving
/// server from growing the client without bound.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Sent part of a request head and then nothing (or a byte now and then).
    Stalled,
    /// Completed one request on a keep-alive connection and then went quiet.
    Idle,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Stalled => "stalled",
            Kind::Idle => "idle",
        }
    }
}

/// How one connection ended up. `Err` carries a short label for what went
/// wrong, prefixed with the kind so the summary keeps them apart.
pub type Outcome = Result<(), String>;

pub struct Plan {
    pub addr: SocketAddr,
    /// Partial head for stalled connections.
    pub partial: Vec<u8>,
    /// Complete keep-alive GET for idle connections.
    pub request: Vec<u8>,
    pub drip: Option<Duration>,
    pub setup_deadline: Instant,
}

/// Opens one connection of `kind`, reports on `settled` whether it got into
/// its held state, then keeps it there until `end` flips. The outcome says
/// whether the connection was still open at that moment.
pub async fn hold(
    plan: &Plan,
    kind: Kind,
    settled: mpsc::UnboundedSender<(Kind, bool)>,
    mut end: watch::Receiver<bool>,
) -> Outcome {
    let setup = tokio::time::timeout_at(plan.setup_deadline, set_up(plan, kind)).await;
    let mut stream = match setup {
        Ok(Ok(stream)) => {
            settle(settled, kind, true);
            stream
        }
        Ok(Err(label)) => {
            settle(settled, kind, false);
            return Err(format!("{}_{label}", kind.name()));
        }
        Err(_) => {
            settle(settled, kind, false);
            return Err(format!("{}_setup_timeout", kind.name()));
        }
    };

    let mut drip = match (kind, plan.drip) {
        (Kind::Stalled, Some(every)) => {
            let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
            // A late tick must not turn into a burst that finishes the head.
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            Some(ticks)
        }
        _ => None,
    };
    let mut dripped = 0usize;
    let mut buf = Vec::with_capacity(256);
    loop {
        tokio::select! {
            _ = end.changed() => return Ok(()),
            read = stream.read_buf(&mut buf) => {
                // Anything the server does on a held connection, whether a
                // 408, a close or a reset, means it stopped holding it.
                return Err(format!("{}_{}", kind.name(), ended_by_server(read, &buf)));
            }
            () = next_tick(&mut drip) => {
                let byte = DRIP[dripped % DRIP.len()];
                dripped += 1;
                if let Err(err) = stream.write_all(&[byte]).await {
                    return Err(format!("{}_{}", kind.name(), label("drip", &err)));
                }
            }
        }
    }
}

/// Reports once whether the connection got into its held state; the sender
/// is dropped with it, so the receiver ends once every connection reported.
fn settle(settled: mpsc::UnboundedSender<(Kind, bool)>, kind: Kind, in_place: bool) {
    let _ = settled.send((kind, in_place));
}

async fn set_up(plan: &Plan, kind: Kind) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(plan.addr)
        .await
        .map_err(|e| label("connect", &e))?;
    let bytes = match kind {
        Kind::Stalled => &plan.partial,
        Kind::Idle => &plan.request,
    };
    stream
        .write_all(bytes)
        .await
        .map_err(|e| label("write", &e))?;
    if kind == Kind::Idle {
        read_response(&mut stream).await?;
    }
    Ok(stream)
}

/// Reads the one response an idle connection asked for; it must be a 200
/// that leaves the connection open.
async fn read_response(stream: &mut TcpStream) -> Result<(), String> {
    let mut buf = Vec::with_capacity(256);
    loop {
        let read = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| label("read", &e))?;
        match response::parse(&buf, read == 0)? {
            Progress::Complete(reply) if reply.status == 200 => return Ok(()),
            Progress::Complete(reply) => return Err(format!("status_{}", reply.status)),
            Progress::Incomplete if buf.len() > MAX_RESPONSE_BYTES => {
                return Err("response_too_large".into())
            }
            Progress::Incomplete => {}
        }
    }
}

/// Names what the server did to a held connection.
fn ended_by_server(read: io::Result<usize>, buf: &[u8]) -> String {
    match read {
        Ok(0) => "closed".into(),
        Err(err) => label("read", &err),
        // Only the status line matters here; a partial one still says enough.
        Ok(_) => match response::parse(buf, false) {
            Ok(Progress::Complete(reply)) => format!("answered_{}", reply.status),
            _ => "answered".into(),
        },
    }
}

async fn next_tick(ticks: &mut Option<Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn label(stage: &str, err: &io::Error) -> String {
    format!("{stage}_{:?}", err.kind())
}
