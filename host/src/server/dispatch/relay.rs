//! `outbound.relay`: a request answered with an upstream's response by
//! the host alone. The module's part ends with the call that relayed; the
//! exchange then runs in the client's connection task, under the
//! request's deadline until the upstream's head is in, and the body
//! streams from the upstream's connection to the client's, never through
//! the module.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Dispatcher, Reply, Slot};
use crate::http::response::TEXT_PLAIN;
use crate::http::{self, BodyIn, Outflow, HOP_BY_HOP};
use crate::outbound::{self, FetchResponse};
use crate::runtime::bindings::{FetchError, OutgoingRequest, RequestId};
use crate::runtime::state::Relay;
use crate::runtime::Instance;

/// A relay the module asked for, checked, for the connection's task to
/// run: the fetch is awaited where the client's answer is, with no task,
/// channel or wake-up of its own.
#[derive(Debug)]
pub(super) struct Relaying {
    req: OutgoingRequest,
    /// The fields set over the upstream's.
    overrides: Vec<(String, Vec<u8>)>,
    /// The rest of the request body, for a relay that forwards it.
    upload: Option<BodyIn>,
}

impl Relaying {
    /// Sends `rest`, the part of the request body still to come, upstream
    /// after the relay's body, when the relay asked for it.
    pub(super) fn forward(&mut self, rest: Option<BodyIn>) {
        if self.req.forward_body {
            self.upload = rest;
        }
    }
}

impl Dispatcher {
    /// Checks what a call that relayed returned: `finished`, with no
    /// stream open, and headers that are fields. The module is done with
    /// the request either way: what it broke is answered 500, and its
    /// task, if it kept one, is dropped.
    pub(super) fn check_relay(
        self: &Arc<Self>,
        slot: &mut Slot,
        at: usize,
        id: RequestId,
        finished: bool,
        relay: Result<Box<Relay>, &'static str>,
        own: Option<Instance>,
    ) -> Result<Relaying, &'static str> {
        let streaming = slot.parked.get(&id).is_some_and(|e| e.stream.is_some());
        let checked = match relay {
            _ if streaming => Err("relayed after a streamed head"),
            Ok(_) if !finished => Err("relayed, and then answered as well"),
            Ok(relay) => match http::fields::decode(&relay.headers) {
                Ok(overrides) => Ok(Relaying {
                    req: relay.req,
                    overrides,
                    upload: None,
                }),
                Err(err) => {
                    tracing::error!(module = %self.module.name, "relay headers: {err}");
                    Err("relayed with headers that are not fields")
                }
            },
            Err(why) => Err(why),
        };
        match checked {
            // Its instance, if it had one of its own, goes now.
            Ok(_) => drop(own),
            Err(_) => self.cancel_in(slot, at, id, own),
        }
        checked
    }

    /// Ends the parked request `id` with the relay its `resume` asked for,
    /// or with why it could not be.
    pub(super) fn relay_parked(
        self: &Arc<Self>,
        slot: &mut Slot,
        id: RequestId,
        checked: Result<Relaying, &'static str>,
    ) {
        let Some(mut entry) = slot.parked.remove(&id) else {
            return;
        };
        self.stats.parked(-1);
        entry.abort_ops();
        let reply = match checked {
            Ok(mut relaying) => match entry.body.take_upload(relaying.req.forward_body) {
                Ok(upload) => {
                    relaying.upload = upload;
                    Reply::Relay(Box::new(relaying))
                }
                Err(busy) => failed(&FetchError::Invalid(busy.to_owned())),
            },
            Err(why) => {
                if entry.reply.is_none() {
                    // No reply to carry the reason: the head is out.
                    tracing::error!(
                        module = %self.module.name,
                        "module broke the contract: {why}; its stream is cut off"
                    );
                }
                Reply::Broken(why)
            }
        };
        entry.reply(reply);
    }

    /// Runs a relay: the upstream's answer, or 502 or 504. `deadline` is
    /// the request's: it bounds the wait for the upstream's head.
    pub(super) async fn relay(&self, relaying: Relaying, deadline: Instant) -> http::Response {
        let Relaying {
            mut req,
            overrides,
            upload,
        } = relaying;
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        // The fetch's own timer carries the deadline: one timer, not two.
        let own = match req.timeout_ms {
            0 => self.client.response_timeout(),
            ms => std::time::Duration::from_millis(u64::from(ms)),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let limit = own.min(left).as_millis().clamp(1, u128::from(u32::MAX));
        req.timeout_ms = u32::try_from(limit).unwrap_or(u32::MAX);
        let module = &self.module.name;
        let fetched =
            super::super::fetch_op::run_head(&self.client, &self.allow, module, req, upload);
        let reply = match fetched.await {
            Ok(fetched) => {
                answer(fetched, overrides, head_only, self.stream_idle).unwrap_or_else(|err| {
                    tracing::warn!(%module, "the relayed response cannot be sent: {err}");
                    failed(&FetchError::Protocol(err.to_string()))
                })
            }
            Err(err) => failed(&err),
        };
        self.respond(reply)
    }
}

