//! The connection over an in-memory pipe: what a client sees.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;

const LONG: Duration = Duration::from_secs(30);
/// Generous bound for anything the server should do at once.
const PROMPT: Duration = Duration::from_secs(5);

fn timeouts(header: Duration) -> Timeouts {
    Timeouts {
        idle: LONG,
        header,
        send: LONG,
        stream_idle: LONG,
    }
}

/// Serves `conn` the way the public listener does, answering each request
/// with its path and body; `/slow` answers only after a while.
async fn serve(mut conn: Connection<DuplexStream>) {
    while let Some(request) = conn.read_request().await {
        let mut opts = request.response_options();
        let answer = async {
            if request.head.path == "/slow" {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut body = request.head.path.clone().into_bytes();
            body.extend_from_slice(&request.body);
            Response::new(200, Vec::new(), body).unwrap()
        };
        let Some(response) = conn.answer(std::pin::pin!(answer)).await else {
            break;
        };
        opts.keep_alive = opts.keep_alive && !conn.shutting_down();
        conn.write(response, &opts);
        if !opts.keep_alive {
            break;
        }
    }
    conn.close().await;
}

fn start(timeouts: Timeouts) -> DuplexStream {
    let (client, server) = duplex(64 * 1024);
    tokio::spawn(serve(Connection::new(server, Limits::default(), timeouts)));
    client
}

/// Reads one response: status, lower-cased head and body.
async fn response(client: &mut DuplexStream, buf: &mut Vec<u8>) -> (u16, String, Vec<u8>) {
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(buf[..end].to_vec())
                    .unwrap()
                    .to_ascii_lowercase();
                let status = head[9..12].parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.parse().unwrap());
                while buf.len() < end + 4 + length {
                    assert_ne!(client.read_buf(buf).await.unwrap(), 0, "early close");
                }
                let body = buf[end + 4..end + 4 + length].to_vec();
                buf.drain(..end + 4 + length);
                return (status, head, body);
            }
            assert_ne!(client.read_buf(buf).await.unwrap(), 0, "early close");
        }
    };
    tokio::time::timeout(PROMPT, read)
        .await
        .expect("a response")
}

/// Whether the server closed its end, with nothing more sent.
async fn closed(client: &mut DuplexStream) -> bool {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PROMPT, client.read_to_end(&mut rest)).await;
    matches!(read, Ok(Ok(0)))
}

