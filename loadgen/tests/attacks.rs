//! Breaks found by attacking the load generator (RELIABILITY.md, "Attacks"), each reproduced
//! against the binary on loopback: its `--metrics-addr` endpoint flooded and held open.

#![cfg(target_os = "linux")]

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn free_addr() -> SocketAddr {
    let l = StdListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    l.local_addr().expect("addr")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Connects to `addr` until it answers (the binary has started listening).
async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_endpoint_speaks_no_h2c_and_shares_renders_under_a_flood() {
    let (target, _stop) = support::order_server().await;
    let metrics = free_addr();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--target",
            &target,
            "--food-rate",
            "20",
            "--clothing-rate",
            "0",
        ])
        .args(["--duration", "30s", "--no-progress"])
        .args(["--metrics-addr", &metrics.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run loadgen");
    wait_listening(metrics).await;

    // An h2c prior-knowledge preface gets no HTTP/2 session (its streams multiplied renders).
    let mut s = TcpStream::connect(metrics).await.expect("connect");
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .expect("preface");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
        "h2c was spoken: {:?}",
        &answer[..answer.len().min(32)]
    );

    // 20 connections, each with 200 scrapes pipelined and nothing read back.
    let pid = child.id();
    let mut flood = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(metrics).await.expect("connect");
        let burst = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
        let _ = tokio::time::timeout(Duration::from_millis(500), s.write_all(&burst)).await;
        flood.push(s);
    }
    let mut peak = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        peak = peak.max(support::rss_bytes(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(flood);
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("metrics flood: loadgen RSS peak {} MB", peak >> 20);
    assert!(peak < 48 << 20, "RSS peaked at {} MB", peak >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_metrics_connections_cannot_starve_the_load_of_file_descriptors() {
    let (target, _stop) = support::order_server().await;
    let metrics = free_addr();
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    // 160 descriptors: enough for the run and the endpoint's 64 connections, not for the
    // 150 idle connections below as well.
    let script = format!(
        "ulimit -n 160 && exec '{}' --target {target} --food-rate 100 --clothing-rate 0 \
         --duration 5s --no-progress --metrics-addr {metrics} --report-file '{}'",
        env!("CARGO_BIN_EXE_loadgen"),
        report.display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run loadgen");
    wait_listening(metrics).await;
    let mut idle = Vec::new();
    for _ in 0..150 {
        if let Ok(s) = TcpStream::connect(metrics).await {
            idle.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fds = open_fds(child.id());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("loadgen ends");
    drop(idle);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    let connect_errors = report["total"]["outcomes"]["connect_error"]
        .as_u64()
        .unwrap_or(0);
    eprintln!(
        "150 idle metrics connections: loadgen held {fds} fds, {connect_errors} connect errors"
    );
    assert_eq!(connect_errors, 0, "load requests starved: {stderr}");
    assert!(fds < 140, "{fds} descriptors open");
}
