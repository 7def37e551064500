//! Standard `wasi:http/proxy` components' response bodies stream: what a
//! component writes reaches the client as it writes it, a body of any
//! length passes in constant memory, and a stream that ends early (the
//! client leaves, the component goes quiet) gives the component's place
//! back.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{read_header_lines, Server, PATIENCE};

const MIB: u64 = 1 << 20;

fn standard(args: &[&str]) -> Server {
    Server::start_module(Some(snow_test_guests::HELLO_WASI_HTTP), args)
}

/// Sends a GET and reads the head: the status line and the fields.
pub(crate) fn open(
    server: &Server,
    path: &str,
) -> (TcpStream, BufReader<TcpStream>, Vec<(String, String)>) {
    let mut stream = server.connect();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .expect("request");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut status = String::new();
    reader.read_line(&mut status).expect("status line");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let head = read_header_lines(&mut reader).expect("head");
    (stream, reader, head)
}

fn field<'a>(head: &'a [(String, String)], name: &str) -> Option<&'a str> {
    head.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, PartialEq)]
pub(crate) enum Chunk {
    Data(Vec<u8>),
    /// The last chunk: the body is complete.
    Last,
    /// The connection ended (or broke) mid-body: cut off.
    Cut,
}

pub(crate) fn next_chunk(reader: &mut impl BufRead) -> Chunk {
    let mut line = String::new();
    if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
        return Chunk::Cut;
    }
    let size = line.trim_end().split(';').next().unwrap_or_default().trim();
    let Ok(size) = usize::from_str_radix(size, 16) else {
        return Chunk::Cut;
    };
    let mut chunk = vec![0u8; size + 2];
    if reader.read_exact(&mut chunk).is_err() || !chunk.ends_with(b"\r\n") {
        return Chunk::Cut;
    }
    chunk.truncate(size);
    if size == 0 {
        Chunk::Last
    } else {
        Chunk::Data(chunk)
    }
}

#[test]
fn a_standard_component_sends_events_as_it_writes_them() {
    let server = standard(&["--workers", "1"]);
    let started = Instant::now();
    let (_stream, mut reader, head) = open(&server, "/events/?ms=400&count=3");
    assert_eq!(field(&head, "content-type"), Some("text/event-stream"));
    assert_eq!(field(&head, "transfer-encoding"), Some("chunked"));
    let mut text = String::new();
    let mut first_at = None;
    // Events are separate writes, so separate chunks; the last one ends it.
    while let Chunk::Data(chunk) = next_chunk(&mut reader) {
        text.push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
        if first_at.is_none() && text.contains("data: tick 1\n") {
            first_at = Some(started.elapsed());
        }
    }
    let ended_at = started.elapsed();
    let first_at = first_at.unwrap_or_else(|| panic!("no first event in {text:?}"));
    for n in 1..=3 {
        assert!(text.contains(&format!("data: tick {n}\n")), "{text:?}");
    }
    // Read whole, the first event would come with the last, 800 ms later.
    assert!(
        ended_at - first_at >= Duration::from_millis(600),
        "the first event came at {first_at:?}, the end at {ended_at:?}"
    );
}

