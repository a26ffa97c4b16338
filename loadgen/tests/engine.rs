//! The paced engine (plain http on Linux) against raw TCP servers that answer in the ways
//! HTTP/1.1 allows: chunked bodies, bodies that end when the connection does, error statuses,
//! answers held back for a while, which the engine reads at a later wake but must time by
//! when they arrived, and a request too large for one write.

use std::time::Duration;

mod support;

use loadgen::RunConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers every request head with `answer` after `delay`; with `close_after` it closes the
/// connection after each answer.
async fn serve(answer: &'static [u8], delay: Duration, close_after: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    support::serve_raw(listener, answer, delay, close_after, |_| {});
    format!("http://{addr}")
}

async fn run(target: String, food: f64, clothing: f64, seconds: f64) -> loadgen::Report {
    let mut cfg = RunConfig::constant(Some(target), food, clothing);
    cfg.duration = Some(Duration::from_secs_f64(seconds));
    loadgen::run(cfg, std::future::pending())
        .await
        .expect("run")
}

fn outcome(r: &loadgen::Report, class: &str) -> u64 {
    r.total.outcomes.get(class).copied().unwrap_or(0)
}

#[tokio::test]
async fn chunked_answers_with_trailers_complete() {
    let answer: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
        3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\ntrailer: t\r\n\r\n";
    let report = run(serve(answer, Duration::ZERO, false).await, 60.0, 20.0, 0.5).await;
    assert!(report.total.sent >= 35, "{:?}", report.total);
    assert_eq!(report.total.ok, report.total.sent, "{:?}", report.total);
}

#[tokio::test]
async fn answers_that_end_with_the_connection_complete_and_are_not_reused() {
    // No length, no chunking: the body is whatever comes before the close.
    let answer: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of it";
    let report = run(serve(answer, Duration::ZERO, true).await, 60.0, 0.0, 0.5).await;
    assert!(report.total.sent >= 25, "{:?}", report.total);
    assert_eq!(report.total.ok, report.total.sent, "{:?}", report.total);
}

#[tokio::test]
async fn statuses_land_in_their_classes_and_broken_answers_in_other() {
    let unavailable: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
    let report = run(
        serve(unavailable, Duration::ZERO, false).await,
        40.0,
        0.0,
        0.5,
    )
    .await;
    assert!(report.total.sent > 0);
    assert_eq!(
        outcome(&report, "5xx"),
        report.total.sent,
        "{:?}",
        report.total
    );

    let missing: &[u8] = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
    let report = run(serve(missing, Duration::ZERO, false).await, 40.0, 0.0, 0.5).await;
    assert_eq!(
        outcome(&report, "4xx"),
        report.total.sent,
        "{:?}",
        report.total
    );

    let garbage: &[u8] = b"SMTP ready\r\n\r\n";
    let report = run(serve(garbage, Duration::ZERO, false).await, 40.0, 0.0, 0.5).await;
    assert!(report.total.sent > 0);
    assert_eq!(
        outcome(&report, "other"),
        report.total.sent,
        "{:?}",
        report.total
    );
}

#[tokio::test]
async fn an_answer_read_at_a_later_wake_is_timed_by_its_arrival() {
    // At 4 orders/s the engine sleeps in 20 ms steps, so an answer arriving 25 ms after its
    // request is read about 40 ms after it. Timed by the read, it would look 15 ms slow.
    let answer: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
    let delay = Duration::from_millis(25);
    let report = run(serve(answer, delay, false).await, 4.0, 0.0, 2.0).await;
    let service = &report.total.latency_service;
    assert!(service.count >= 6, "{:?}", report.total);
    assert!(
        service.min_ms >= 25.0,
        "answers cannot beat the server's delay: {:?}",
        report.total
    );
    // At 4/s an answer read at the next send would be up to 250 ms late; taken when it
    // arrived it is the 25 ms delay plus scheduling noise.
    assert!(
        service.p50_ms < 100.0,
        "service time is taken when the answer arrived, not when it was read: {:?}",
        report.total
    );
}

#[tokio::test]
async fn a_request_larger_than_the_socket_buffers_goes_out_in_pieces() {
    // A 4 MiB header cannot leave in one write: the rest waits for the socket to drain.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut chunk = vec![0u8; 64 * 1024];
                let mut tail: Vec<u8> = Vec::new();
                loop {
                    let n = match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    // Only the last three bytes of the previous read can start the end mark.
                    tail.extend_from_slice(&chunk[..n]);
                    if tail.windows(4).any(|w| w == b"\r\n\r\n") {
                        tail.clear();
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if s.write_all(ok).await.is_err() {
                            return;
                        }
                    } else {
                        let keep = tail.len().saturating_sub(3);
                        tail.drain(..keep);
                    }
                }
            });
        }
    });
    let mut cfg = RunConfig::constant(Some(format!("http://{addr}")), 5.0, 0.0);
    cfg.duration = Some(Duration::from_secs(1));
    cfg.client.headers = vec![("X-Padding".into(), "p".repeat(4 << 20))];
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    assert!(report.total.sent >= 4, "{:?}", report.total);
    assert_eq!(report.total.ok, report.total.sent, "{:?}", report.total);
}

#[tokio::test]
async fn the_drain_waits_once_for_answers_that_never_come() {
    // Accepts connections and never answers. Requests still out when the drain runs out are
    // reported as sent and not completed; the drain is waited once, not once per layer.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut cfg = RunConfig::constant(Some(format!("http://{addr}")), 10.0, 0.0);
    cfg.duration = Some(Duration::from_millis(500));
    cfg.drain = Duration::from_secs(1);
    cfg.client.timeout = Duration::from_secs(30);
    let started = std::time::Instant::now();
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    let took = started.elapsed();
    assert!(report.total.sent >= 4, "{:?}", report.total);
    assert_eq!(report.total.completed, 0, "{:?}", report.total);
    assert!(took >= Duration::from_millis(1400), "drained for {took:?}");
    assert!(
        took < Duration::from_millis(2300),
        "drained twice: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_behind_reuses_answered_connections_instead_of_opening_one_per_request() {
    // 400 requests fall due faster than one thread can open connections: before opening one
    // for a request the engine takes the answers that have arrived, so the connections
    // freed are used again. Without that look nearly every request opened a connection of
    // its own (up to --max-in-flight).
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while support::next_head(&mut s, &mut buf).await.is_some() {
                    if s.write_all(ANSWER).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut cfg = RunConfig::constant(Some(format!("http://{addr}")), 800_000.0, 0.0);
    // From nothing (so one connection is opened ahead of the run) to 800,000/s in 50 ms:
    // the 400th request falls due 7 ms in, at 113,000/s.
    cfg.plan = loadgen::schedule::Plan::single(loadgen::schedule::Profile {
        shape: loadgen::schedule::Shape::Ramp {
            from: 0.0,
            over: 0.05,
        },
        rates: [800_000.0, 0.0],
        flash_sales: None,
    });
    cfg.requests = Some(400);
    cfg.duration = Some(Duration::from_secs(5));
    let report = loadgen::run(cfg, std::future::pending())
        .await
        .expect("run");
    assert_eq!(outcome(&report, "2xx"), 400, "{:?}", report.total);
    let opened = accepted.load(std::sync::atomic::Ordering::Relaxed);
    // 50 to 110 here (debug build), most while the server is still accepting the first
    // ones; 399 without the look.
    assert!(opened < 300, "{opened} connections for 400 requests");
}
