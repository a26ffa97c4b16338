//! Breaks found by attacking the server (RELIABILITY.md, "Attacks"), each reproduced against
//! the server binary on loopback: the h2c scrape flood, stalls that outlive their clearing,
//! half-closed requests, a second signal during the drain, absurd durations, a lying
//! healthcheck target, and hyper's own rejections going uncounted.

#![cfg(target_os = "linux")]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::{rss_bytes, spawn_server};

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
