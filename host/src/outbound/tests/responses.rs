//! Well-formed exchanges: what is sent, and every way a body can be framed.

use tokio::io::AsyncWriteExt;

use super::support::{client, get, http_server, ok, raw_server, read_request, request};

#[tokio::test]
async fn plain_get() {
    let server = http_server(|seen| {
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            ("GET", "/a/b?c=d")
        );
        assert_eq!(seen.header("connection"), Some("keep-alive"));
        assert_eq!(seen.header("content-length"), None);
        assert_eq!(seen.header("x-custom"), Some("value"));
        let host = seen.header("host").unwrap_or_default().to_owned();
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Reply: yes\r\n\r\n{host}",
            host.len()
        )
        .into_bytes()
    })
    .await;
    let mut req = get(&server.url("/a/b?c=d#fragment"));
    req.headers.push(("X-Custom".into(), b"value".to_vec()));
    let response = client().fetch(req).await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, server.addr.to_string().as_bytes());
    assert_eq!(response.header("x-reply"), Some(&b"yes"[..]));
}

#[tokio::test]
async fn post_sends_its_body_with_a_length() {
    let server = http_server(|seen| {
        assert_eq!(seen.header("content-length"), Some("7"));
        ok(&String::from_utf8_lossy(&seen.body))
    })
    .await;
    let response = client()
        .fetch(request("POST", &server.url("/echo"), b"payload"))
        .await
        .unwrap();
    assert_eq!(response.body, b"payload");
}

#[tokio::test]
async fn large_bodies_go_out_whole() {
    let body = vec![b'x'; 200_000];
    let server = http_server(|seen| ok(&seen.body.len().to_string())).await;
    let response = client()
        .fetch(request("PUT", &server.url("/"), &body))
        .await
        .unwrap();
    assert_eq!(response.body, b"200000");
}

#[tokio::test]
async fn chunked_response_is_dechunked() {
    let server = http_server(|_| {
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
            .to_vec()
    })
    .await;
    let client = client();
    let response = client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(response.body, b"hello world");
    assert_eq!(response.header("transfer-encoding"), None);
    // Framed exactly, so the connection is reused.
    client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(server.accepts(), 1);
}

#[tokio::test]
async fn close_delimited_body_reads_to_the_end() {
    let server = raw_server(|mut stream| async move {
        let mut buf = Vec::new();
        read_request(&mut stream, &mut buf).await;
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\n\r\nuntil ").await;
        let _ = stream.write_all(b"the end").await;
    })
    .await;
    let client = client();
    let response = client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(response.body, b"until the end");
    client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(
        server.accepts(),
        2,
        "a close-delimited connection is not reused"
    );
}

#[tokio::test]
async fn interim_responses_are_skipped() {
    let server = http_server(|_| {
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
          HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            .to_vec()
    })
    .await;
    let mut req = request("POST", &server.url("/"), b"body");
    req.headers
        .push(("Expect".into(), b"100-continue".to_vec()));
    let response = client().fetch(req).await.unwrap();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"ok"[..])
    );
    assert_eq!(response.header("link"), None);
}

#[tokio::test]
async fn head_and_no_content_responses_have_no_body() {
    let server = http_server(|seen| match seen.path.as_str() {
        "/204" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
        "/304" => b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n".to_vec(),
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n".to_vec(),
    })
    .await;
    let client = client();
    let response = client
        .fetch(request("HEAD", &server.url("/"), b""))
        .await
        .unwrap();
    assert_eq!((response.status, response.body.len()), (200, 0));
    assert_eq!(response.header("content-length"), Some(&b"10"[..]));
    for path in ["/204", "/304"] {
        let response = client.fetch(get(&server.url(path))).await.unwrap();
        assert!(response.body.is_empty(), "{path}");
    }
    assert_eq!(server.accepts(), 1, "every response was framed exactly");
}

#[tokio::test]
async fn http10_responses_are_understood() {
    let server = http_server(|_| b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold".to_vec()).await;
    let client = client();
    let response = client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(response.body, b"old");
    client.fetch(get(&server.url("/"))).await.unwrap();
    assert_eq!(server.accepts(), 2, "HTTP/1.0 without keep-alive closes");
}
