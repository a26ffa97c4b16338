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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_comes_before_the_linger_and_sigterm_ends_the_linger() {
    let (target, _stop) = support::order_server().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    let mut child = lingering_run(&target, &[], &report);
    // Readiness: the whole report is in the file while the linger runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let written = loop {
        let text = std::fs::read_to_string(&report).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            break v;
        }
        assert!(Instant::now() < deadline, "no report before the linger");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(written["stopped_by"], "duration");
    assert_eq!(child.try_wait().expect("try_wait"), None, "still lingering");
    let status = sigterm_and_wait(&mut child);
    assert_eq!(status.code(), Some(0));
    let again: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert_eq!(again, written, "the report file is whole and unchanged");
}

#[test]
fn inputs_that_would_fail_after_the_run_are_refused_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let missing = dir.path().join("missing/report.json");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--report-file".into(), missing.display().to_string()],
            "--report-file",
        ),
        (
            vec!["--report-file".into(), dir.path().display().to_string()],
            "--report-file",
        ),
        (
            vec!["--report-file".into(), "/proc/version".into()],
            "--report-file",
        ),
        (
            vec!["--report-html".into(), missing.display().to_string()],
            "--report-html",
        ),
        (
            vec!["--scenario".into(), dir.path().display().to_string()],
            "a directory",
        ),
        (
            vec!["--scenario".into(), fifo.display().to_string()],
            "not a regular file",
        ),
        (
            vec!["--max-error-ratio".into(), "-0".into()],
            "between 0 and 1",
        ),
        (
            vec!["--max-error-ratio".into(), "-0.5".into()],
            "between 0 and 1",
        ),
        (vec!["--food-rate".into(), "-1".into()], "--food-rate"),
        (
            vec!["--timeout".into(), "300000000000y".into()],
            "--timeout",
        ),
        (
            vec!["--duration".into(), "300000000000y".into()],
            "--duration",
        ),
        (vec!["--drain".into(), "300000000000y".into()], "--drain"),
        (
            vec!["--metrics-linger".into(), "300000000000y".into()],
            "--metrics-linger",
        ),
        (
            vec!["--target".into(), "http://user:pw@127.0.0.1:9".into()],
            "Authorization: Basic",
        ),
    ];
    for (args, says) in cases {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(&args)
            .args(["--duration", "30s", "--no-progress"])
            .output()
            .expect("run loadgen");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{args:?} ran the 30 s run before failing"
        );
    }
    // A good --report-file beside a bad --report-html: the file it created is removed again.
    let json = dir.path().join("fine.json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("--report-file")
        .arg(&json)
        .arg("--report-html")
        .arg(&missing)
        .args(["--duration", "30s", "--no-progress"])
        .output()
        .expect("run loadgen");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !json.exists(),
        "the --report-file the check made is left behind"
    );
}

#[test]
fn a_tiny_rate_ends_with_its_run() {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--food-rate",
            "1e-12",
            "--clothing-rate",
            "0",
            "--duration",
            "2s",
        ])
        .args(["--no-progress", "--output", "json"])
        .output()
        .expect("run loadgen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_the_drain_ends_the_run_with_its_report_and_no_linger() {
    // A target that accepts and never answers: the run's end leaves requests to drain.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = format!("http://{}", hole.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let report = dir.path().join("report.json");
    let mut child = lingering_run(&target, &["--drain", "4s"], &report);
    // The run ends at 1 s and drains until 5 s: the signal lands in the drain.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = sigterm_and_wait(&mut child);
    let mut stderr = String::new();
    use std::io::Read;
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("json");
    assert!(
        written["total"]["sent"].as_u64().unwrap_or(0) > 0,
        "{written}"
    );
    assert_ne!(status.code(), Some(101), "{stderr}");
}

/// The binary for a 1 s run against `target` with a 10-minute `--metrics-linger`, its report
/// in `report`, and `extra` flags.
fn lingering_run(target: &str, extra: &[&str], report: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--target",
            target,
            "--food-rate",
            "20",
            "--clothing-rate",
            "0",
        ])
        .args([
            "--duration",
            "1s",
            "--no-progress",
            "--metrics-linger",
            "10m",
        ])
        .args(["--metrics-addr", &free_addr().to_string()])
        .args(extra)
        .arg("--report-file")
        .arg(report)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run loadgen")
}

/// Sends SIGTERM and waits for the exit; the linger must not hold the process.
fn sigterm_and_wait(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    support::wait_for_exit(child, Duration::from_secs(60))
        .expect("SIGTERM did not end the run: the linger held it")
}