#[test]
fn a_standard_component_streams_more_than_its_memory_in_constant_memory() {
    let server = standard(&["--workers", "1", "--max-memory", "16MiB"]);
    assert_eq!(server.get("/home/").status, 200);
    let before = server.rss_kib();
    let total = 256 * MIB;
    let (mut stream, mut reader, head) = open(&server, &format!("/bytes/{total}"));
    assert_eq!(
        field(&head, "transfer-encoding"),
        Some("chunked"),
        "{head:?}"
    );
    let mut offset = 0u64;
    let mut peak = before;
    let last = loop {
        let chunk = match next_chunk(&mut reader) {
            Chunk::Data(chunk) => chunk,
            other => break other,
        };
        for (i, byte) in chunk.iter().enumerate() {
            let at = offset + i as u64;
            assert_eq!(*byte, (at % 251) as u8, "byte {at}");
        }
        offset += chunk.len() as u64;
        if offset % (16 * MIB) < chunk.len() as u64 {
            peak = peak.max(server.rss_kib());
            if offset == 16 * MIB {
                // A reader that stops holds the component back.
                thread::sleep(Duration::from_millis(500));
                peak = peak.max(server.rss_kib());
            }
        }
    };
    assert_eq!((offset, last), (total, Chunk::Last), "the body ended early");
    assert!(
        peak.saturating_sub(before) < 16 * 1024,
        "RSS grew from {before} KiB to {peak} KiB"
    );
    // The connection serves on.
    stream
        .write_all(b"GET /home/ HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("next request");
    let next = crate::common::read_response(&mut reader, false).expect("next response");
    assert_eq!((next.status, next.text()), (200, "home".into()));
}

/// `--max-parked 1`: while a stream runs it holds the one place; once it
/// ends early, by the client or by the idle timeout, the place is free.
#[test]
fn a_stream_ended_early_gives_its_place_back() {
    let server = standard(&[
        "--workers",
        "1",
        "--max-parked",
        "1",
        "--stream-idle-timeout",
        "1s",
    ]);
    let free_again = |what: &str| {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = server.get("/home/").status;
            if status == 200 {
                return;
            }
            assert_eq!(status, 503, "{what}");
            assert!(Instant::now() < deadline, "{what}: the place stayed taken");
            thread::sleep(Duration::from_millis(20));
        }
    };
    for round in 0..3 {
        // The client leaves after the first event.
        let (stream, mut reader, _) = open(&server, "/events/?ms=50");
        assert!(
            matches!(next_chunk(&mut reader), Chunk::Data(_)),
            "a first chunk"
        );
        assert_eq!(
            server.get("/home/").status,
            503,
            "round {round}: the stream holds the place"
        );
        drop((stream, reader));
        free_again("after the client left");

        // The component goes quiet past the idle timeout: cut off.
        let (_stream, mut reader, _) = open(&server, "/events/?ms=5000&count=2");
        let started = Instant::now();
        let last = loop {
            match next_chunk(&mut reader) {
                Chunk::Data(_) => continue,
                other => break other,
            }
        };
        let took = started.elapsed();
        assert_eq!(
            last,
            Chunk::Cut,
            "round {round}: a quiet stream is cut off, never complete"
        );
        assert!(
            took < Duration::from_millis(4500),
            "round {round}: the quiet stream was not cut off ({took:?})"
        );
        free_again("after the idle timeout");
    }
}

/// A component that loops or panics after sending part of its body gets
/// its response cut off (never passed off as whole) and its instance
/// dropped, counted as a trap; the server serves on. The CPU limit counts
/// from the last piece of body the host took, so the loop is stopped.
#[test]
fn a_component_failing_mid_body_is_cut_off() {
    let server = Server::start_module(
        Some(snow_test_guests::STANDARD),
        &["--workers", "1", "--max-call-time", "200ms"],
    );
    for (then, reason) in [("loop", "cpu_time"), ("panic", "panic")] {
        let started = Instant::now();
        let (_stream, mut reader, _) = open(&server, &format!("/huge/?mb=2&then={then}"));
        let mut got = 0;
        let last = loop {
            match next_chunk(&mut reader) {
                Chunk::Data(data) => got += data.len(),
                other => break other,
            }
        };
        assert_eq!((got, last), (2 << 20, Chunk::Cut), "then={then}");
        assert!(started.elapsed() < PATIENCE, "then={then}");
        let metric = format!(r#"snow_traps_total{{module="standard",reason="{reason}"}}"#);
        assert!(server.metric(&metric) >= 1.0, "{metric}");
        assert_eq!(server.get("/home/").status, 200, "after then={then}");
    }
    server.wait_log("component trapped mid-stream");
}
