//! Hostile clients against the shared accept loop (`volumed/src/serve.rs`): sockets that send
//! nothing, half a request line, half the headers, headers a byte at a time, or go idle after
//! a request must not keep working clients out, and the server must close them within its
//! header-read timeout. Request heads beyond the size limit are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use compat_tests::{CLUSTER_SECRET, TestCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `volumed::serve::HEADER_READ_TIMEOUT`.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How late after the timeout a close may come (timer granularity, a loaded machine).
const SLACK: Duration = Duration::from_secs(4);
/// Stalled sockets of each silent/partial kind, per target.
const STALLED_PER_KIND: usize = 100;
/// Trickling and idle keep-alive sockets, per target.
const FEW: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Connects and sends nothing.
    Silent,
    /// Half a request line.
    PartialLine,
    /// A request line and half the headers.
    PartialHeaders,
    /// Header bytes one at a time, every 500 ms, never finishing.
    Trickle,
    /// A whole request, reads the response, then stays idle on the kept-alive connection.
    IdleKeepAlive,
}

/// When a stalled socket started waiting, and how long until the server closed it.
struct Closed {
    kind: Kind,
    port: u16,
    after: Duration,
}

/// Opens one socket of `kind` and returns a task that resolves when the server closes it.
async fn stall(port: u16, kind: Kind) -> tokio::task::JoinHandle<Closed> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    match kind {
        Kind::Silent | Kind::Trickle => {}
        Kind::PartialLine => socket.write_all(b"GET /hea").await.unwrap(),
        Kind::PartialHeaders => socket.write_all(format!("{request}X-Slow: aaaa").as_bytes()).await.unwrap(),
        Kind::IdleKeepAlive => {
            socket.write_all(format!("{request}\r\n").as_bytes()).await.unwrap();
            // Any complete response ends in a body here: "ok" from volumed's /health, XML
            // from the S3 front; wait for the status line and the end of the head at least.
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed before answering a whole request");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"HTTP/1.1 "), "{}", String::from_utf8_lossy(&got));
            // Let the rest of a small body arrive before the idle clock is taken.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let started = Instant::now();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        if kind == Kind::Trickle {
            socket.write_all(b"GET /health HTTP/1.1\r\nX-Slow: ").await.unwrap();
        }
        loop {
            tokio::select! {
                read = socket.read(&mut buf) => match read {
                    // The server's answer to a kept-alive request may still be draining.
                    Ok(n) if n > 0 && kind == Kind::IdleKeepAlive => {}
                    Ok(n) => {
                        assert_eq!(n, 0, "{kind:?}: the server answered a request that never ended");
                        break;
                    }
                    Err(_) => break,
                },
                _ = tick.tick(), if kind == Kind::Trickle => {
                    if socket.write_all(b"a").await.is_err() {
                        break;
                    }
                }
            }
        }
        Closed { kind, port, after: started.elapsed() }
    })
}

