//! The load generator binary against targets that misbehave: killed and restarted mid-run,
//! slower than --timeout, resetting connections, not resolving; and Ctrl-C, once (stop and
//! report) and twice (exit at once). In every case: no panic, a report when a run happened,
//! and the documented exit code (0 ok, 1 threshold missed, 2 usage error or target never
//! reached, 130 second Ctrl-C).

#![cfg(unix)]

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use order_server::contract as c;
use order_server::exposition::Exposition;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An order server on `listener`, from the workspace's test kit.
fn serve(listener: TcpListener, cfg: order_server::Config) -> support::TestServer {
    support::TestServer::start_on(listener, None, cfg)
}

/// Orders the order server at `addr` has processed, from its `/metrics`.
async fn processed(addr: SocketAddr) -> f64 {
    let Ok(resp) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    Exposition::parse(&text).map_or(0.0, |m| m.sum(c::ORDERS_PROCESSED, &[]))
}

/// Waits until `check` holds, polling every 20 ms; panics with `what` after 20 s.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The load generator's own counter of `outcome` at its metrics address.
async fn generator_outcomes(metrics: SocketAddr, outcome: &str) -> f64 {
    let Ok(resp) = reqwest::get(format!("http://{metrics}/metrics")).await else {
        return 0.0;
    };
    let text = resp.text().await.unwrap_or_default();
    Exposition::parse(&text).map_or(0.0, |m| {
        m.sum("loadgen_requests_total", &[("outcome", outcome)])
    })
}

fn quiet() -> order_server::Config {
    support::quiet_config()
}

/// Runs the binary (in a blocking thread) with a JSON report file; returns its output and
/// the parsed report, if one was written.
async fn loadgen(args: Vec<String>) -> (Output, Option<Value>) {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = dir.path().join("report.json");
        let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(&args)
            .arg("--report-file")
            .arg(&report)
            .arg("--no-progress")
            .output()
            .expect("run loadgen");
        let parsed = std::fs::read_to_string(&report)
            .ok()
            .map(|t| serde_json::from_str(&t).expect("the report file is JSON"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        (out, parsed)
    })
    .await
    .expect("blocking task")
}