/// The client's response: the upstream's status and end-to-end fields,
/// `overrides` over them, and its body, whole or streamed on.
fn answer(
    fetched: outbound::Fetched,
    overrides: Vec<(String, Vec<u8>)>,
    head_only: bool,
    idle: std::time::Duration,
) -> Result<Reply, http::ResponseError> {
    match fetched {
        // A HEAD's upstream announces the length a GET would have; only a
        // streamed head carries a length other than its body's.
        outbound::Fetched::Whole(resp) if head_only => {
            let (status, headers) = (resp.status, end_to_end(resp, overrides));
            let (end, body) = http::BodyOut::channel();
            let _ = end.try_send(Outflow::End);
            let resp = http::Response::streamed(status, headers, Vec::new(), body)?;
            Ok(Reply::Relayed(resp))
        }
        outbound::Fetched::Whole(mut resp) => {
            let body = std::mem::take(&mut resp.body);
            let status = resp.status;
            let resp = http::Response::new(status, end_to_end(resp, overrides), body)?;
            Ok(Reply::Relayed(resp))
        }
        outbound::Fetched::Head(resp, body) => {
            let (status, headers) = (resp.status, end_to_end(resp, overrides));
            let (to_client, out) = http::BodyOut::channel();
            let resp = http::Response::streamed(status, headers, Vec::new(), out)?;
            tokio::spawn(pipe(BodyIn::upstream(body.into_stream(), idle), to_client));
            Ok(Reply::Relayed(resp))
        }
    }
}

/// Sends the upstream's body on until its end; one that breaks off ends
/// the client's response without its end, which cuts it off.
async fn pipe(mut body: BodyIn, to_client: mpsc::Sender<Outflow>) {
    loop {
        let step = match body.read(0).await {
            Ok(Some(chunk)) => Outflow::Data(chunk),
            Ok(None) => Outflow::End,
            Err(err) => {
                tracing::warn!("a relayed body broke off: {err}; the response is cut off");
                return;
            }
        };
        let end = matches!(step, Outflow::End);
        // A failed send: the client left, and the connection said so.
        if to_client.send(step).await.is_err() || end {
            return;
        }
    }
}

/// The upstream's fields without those of its connection, and with
/// `overrides` replacing the fields of their names.
fn end_to_end(resp: FetchResponse, overrides: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    let mut headers = resp.headers;
    let named: Vec<String> = headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, value)| {
            String::from_utf8_lossy(value)
                .split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    headers.retain(|(name, _)| {
        !HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
            && !named.iter().any(|n| name.eq_ignore_ascii_case(n))
            && !overrides.iter().any(|(o, _)| name.eq_ignore_ascii_case(o))
    });
    headers.extend(overrides);
    headers
}

/// A relay that failed: 504 when the upstream took too long, else 502,
/// with the reason.
fn failed(err: &FetchError) -> Reply {
    let (status, reason) = match err {
        FetchError::Timeout => (504, "the upstream did not answer in time".to_owned()),
        FetchError::Dns(m) => (502, format!("name resolution failed: {m}")),
        FetchError::Connect(m) => (502, format!("connection failed: {m}")),
        FetchError::Tls(m) => (502, format!("TLS failed: {m}")),
        FetchError::Protocol(m) => (502, format!("the upstream broke the protocol: {m}")),
        FetchError::TooLarge => (502, "the upstream's response head is too large".to_owned()),
        FetchError::Denied => (
            502,
            "the destination is not on the module's allow-list".to_owned(),
        ),
        FetchError::Invalid(m) => (502, format!("the request could not be used: {m}")),
    };
    let text = format!("upstream request failed: {reason}\n").into_bytes();
    let plain = vec![("content-type".to_owned(), TEXT_PLAIN.to_vec())];
    match http::Response::new(status, plain, text) {
        Ok(resp) => Reply::Relayed(resp),
        Err(_) => Reply::Broken("relayed a fetch that failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn the_upstreams_connection_fields_stay_behind_and_overrides_win() {
        let resp = FetchResponse {
            status: 200,
            headers: fields(&[
                ("content-type", "text/plain"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "secret"),
                ("keep-alive", "timeout=5"),
                ("upgrade", "h2c"),
                ("te", "trailers"),
                ("trailer", "x-sum"),
                ("proxy-connection", "close"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("cache-control", "private"),
            ]),
            body: Vec::new(),
        };
        let overrides = fields(&[("Cache-Control", "no-store"), ("x-via", "snow")]);
        assert_eq!(
            end_to_end(resp, overrides),
            fields(&[
                ("content-type", "text/plain"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
                ("Cache-Control", "no-store"),
                ("x-via", "snow"),
            ])
        );
    }

    #[test]
    fn a_failed_relay_answers_502_or_504_with_the_reason() {
        for (err, status, text) in [
            (FetchError::Timeout, 504, "did not answer in time"),
            (FetchError::Denied, 502, "allow-list"),
            (FetchError::Connect("refused".into()), 502, "refused"),
        ] {
            let Reply::Relayed(resp) = failed(&err) else {
                panic!("{err:?}: not an answer");
            };
            assert_eq!(resp.status(), status, "{err:?}");
            let mut out = Vec::new();
            let opts = http::ResponseOptions {
                head_request: false,
                keep_alive: true,
                version: http::Version::Http11,
            };
            resp.write(&mut out, &opts);
            let out = String::from_utf8_lossy(&out);
            assert!(out.contains(text), "{err:?}: {out}");
            assert!(out.contains("upstream request failed: "), "{out}");
        }
    }

    #[test]
    fn an_upstream_status_the_server_cannot_send_is_refused() {
        let resp = FetchResponse {
            status: 101,
            headers: fields(&[("upgrade", "websocket")]),
            body: Vec::new(),
        };
        let fetched = outbound::Fetched::Whole(resp);
        let idle = std::time::Duration::from_secs(1);
        assert!(answer(fetched, Vec::new(), false, idle).is_err());
    }
}
