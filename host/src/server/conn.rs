//! One client connection of the public listener: read a request, call the
//! service, write the response, for as long as the connection stays open.
//! Bodies may stream both ways: a request's body is fed to its module
//! while it is answered, and a streamed response is sent as it comes.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use super::service::Service;
use crate::config::ServeConfig;
use crate::health::Health;
use crate::http::shutdown::Shutdown;
use crate::http::{Connection, Timeouts};

/// After an answer given before its request's body was read, how long
/// what the client still sends is read and dropped before closing.
const LINGER: Duration = Duration::from_secs(2);

pub async fn serve(
    stream: TcpStream,
    service: Arc<Service>,
    config: &ServeConfig,
    shutdown: &Shutdown,
    health: &Health,
) {
    let timeouts = Timeouts {
        idle: config.idle_timeout,
        header: config.header_timeout,
        send: config.send_timeout,
        stream_idle: config.stream_idle_timeout,
    };
    // The body limit depends on the module a request goes to, so it is
    // applied once the head is routed (`start_body`), not by the parser.
    let mut limits = config.http;
    limits.max_body = u64::MAX;
    let mut conn = Connection::new(stream, limits, timeouts).with_shutdown(shutdown);
    while let Some((head, received)) = conn.next_head().await {
        let routed = service.route(&head.path);
        let max_body = routed.max_body().unwrap_or(config.http.max_body);
        let Some(request) = conn.start_body(head, received, max_body).await else {
            // Refused (too long, badly framed) with its body still coming:
            // closing at once would reset the answer away.
            conn.close_lingering(LINGER).await;
            return;
        };
        let mut opts = request.response_options();
        // In a block of its own: the call's future then shares its place in
        // this task's state with the stream sent below, rather than taking
        // room beside it.
        let answered = {
            let call = pin!(service.call(request, routed));
            conn.answer(call).await
        };
        let Some(response) = answered else {
            break;
        };
        // Decided after the handler: a shutdown may have begun meanwhile.
        // While the host drains, every answer ends its connection, so that
        // a balancer reconnects (to another host, once this one is out)
        // rather than keep a connection this host will close under it.
        // A body left unread cannot be told from the next request.
        opts.keep_alive = opts.keep_alive
            && !conn.shutting_down()
            && !health.is_draining()
            && conn.body_finished();
        let keep_alive = match response.into_stream() {
            Ok((status, streamed)) => conn.send_stream(status, streamed, &opts).await,
            Err(response) => {
                conn.write(response, &opts);
                opts.keep_alive
            }
        };
        if !keep_alive {
            break;
        }
    }
    if conn.body_finished() {
        conn.close().await;
    } else {
        conn.close_lingering(LINGER).await;
    }
}