fn outcome(report: &Value, class: &str) -> u64 {
    report["total"]["outcomes"][class].as_u64().unwrap_or(0)
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_killed_and_restarted_mid_run_is_counted_and_traffic_resumes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let stop = serve(listener, quiet());
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let run = tokio::spawn(loadgen(args(&[
        "--target",
        &format!("http://{addr}"),
        "--food-rate",
        "40",
        "--clothing-rate",
        "20",
        "--duration",
        "6s",
        "--timeout",
        "1s",
        "--output",
        "json",
        "--metrics-addr",
        &metrics.to_string(),
    ])));
    until("the first server to serve 40 orders", || async {
        processed(addr).await >= 40.0
    })
    .await;
    stop.shutdown().await;
    until("the generator to count 30 failed connections", || async {
        generator_outcomes(metrics, "connect_error").await
            + generator_outcomes(metrics, "other").await
            >= 30.0
    })
    .await;
    // Same address again: the "restarted" server.
    let listener = TcpListener::bind(addr).await.expect("rebind the same port");
    let stop = serve(listener, quiet());
    until("the restarted server to serve 30 orders", || async {
        processed(addr).await >= 30.0
    })
    .await;
    let (out, report) = run.await.expect("task");
    stop.shutdown().await;
    let report = report.expect("report written");
    let stdout: Value = serde_json::from_slice(&out.stdout).expect("JSON report on stdout");
    assert_eq!(stdout, report, "stdout and --report-file agree");
    assert_eq!(out.status.code(), Some(0), "{report}");
    let ok = outcome(&report, "2xx");
    let down = outcome(&report, "connect_error") + outcome(&report, "other");
    // Served by the first server and by the restarted one, and counted down in between.
    assert!(ok >= 70, "{report}");
    assert!(down >= 30, "{report}");
    assert_eq!(
        report["total"]["completed"].as_u64(),
        report["total"]["sent"].as_u64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_slower_than_the_timeout_gives_timeouts_and_a_missed_threshold() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut cfg = order_server::Config::default();
    cfg.sim.median_latency = [Duration::from_secs(2); 2];
    cfg.sim.sigma = 0.0;
    cfg.sim.error_rate = 0.0;
    let stop = serve(listener, cfg);
    let t = Instant::now();
    let (out, report) = loadgen(args(&[
        "--target",
        &format!("http://{addr}"),
        "--food-rate",
        "10",
        "--clothing-rate",
        "10",
        "--duration",
        "1s",
        "--timeout",
        "300ms",
        "--max-error-ratio",
        "0.1",
    ]))
    .await;
    stop.shutdown().await;
    let report = report.expect("report written");
    assert_eq!(out.status.code(), Some(1), "threshold missed: {report}");
    assert_eq!(
        outcome(&report, "timeout"),
        report["total"]["sent"].as_u64().unwrap_or(0)
    );
    assert!(outcome(&report, "timeout") >= 12, "{report}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "requests were not cut at the timeout: {:?}",
        t.elapsed()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("threshold"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_resetting_connections_is_counted_without_a_crash() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accept, then close with SO_LINGER 0: the client sees a connection reset.
    let resetter = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                break;
            };
            // A zero linger is how a socket sends RST instead of FIN on close.
            let _ = nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::Linger,
                &nix::libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                },
            );
            drop(s);
        }
    });
    let (out, report) = loadgen(args(&[
        "--target",
        &format!("http://{addr}"),
        "--food-rate",
        "20",
        "--clothing-rate",
        "20",
        "--duration",
        "1s",
    ]))
    .await;
    resetter.abort();
    let report = report.expect("report written");
    let sent = report["total"]["sent"].as_u64().unwrap_or(0);
    assert!(sent >= 35, "{report}");
    assert_eq!(outcome(&report, "2xx"), 0);
    let failed = outcome(&report, "other") + outcome(&report, "connect_error");
    assert_eq!(failed, sent, "{report}");
    // Exit code by the rules: 2 if nothing ever connected, else 0 (no thresholds given).
    let expected = if outcome(&report, "connect_error") == sent {
        2
    } else {
        0
    };
    assert_eq!(out.status.code(), Some(expected), "{report}");
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_one_clear_error() {
    // A 64-character label is not a valid DNS name, so the resolver refuses it locally
    // without asking any name server.
    let host = format!("{}.invalid", "a".repeat(64));
    let t = Instant::now();
    let (out, report) = loadgen(args(&[
        "--target",
        &format!("http://{host}:5001"),
        "--duration",
        "5s",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(report.is_none(), "no run, no report");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot resolve host"), "{stderr}");
    assert!(stderr.contains("--target"), "{stderr}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

/// A server that accepts and reads but never answers.
/// A server that accepts and reads but never answers: its address, its task, and how many
/// requests it has read.
async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let read = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&read);
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                break;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                let mut buf = [0u8; 1024];
                while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, task, read)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_accepts_but_never_answers_is_not_reported_as_refusing() {
    let (addr, hole, _) = black_hole().await;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["--target", &format!("http://{addr}")])
            .args(["--food-rate", "20", "--clothing-rate", "0"])
            .args(["--duration", "500ms", "--drain", "300ms", "--no-progress"])
            .output()
    })
    .await
    .expect("task")
    .expect("run loadgen");
    hole.abort();
    assert_eq!(out.status.code(), Some(2));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    for text in [&stdout, &stderr] {
        assert!(
            text.contains("got no answer before the drain ran out"),
            "{text}"
        );
        assert!(!text.contains("failed to connect"), "{text}");
    }
}

fn sigint(pid: u32) {
    let ok = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_ctrl_c_stops_and_reports_second_exits_at_once() {
    // Once: against a healthy server, the run stops early and reports.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = serve(listener, quiet());
    let child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--target",
            &format!("http://{addr}"),
            "--food-rate",
            "20",
            "--output",
            "json",
            "--no-progress",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    until("15 orders served", || async {
        processed(addr).await >= 15.0
    })
    .await;
    sigint(child.id());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("task")
        .expect("wait");
    stop.shutdown().await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["stopped_by"], "interrupted");
    assert!(outcome(&report, "2xx") >= 15, "{report}");

    // Twice: requests hang on a black hole, the first Ctrl-C starts a drain that would take
    // up to --drain; the second exits at once with 130.
    let (addr, hole, read) = black_hole().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--target",
            &format!("http://{addr}"),
            "--food-rate",
            "20",
            "--drain",
            "20s",
            "--no-progress",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    until("requests hanging in the black hole", || {
        let n = read.load(Ordering::SeqCst);
        async move { n >= 3 }
    })
    .await;
    sigint(child.id());
    // The drain has begun once the generator says so.
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut said = String::new();
    while !said.contains("stopping:") {
        let mut line = String::new();
        if stderr.read_line(&mut line).expect("stderr") == 0 {
            panic!("the generator exited after one Ctrl-C: {said}");
        }
        said.push_str(&line);
    }
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still draining after one Ctrl-C"
    );
    let t = Instant::now();
    sigint(child.id());
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a second Ctrl-C did not exit at once"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    hole.abort();
    assert_eq!(status.code(), Some(130));
    let mut rest = String::new();
    use std::io::Read;
    stderr.read_to_string(&mut rest).expect("read");
    let stderr = said + &rest;
    assert!(stderr.contains("aborted"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
