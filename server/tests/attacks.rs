//! Breaks found by attacking the server (RELIABILITY.md, "Attacks"), each reproduced against
//! the server binary on loopback: the h2c scrape flood, stalls that outlive their clearing,
//! half-closed requests, a second signal during the drain, absurd durations, a lying
//! healthcheck target, and hyper's own rejections going uncounted.

#![cfg(target_os = "linux")]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    quiet_config, rss_bytes, spawn_server, spawn_server_logged, wait_for_exit, TestServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use order_server::Config;

/// Opens `streams` GET /metrics streams on one prior-knowledge h2c connection whose stream
/// window is 0, so the server can send no body bytes; returns the connection to keep open.
async fn stalled_h2_scrapes(
    addr: SocketAddr,
    streams: usize,
) -> Option<tokio::task::JoinHandle<()>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut client, conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .ok()?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut pending = Vec::new();
    for _ in 0..streams {
        // The server's stream limit makes `ready` wait: send what it allows within a moment.
        let Ok(Ok(ready)) =
            tokio::time::timeout(Duration::from_millis(200), client.clone().ready()).await
        else {
            break;
        };
        client = ready;
        let req = http::Request::get(format!("http://{addr}/metrics"))
            .body(())
            .expect("request");
        match client.send_request(req, true) {
            Ok((resp, _)) => pending.push(resp),
            Err(_) => break,
        }
    }
    Some(tokio::spawn(async move {
        let _keep = (client, pending);
        let _ = driver.await;
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_h2c_scrape_flood_with_zero_windows_keeps_memory_bounded() {
    let (mut child, addr, _log) = spawn_server(&["--header-timeout", "2s"]);
    let pid = child.id();
    let before = rss_bytes(pid);
    let mut conns = Vec::new();
    for _ in 0..50 {
        if let Some(c) = stalled_h2_scrapes(addr, 200).await {
            conns.push(c);
        }
    }
    assert!(
        conns.len() >= 40,
        "only {} h2c connections opened",
        conns.len()
    );
    let mut peak = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        peak = peak.max(rss_bytes(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server still answers while the flood holds its streams.
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .expect("healthz during the flood");
    assert_eq!(health.status(), 200);
    // Answers that cannot be sent are not held: the server closes those connections once
    // they waited the header timeout (2 s here), freeing what their streams held.
    let deadline = Instant::now() + Duration::from_secs(20);
    while conns.iter().any(|c| !c.is_finished()) {
        assert!(
            Instant::now() < deadline,
            "the server kept connections whose answers cannot be sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = rss_bytes(pid);
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "h2c flood: RSS {} MB before, {} MB peak, {} MB after",
        before >> 20,
        peak >> 20,
        after >> 20
    );
    assert!(
        peak < 48 << 20,
        "RSS peaked at {} MB under the h2c scrape flood",
        peak >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clearing_a_stall_releases_the_orders_it_held() {
    let mut cfg = quiet_config();
    cfg.max_in_flight = 3;
    let srv = TestServer::start_with_admin(cfg, true).await;
    let r = srv
        .client
        .post(srv.admin_url())
        .json(&json!({"kind": "stall", "order_type": "food", "duration": "1h"}))
        .send()
        .await
        .expect("stall");
    assert_eq!(r.status(), 201);
    let stuck: Vec<_> = (0..3)
        .map(|_| {
            let (client, url) = (srv.client.clone(), srv.url("/makeFoodOrder"));
            tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) })
        })
        .collect();
    // Readiness: the server has received all three (they now wait out the stall).
    let deadline = Instant::now() + Duration::from_secs(20);
    while srv.scrape().await.sum(
        "order_service_received_orders_total",
        &[("order_type", "food")],
    ) < 3.0
    {
        assert!(
            Instant::now() < deadline,
            "the stalled orders never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every slot is held, so a fourth order is shed.
    assert_eq!(srv.get("/makeFoodOrder").await.status(), 503);
    let r = srv
        .client
        .delete(srv.admin_url())
        .send()
        .await
        .expect("clear");
    assert_eq!(r.status(), 200);
    for o in stuck {
        let status = tokio::time::timeout(Duration::from_secs(10), o)
            .await
            .expect("clearing the stall released the order")
            .expect("task")
            .expect("answer");
        assert_eq!(status, 200);
    }
    assert_eq!(srv.get("/makeFoodOrder").await.status(), 200);
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_followed_by_a_half_close_is_answered() {
    // The simulation on: each order takes tens of milliseconds, long after the half-close.
    let srv = TestServer::start(Config::default()).await;
    let mut answered = 0;
    for _ in 0..30 {
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        s.write_all(b"GET /makeFoodOrder HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        s.shutdown().await.expect("shutdown(SHUT_WR)");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
        if answer.starts_with(b"HTTP/1.1 200") || answer.starts_with(b"HTTP/1.1 500") {
            answered += 1;
        }
    }
    assert_eq!(answered, 30, "half-closed requests left unanswered");
    srv.shutdown().await;
}

/// Sends `signal` to `pid` with kill(1).
fn kill(signal: &str, pid: u32) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_the_drain_exits_at_once() {
    let (mut child, started, log) = spawn_server_logged(&[
        "--simulate",
        "off",
        "--admin-listen",
        "127.0.0.1:0",
        "--drain-timeout",
        "1h",
    ]);
    let field = |k: &str| {
        started["fields"][k]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let addr = field("listen");
    let admin = field("admin");
    let admin = admin.trim_start_matches("Some(").trim_end_matches(')');
    let client = reqwest::Client::new();
    let r = client
        .post(format!("http://{admin}/admin/faults"))
        .json(&json!({"kind": "stall", "duration": "1h"}))
        .send()
        .await
        .expect("stall");
    assert_eq!(r.status(), 201);
    let order = tokio::spawn(client.get(format!("http://{addr}/makeFoodOrder")).send());
    // Readiness: the server has received the order (it now waits out the stall).
    let metrics = format!("http://{addr}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = client
            .get(&metrics)
            .send()
            .await
            .expect("scrape")
            .text()
            .await;
        let received = text.expect("body").lines().any(|l| {
            l.starts_with("order_service_received_orders_total{")
                && l.contains("food")
                && !l.ends_with(" 0")
        });
        if received {
            break;
        }
        assert!(Instant::now() < deadline, "the order never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill("-TERM", child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log.try_iter().any(|l| l.contains("draining")) {
        assert!(Instant::now() < deadline, "no drain began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = Instant::now();
    kill("-TERM", child.id());
    let Some(status) = wait_for_exit(&mut child, Duration::from_secs(30)) else {
        let _ = child.kill();
        panic!("the second SIGTERM did not end the process");
    };
    assert_eq!(status.code(), Some(143), "{status:?}");
    assert!(
        second.elapsed() < Duration::from_secs(10),
        "took {:?} after the second signal",
        second.elapsed()
    );
    order.abort();
}

#[test]
fn durations_too_long_for_the_clock_are_refused_at_start_naming_the_flag() {
    for flag in [
        "--drain-timeout",
        "--header-timeout",
        "--body-timeout",
        "--food-latency",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_order-server"))
            .args(["--listen", "127.0.0.1:0", flag, "300000000000y"])
            .output()
            .expect("run order-server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(
            stderr.contains(flag) && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_order-server"))
        .args(["healthcheck", "--timeout", "300000000000y"])
        .output()
        .expect("run healthcheck");
    assert_eq!(out.status.code(), Some(2));
}

/// A raw server that answers every connection with `head` and then `body` forever (or until
/// the client leaves); returns its address and the count of bytes it wrote.
async fn endless(
    head: &'static [u8],
    body: &'static [u8],
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = std::sync::Arc::clone(&written);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let count = std::sync::Arc::clone(&count);
            tokio::spawn(async move {
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).await;
                if s.write_all(head).await.is_err() {
                    return;
                }
                if body.is_empty() {
                    // Keep the connection open, as a kept-alive one.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return;
                }
                // At most 256 MiB, so a client that reads everything is seen, not waited on.
                while count.load(Ordering::Relaxed) < 256 << 20 {
                    if s.write_all(body).await.is_err() {
                        return;
                    }
                    count.fetch_add(body.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (addr, written)
}

fn healthcheck(addr: SocketAddr) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_order-server"))
        .args([
            "healthcheck",
            "--addr",
            &addr.to_string(),
            "--timeout",
            "5s",
        ])
        .output()
        .expect("run healthcheck")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_reads_the_status_line_only() {
    use std::sync::atomic::Ordering;
    const CHUNK: &[u8] = &[b'x'; 65536];
    // An endless chunked body and a 1 GB one: healthy (200), decided without reading them.
    for head in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        &b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n"[..],
    ] {
        let (addr, written) = endless(head, CHUNK).await;
        let out = tokio::task::spawn_blocking(move || healthcheck(addr))
            .await
            .expect("join");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sent = written.load(Ordering::Relaxed);
        assert!(sent < 64 << 20, "the probe read {} MB", sent >> 20);
    }
    // A redirect on a kept-alive connection: unhealthy at once, saying what it saw.
    let (addr, _) = endless(
        b"HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n",
        b"",
    )
    .await;
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || healthcheck(addr))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("302 Found"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "it waited for the body"
    );
}

#[tokio::test]
async fn requests_hyper_refuses_are_counted() {
    let srv = TestServer::start(quiet_config()).await;
    let raw = |bytes: Vec<u8>| async move {
        let mut s = TcpStream::connect(srv.addr).await.expect("connect");
        s.write_all(&bytes).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
        String::from_utf8_lossy(&answer).into_owned()
    };
    let bad = raw(b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec()).await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let mut huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    let too_large = raw(huge).await;
    assert!(too_large.starts_with("HTTP/1.1 431"), "{too_large}");
    let m = srv.scrape().await;
    for status in ["400", "431"] {
        let n = m.sum(
            "http_server_requests_total",
            &[("method", "other"), ("route", "other"), ("status", status)],
        );
        assert_eq!(n, 1.0, "status {status}");
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn fault_requests_are_held_to_the_documented_range_in_plain_words() {
    let srv = TestServer::start_with_admin(quiet_config(), true).await;
    let post = |body: serde_json::Value| srv.client.post(srv.admin_url()).json(&body).send();
    for duration in ["500ms", "1ns", "61m"] {
        let r = post(json!({"kind": "stall", "duration": duration}))
            .await
            .expect("post");
        assert_eq!(r.status(), 400, "{duration}");
        let text = r.text().await.expect("body");
        assert!(text.contains("from 1s to 1h"), "{text}");
    }
    for body in [json!([1, 2, 3, 4, 5]), json!([]), json!("stall")] {
        let r = post(body).await.expect("post");
        assert_eq!(r.status(), 400);
        let text = r.text().await.expect("body");
        assert!(
            !text.contains("FaultRequest") && text.contains("a JSON object with kind, duration"),
            "{text}"
        );
    }
    let r = post(json!({"kind": "stall", "duration": "1s"}))
        .await
        .expect("post");
    assert_eq!(r.status(), 201, "1 s is in range");
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_shutdown_delay_new_connections_are_served_while_not_ready() {
    let (mut child, addr, log) = spawn_server(&["--simulate", "off", "--shutdown-delay", "5s"]);
    kill("-TERM", child.id());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log
        .try_iter()
        .any(|l| l.contains("still serving new connections"))
    {
        assert!(Instant::now() < deadline, "no shutdown delay began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Fresh connections (no pooling): a rolling update's late arrivals.
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    };
    let ready = fresh()
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .expect("readyz during the delay");
    assert_eq!(ready.status(), 503, "not ready during the delay");
    for _ in 0..5 {
        let order = fresh()
            .get(format!("http://{addr}/makeFoodOrder"))
            .send()
            .await
            .expect("a new connection during the delay is accepted");
        assert_eq!(order.status(), 200);
    }
    let status = wait_for_exit(&mut child, Duration::from_secs(60)).expect("never exited");
    assert_eq!(status.code(), Some(0));
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after the delay"
    );
}
