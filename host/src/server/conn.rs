//! One client connection of the public listener: read a request, call the
//! service, write the response, for as long as the connection stays open.

use std::rc::Rc;

use tokio::net::TcpStream;
use tokio::sync::watch;

use super::service::Service;
use crate::config::ServeConfig;
use crate::http::{Connection, Timeouts};

pub async fn serve(
    stream: TcpStream,
    service: Rc<Service>,
    config: &ServeConfig,
    shutdown: watch::Receiver<bool>,
) {
    let timeouts = Timeouts {
        idle: config.idle_timeout,
        header: config.header_timeout,
        send: config.send_timeout,
    };
    let mut conn = Connection::new(stream, config.http, timeouts).with_shutdown(shutdown);
    while let Some(request) = conn.read_request().await {
        let mut opts = request.response_options();
        let Some(response) = conn.answer(service.call(request)).await else {
            break;
        };
        // Decided after the handler: a shutdown may have begun meanwhile.
        opts.keep_alive = opts.keep_alive && !conn.shutting_down();
        conn.write(response, &opts);
        if !opts.keep_alive {
            break;
        }
    }
    conn.close().await;
}