#[tokio::test]
async fn pipelined_answers_leave_in_order() {
    let mut client = start(timeouts(LONG));
    client
        .write_all(
            b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n\
              POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
              GET /last HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await
        .unwrap();
    let mut buf = Vec::new();
    for expected in [&b"/slow"[..], b"/fastabc", b"/last"] {
        let (status, head, body) = response(&mut client, &mut buf).await;
        assert_eq!((status, body.as_slice()), (200, expected));
        assert!(!head.contains("connection:"), "{head}");
    }
}

#[tokio::test]
async fn continue_is_sent_before_the_body_is_read() {
    let mut client = start(timeouts(LONG));
    client
        .write_all(
            b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut interim = [0; 25];
    let read = tokio::time::timeout(PROMPT, client.read_exact(&mut interim));
    read.await.expect("100 Continue in time").unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"data").await.unwrap();
    let (status, _, body) = response(&mut client, &mut Vec::new()).await;
    assert_eq!((status, body.as_slice()), (200, &b"/updata"[..]));
}

#[tokio::test]
async fn connection_close_is_answered_then_closed() {
    let mut client = start(timeouts(LONG));
    client
        .write_all(
            b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        )
        .await
        .unwrap();
    let (status, head, _) = response(&mut client, &mut Vec::new()).await;
    assert_eq!(status, 200);
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(
        closed(&mut client).await,
        "the pipelined request is not served"
    );
}

#[tokio::test]
async fn http_1_0_closes_unless_kept_alive() {
    let mut client = start(timeouts(LONG));
    client
        .write_all(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let (status, head, _) = response(&mut client, &mut buf).await;
    assert_eq!(status, 200);
    assert!(head.contains("\r\nconnection: keep-alive"), "{head}");
    client.write_all(b"GET /b HTTP/1.0\r\n\r\n").await.unwrap();
    let (status, head, body) = response(&mut client, &mut buf).await;
    assert_eq!((status, body.as_slice()), (200, &b"/b"[..]));
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(closed(&mut client).await);
}

#[tokio::test]
async fn protocol_errors_are_answered_then_closed() {
    let cases: [(&[u8], u16); 4] = [
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
            413,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
    ];
    for (request, expected) in cases {
        let mut client = start(timeouts(LONG));
        client.write_all(request).await.unwrap();
        let (status, head, _) = response(&mut client, &mut Vec::new()).await;
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(request));
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(closed(&mut client).await);
    }
}

#[tokio::test]
async fn a_slow_head_or_body_gets_408() {
    for partial in [
        &b"GET / HTTP/1.1\r\nHos"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc",
    ] {
        let mut client = start(timeouts(Duration::from_millis(50)));
        client.write_all(partial).await.unwrap();
        let (status, head, _) = response(&mut client, &mut Vec::new()).await;
        assert_eq!(status, 408);
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(closed(&mut client).await);
    }
}

#[tokio::test]
async fn an_idle_connection_is_closed_without_an_answer() {
    let (mut client, server) = duplex(1024);
    let timeouts = Timeouts {
        idle: Duration::from_millis(50),
        header: LONG,
        send: LONG,
        stream_idle: LONG,
    };
    tokio::spawn(serve(Connection::new(server, Limits::default(), timeouts)));
    assert!(closed(&mut client).await);
}

/// The idle timer is armed once and moved on when it fires: each wait
/// still gets the whole idle time from its own start.
#[tokio::test]
async fn the_idle_time_counts_from_each_wait_not_from_the_first() {
    let (mut client, server) = duplex(1024);
    let idle = Duration::from_millis(1000);
    let gap = Duration::from_millis(600);
    let timeouts = Timeouts {
        idle,
        header: LONG,
        send: LONG,
        stream_idle: LONG,
    };
    tokio::spawn(serve(Connection::new(server, Limits::default(), timeouts)));
    let mut buf = Vec::new();
    // Three requests a gap apart: longer in all than the idle time, each
    // gap within it.
    for path in ["/a", "/b", "/c"] {
        tokio::time::sleep(gap).await;
        client
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let (status, _, body) = response(&mut client, &mut buf).await;
        assert_eq!((status, &body[..]), (200, path.as_bytes()));
    }
    // A gap into the last wait the connection is open; past the idle time
    // it is closed.
    tokio::time::sleep(gap).await;
    let mut probe = [0u8; 1];
    let open = tokio::time::timeout(Duration::from_millis(150), client.read(&mut probe)).await;
    assert!(open.is_err(), "closed before its idle time: {open:?}");
    assert!(closed(&mut client).await);
}

#[tokio::test]
async fn shutdown_closes_a_connection_between_requests() {
    let (mut client, server) = duplex(1024);
    let stop = Shutdown::new();
    let conn = Connection::new(server, Limits::default(), timeouts(LONG)).with_shutdown(&stop);
    tokio::spawn(serve(conn));
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = response(&mut client, &mut Vec::new()).await;
    assert_eq!(status, 200);
    stop.fire();
    assert!(closed(&mut client).await);
}

#[tokio::test]
async fn a_deadline_bounds_the_whole_request() {
    let (mut client, server) = duplex(1024);
    let mut conn = Connection::new(server, Limits::default(), timeouts(LONG));
    conn.set_deadline(Instant::now() + Duration::from_millis(50));
    tokio::spawn(serve(conn));
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let (status, _, _) = response(&mut client, &mut Vec::new()).await;
    assert_eq!(status, 408);
    assert!(closed(&mut client).await);
}

#[tokio::test]
async fn a_client_that_leaves_cancels_its_answer() {
    let (mut client, server) = duplex(1024);
    let mut conn = Connection::new(server, Limits::default(), timeouts(LONG));
    client
        .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let request = conn.read_request().await.expect("a request");
    assert_eq!(request.head.path, "/a");
    drop(client);
    let never = std::pin::pin!(std::future::pending::<()>());
    let answered = tokio::time::timeout(PROMPT, conn.answer(never));
    assert_eq!(answered.await.expect("noticed in time"), None);
}

/// Answers every request with `size` bytes, counting the requests read.
fn start_big(size: usize, send: Duration) -> (DuplexStream, Arc<AtomicUsize>) {
    let (client, server) = duplex(64 * 1024);
    let timeouts = Timeouts {
        idle: LONG,
        header: LONG,
        send,
        stream_idle: LONG,
    };
    let mut conn = Connection::new(server, Limits::default(), timeouts);
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Some(request) = conn.read_request().await {
            count.fetch_add(1, Ordering::SeqCst);
            let response = Response::new(200, Vec::new(), vec![b'b'; size]).unwrap();
            let opts = request.response_options();
            conn.write(response, &opts);
            if !opts.keep_alive {
                break;
            }
        }
        conn.close().await;
    });
    (client, served)
}

#[tokio::test]
async fn a_client_that_reads_nothing_is_closed_after_the_send_timeout() {
    let (mut client, _) = start_big(1 << 20, Duration::from_millis(100));
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut got = Vec::new();
    let read = tokio::time::timeout(PROMPT, client.read_to_end(&mut got)).await;
    assert!(matches!(read, Ok(Ok(_))), "closed: {read:?}");
    assert!(got.len() < 1 << 20, "the answer was cut off: {}", got.len());
}

#[tokio::test]
async fn a_slow_reader_that_keeps_reading_gets_everything() {
    let (mut client, _) = start_big(256 * 1024, Duration::from_millis(100));
    client
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0; 16 * 1024];
    loop {
        // Longer in all than the send timeout, never silent that long.
        tokio::time::sleep(Duration::from_millis(20)).await;
        match client.read(&mut chunk).await.unwrap() {
            0 => break,
            n => got.extend_from_slice(&chunk[..n]),
        }
    }
    assert!(started.elapsed() > Duration::from_millis(100));
    let (status, _, body) = response(&mut client, &mut got).await;
    assert_eq!((status, body.len()), (200, 256 * 1024));
}

#[tokio::test]
async fn pipelined_requests_wait_while_much_is_queued() {
    const ANSWER: usize = 64 * 1024;
    let (mut client, served) = start_big(ANSWER, LONG);
    let requests = b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    client.write_all(&requests).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // What the cap allows, the answer that crossed it, and what the pipe
    // between them holds.
    let bound = MAX_QUEUED_OUTPUT / ANSWER + 3;
    let early = served.load(Ordering::SeqCst);
    assert!(early <= bound, "served {early} while nothing was read");
    let mut buf = Vec::new();
    for _ in 0..200 {
        let (status, _, body) = response(&mut client, &mut buf).await;
        assert_eq!((status, body.len()), (200, ANSWER));
    }
    assert_eq!(served.load(Ordering::SeqCst), 200);
}