/// Times a request and checks it succeeded quickly.
async fn prompt<T>(what: &str, request: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(3), request)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 3 s while stalled sockets are open"));
    assert!(started.elapsed() < Duration::from_secs(3), "{what} took {:?}", started.elapsed());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_sockets_neither_block_clients_nor_stay_open() {
    let cluster = TestCluster::start(1, 1);
    let s3 = cluster.client();
    s3.create_bucket().bucket("bkt").send().await.unwrap();
    let volume = cluster.volumes[0].url();
    let targets = [cluster.volumes[0].port, cluster.s3_port];

    let opened = Instant::now();
    let mut stalled = Vec::new();
    for port in targets {
        for kind in [Kind::Silent, Kind::PartialLine, Kind::PartialHeaders] {
            for _ in 0..STALLED_PER_KIND {
                stalled.push(stall(port, kind).await);
            }
        }
        for kind in [Kind::Trickle, Kind::IdleKeepAlive] {
            for _ in 0..FEW {
                stalled.push(stall(port, kind).await);
            }
        }
    }
    assert!(opened.elapsed() < HEADER_READ_TIMEOUT / 2, "opening the sockets took {:?}", opened.elapsed());

    // While they are all open, working clients get answers right away, on new connections.
    let fresh = || reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    for round in 0..3 {
        let health = prompt("volumed /health", fresh().get(format!("{volume}/health")).send()).await.unwrap();
        assert_eq!(health.status(), 200);
        let stats = prompt("volumed /stats", fresh().get(format!("{volume}/stats")).bearer_auth(CLUSTER_SECRET).send())
            .await
            .unwrap();
        assert_eq!(stats.status(), 200);
        assert!(stats.text().await.unwrap().contains("volume_id"));
        let key = format!("key-{round}");
        let body = format!("body {round}").into_bytes();
        prompt("S3 PUT", s3.put_object().bucket("bkt").key(&key).body(body.clone().into()).send()).await.unwrap();
        let got = prompt("S3 GET", s3.get_object().bucket("bkt").key(&key).send()).await.unwrap();
        assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), body);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let clients_done = opened.elapsed();

    // Then the server closes every stalled socket, within its timeout.
    let deadline = tokio::time::Instant::now() + HEADER_READ_TIMEOUT + SLACK + Duration::from_secs(1);
    let total = stalled.len();
    let mut late = Vec::new();
    for task in stalled {
        let closed = tokio::time::timeout_at(deadline, task)
            .await
            .expect("a stalled socket was still open well after the header-read timeout")
            .unwrap();
        // Not closed early either: the clients above were served while all were open.
        assert!(
            closed.after + Duration::from_secs(1) >= HEADER_READ_TIMEOUT.min(clients_done),
            "{:?} on {} closed after only {:?}",
            closed.kind,
            closed.port,
            closed.after
        );
        if closed.after > HEADER_READ_TIMEOUT + SLACK {
            late.push((closed.kind, closed.port, closed.after));
        }
    }
    assert!(late.is_empty(), "closed too late: {late:?}");
    assert_eq!(total, 2 * (3 * STALLED_PER_KIND + 2 * FEW));
}

/// Sends a request with one `X-Big` header of `size` bytes; returns the status line the server
/// answered with, or `None` if it reset or closed the connection without one.
async fn oversized(port: u16, path: &str, size: usize) -> Option<String> {
    let socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut reader, mut writer) = socket.into_split();
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {CLUSTER_SECRET}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(size)
    );
    // Written from a task: a server that refuses early stops reading, and our write would
    // block or fail while its answer waits to be read.
    let writing = tokio::spawn(async move { writer.write_all(head.as_bytes()).await.map(|()| writer) });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf)).await.expect("no answer") {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    drop(writing);
    let text = String::from_utf8_lossy(&got);
    text.split("\r\n").next().filter(|line| !line.is_empty()).map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn request_heads_are_limited_in_size() {
    let cluster = TestCluster::start(1, 1);
    let (volume, s3) = (cluster.volumes[0].port, cluster.s3_port);

    // Within the limits: volumed takes the largest metadata a blob may carry (64 KiB of JSON,
    // base64 in a header), the S3 front a head of a few tens of KiB.
    let meta = format!(r#"{{"pad":"{}"}}"#, "a".repeat(64 * 1024 - 10));
    assert_eq!(meta.len(), 64 * 1024);
    let url = format!("{}/blob/0/{}", cluster.volumes[0].url(), "ab".repeat(16));
    let put = reqwest::Client::new()
        .put(&url)
        .bearer_auth(CLUSTER_SECRET)
        .header("x-cairn-meta", base64::engine::general_purpose::STANDARD.encode(&meta))
        .body("data")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "{}", put.text().await.unwrap());
    let head = reqwest::Client::new().head(&url).bearer_auth(CLUSTER_SECRET).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-cairn-meta"].len(), meta.len().div_ceil(3) * 4);
    let s3_ok = oversized(s3, "/", 32 * 1024).await.unwrap();
    assert!(!s3_ok.contains(" 431 "), "{s3_ok}");

    // Beyond them: 431, or the connection dropped before the whole head was read.
    for (port, size) in [(volume, 200 * 1024), (s3, 100 * 1024)] {
        let answer = oversized(port, "/", size).await;
        assert!(
            answer.as_deref().is_none_or(|line| line.starts_with("HTTP/1.1 431")),
            "a {size}-byte header on port {port} was answered with {answer:?}"
        );
    }
}
