//! Bad input over raw TCP on loopback: garbage, broken request lines, oversized heads and
//! bodies, slow bodies, slowloris, a scan of 10,000 random paths and methods, and invalid
//! fault-API requests. Each is answered (or cut off) as documented, and afterwards the
//! server still answers /healthz and /metrics.

mod support;

use std::time::{Duration, Instant};

use order_server::contract as c;
use order_server::Config;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use support::{quiet_config, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn short_timeouts() -> Config {
    let mut c = quiet_config();
    c.header_timeout = Duration::from_millis(300);
    c.body_timeout = Duration::from_millis(300);
    c
}

/// Writes `bytes` on a fresh connection and reads until the server closes it (or `limit`).
async fn exchange(srv: &TestServer, bytes: &[u8], limit: Duration) -> String {
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    // The server may close before reading everything (e.g. a 431); that is fine.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

fn status_of(response: &str) -> Option<u16> {
    response
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The server still works: health answers fast and /metrics parses.
async fn still_healthy(srv: &TestServer) {
    let t = Instant::now();
    assert_eq!(srv.get("/healthz").await.status(), 200);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    let m = srv.scrape().await;
    assert!(m.samples.len() > 50);
}

#[tokio::test]
async fn garbage_and_broken_request_lines_get_400_or_a_closed_connection() {
    let srv = TestServer::start(short_timeouts()).await;
    let mut rng = SmallRng::seed_from_u64(7);
    let mut inputs: Vec<Vec<u8>> = vec![
        b"GET\r\n\r\n".to_vec(),
        b"GET / HTTP/9.9\r\n\r\n".to_vec(),
        b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n".to_vec(),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(), // a TLS ClientHello
        b"GET /\x00\x01 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"POST /makeFoodOrder HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_vec(),
        b"POST /makeFoodOrder HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n"
            .to_vec(),
        b"\r\n\r\n\r\n".to_vec(),
    ];
    for _ in 0..20 {
        let n = rng.random_range(1..2048);
        inputs.push((0..n).map(|_| rng.random::<u8>()).collect());
    }
    for input in &inputs {
        let answer = exchange(&srv, input, Duration::from_secs(2)).await;
        match status_of(&answer) {
            None => {} // closed without an answer
            Some(s) => assert!(
                (400..500).contains(&s),
                "{:?} was answered {answer:?}",
                String::from_utf8_lossy(input)
            ),
        }
    }
    still_healthy(&srv).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn oversized_heads_get_431_and_oversized_or_slow_bodies_413_or_408() {
    let srv = TestServer::start(short_timeouts()).await;
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let answer = exchange(&srv, big_header.as_bytes(), Duration::from_secs(2)).await;
    assert_eq!(status_of(&answer), Some(431), "{answer:.200}");

    let n = order_server::contract::MAX_BODY_BYTES + 1;
    let big_body = format!(
        "POST /makeFoodOrder HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n{}",
        "x".repeat(n)
    );
    let answer = exchange(&srv, big_body.as_bytes(), Duration::from_secs(2)).await;
    assert_eq!(status_of(&answer), Some(413), "{answer:.300}");
    assert!(answer.contains("larger than"), "{answer}");

    // A body that promises 100 bytes and sends 10: 408 after the body timeout, not a hang.
    let t = Instant::now();
    let answer = exchange(
        &srv,
        b"POST /makeFoodOrder HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(status_of(&answer), Some(408), "{answer}");
    assert!(answer.contains("not received within"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    still_healthy(&srv).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn slowloris_is_cut_off_by_the_header_timeout() {
    let srv = TestServer::start(short_timeouts()).await;
    let mut s = TcpStream::connect(srv.addr).await.expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    let t = Instant::now();
    // Keep dribbling one header byte every 50 ms; the server must give up on us anyway.
    let closed = loop {
        if t.elapsed() > Duration::from_secs(3) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        if s.write_all(b"X").await.is_err() {
            break true;
        }
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => {
                let text = String::from_utf8_lossy(&buf);
                assert!(text.starts_with("HTTP/1.1 408"), "{text}");
                break true;
            }
            Err(_) => {}
        }
    };
    assert!(closed, "a slowloris connection stayed open for 3 s");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    still_healthy(&srv).await;
    srv.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_random_paths_and_methods_add_no_series() {
    let srv = TestServer::start(quiet_config()).await;
    let methods = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW", "PROPFIND", "X-SCAN",
    ];
    let known = [
        "/makeFoodOrder",
        "/makeClothingOrder",
        "/metrics",
        "/healthz",
        "/readyz",
    ];
    let expected = |method: &str, path: &str| -> u16 {
        match path {
            "/makeFoodOrder" | "/makeClothingOrder" if method == "GET" || method == "POST" => 200,
            "/makeFoodOrder" | "/makeClothingOrder" => 405,
            "/metrics" | "/healthz" | "/readyz" if method == "GET" => 200,
            "/metrics" | "/healthz" | "/readyz" => 405,
            _ => 404,
        }
    };
    let send = |method: &'static str, path: String| {
        let client = srv.client.clone();
        let url = srv.url(&path);
        async move {
            let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let r = client.request(m, url).send().await.expect("send");
            (method, path, r.status().as_u16())
        }
    };
    // Every (method, route kind) once, so every series the closed sets allow exists.
    for m in methods {
        for p in known
            .iter()
            .map(|p| p.to_string())
            .chain(["/nope".to_string()])
        {
            let (m, p, status) = send(m, p).await;
            assert_eq!(status, expected(m, &p), "{m} {p}");
        }
    }
    let before = srv.scrape().await;
    let series_before = before.samples.len();

    let mut rng = SmallRng::seed_from_u64(11);
    let mut batch = Vec::new();
    for i in 0..10_000u32 {
        let m = methods[rng.random_range(0..methods.len())];
        let path = if rng.random_bool(0.1) {
            // A known route with a method it does not allow.
            let p = known[rng.random_range(0..known.len())];
            if expected(m, p) == 200 {
                format!("/scan/{i}")
            } else {
                p.to_string()
            }
        } else {
            let len = rng.random_range(1..40);
            let s: String = (0..len)
                .map(|_| char::from(rng.random_range(b'a'..=b'z')))
                .collect();
            format!("/{s}/{i}?q={}", rng.random::<u32>())
        };
        batch.push(send(m, path));
        if batch.len() == 64 {
            for (m, p, status) in futures_join(std::mem::take(&mut batch)).await {
                assert!(status == 404 || status == 405, "{m} {p}: {status}");
            }
        }
    }
    for (m, p, status) in futures_join(batch).await {
        assert!(status == 404 || status == 405, "{m} {p}: {status}");
    }
    let after = srv.scrape().await;
    assert_eq!(
        after.samples.len(),
        series_before,
        "10,000 random requests changed the number of series"
    );
    let other = after.sum(c::HTTP_REQUESTS, &[("route", "other")])
        - before.sum(c::HTTP_REQUESTS, &[("route", "other")]);
    assert!(other > 8_000.0, "{other}");
    still_healthy(&srv).await;
    srv.shutdown().await;
}

/// Runs the futures concurrently and returns their results in order.
async fn futures_join<F: std::future::Future + Send + 'static>(fs: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = fs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn invalid_fault_requests_get_400_naming_the_problem() {
    let srv = TestServer::start_with_admin(quiet_config(), true).await;
    let cases: Vec<(String, &str)> = vec![
        ("not json".into(), "invalid fault request"),
        ("{}".into(), "kind"),
        (
            json!({"kind": "explode", "duration": "1m"}).to_string(),
            "kind",
        ),
        (
            json!({"kind": "errors", "duration": "1m"}).to_string(),
            "error_rate",
        ),
        (
            json!({"kind": "errors", "duration": "1m", "error_rate": 2.0}).to_string(),
            "error_rate",
        ),
        (
            json!({"kind": "latency", "duration": "1m"}).to_string(),
            "extra_latency",
        ),
        (
            json!({"kind": "latency", "duration": "1m", "extra_latency": "1h"}).to_string(),
            "extra_latency",
        ),
        (
            json!({"kind": "stall", "duration": "100h"}).to_string(),
            "duration",
        ),
        (
            json!({"kind": "stall", "duration": "soon"}).to_string(),
            "duration",
        ),
        (
            json!({"kind": "stall", "duration": "1m", "order_type": "shoes"}).to_string(),
            "order_type",
        ),
        (
            json!({"kind": "stall", "duration": "1m", "colour": "red"}).to_string(),
            "colour",
        ),
    ];
    for (body, names) in cases {
        let r = srv
            .client
            .post(srv.admin_url())
            .body(body.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{body}");
        let answer: Value = r.json().await.expect("json");
        let msg = answer["error"].as_str().unwrap_or_default();
        assert!(msg.contains(names), "{body}: {msg:?} should name {names}");
    }
    // Nothing was switched on by any of them.
    let listed: Value = srv
        .client
        .get(srv.admin_url())
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["faults"], json!([]));
    still_healthy(&srv).await;
    srv.shutdown().await;
}
