//! The live control API (`--control-addr`) against the real order server on loopback, through
//! the load generator binary: a rate change measured at the server on both executors (the
//! paced HTTP/1.1 engine and the tokio path over HTTP/2), with no catch-up burst; faults set
//! and cleared through it; a bundled scenario started through it, after which the rates set
//! before come back; the stop; and the attacks it must refuse.

#![cfg(target_os = "linux")]

mod support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use order_server::contract as c;
use order_server::exposition::Exposition;
use serde_json::{json, Value};
use tokio::net::TcpStream;

const TOKEN: &str = "test-token-7f3a";

fn free_addr() -> SocketAddr {
    let l = StdListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    l.local_addr().expect("addr")
}

/// Connects to `addr` until it answers (the binary has started listening).
async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Orders the server has processed of `order_type` and `status` ("" for any).
async fn processed(server: &support::TestServer, order_type: &str, status: &str) -> f64 {
    let text = server.scrape_text().await;
    let mut labels = vec![("order_type", order_type)];
    if !status.is_empty() {
        labels.push(("status", status));
    }
    Exposition::parse(&text).map_or(0.0, |m| m.sum(c::ORDERS_PROCESSED, &labels))
}

/// The load generator steering `target` from `control`, with these extra arguments; JSON
/// report on standard output.
fn loadgen(target: &str, control: SocketAddr, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--target",
            target,
            "--clothing-rate",
            "0",
            "--duration",
            "60s",
        ])
        .args(["--no-progress", "--output", "json", "--drain", "2s"])
        .args([
            "--control-addr",
            &control.to_string(),
            "--control-token",
            TOKEN,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run loadgen")
}

/// A call to the control API: its status and JSON body.
async fn call(control: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client
        .request(m, format!("http://{control}{path}"))
        .bearer_auth(TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("control API answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Stops the run through the API and reads its report.
async fn stop_and_report(control: SocketAddr, mut child: Child) -> (Value, String) {
    let (status, _) = call(control, "POST", "/api/v1/stop", Some(json!({}))).await;
    assert_eq!(status, 202);
    let exit = support::wait_for_exit(&mut child, Duration::from_secs(30)).expect("exits");
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        exit.success() || exit.code() == Some(1),
        "{exit:?}: {stderr}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    (report, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_change_is_measured_at_the_server_with_no_burst_on_both_executors() {
    for executor in ["engine", "http2"] {
        let (target, server) = support::order_server().await;
        let control = free_addr();
        let mut extra = vec!["--food-rate", "50", "--arrivals", "poisson", "--seed", "3"];
        if executor == "http2" {
            extra.push("--http2");
        }
        let child = loadgen(&target, control, &extra);
        wait_listening(control).await;
        tokio::time::sleep(Duration::from_secs(2)).await;

        let (status, state) =
            call(control, "PUT", "/api/v1/rates", Some(json!({"food": 200}))).await;
        let changed = Instant::now();
        assert_eq!(status, 200, "{executor}: {state}");
        assert_eq!(
            state["rates"]["food"], 200.0,
            "{executor}: the answer shows the change"
        );
        assert_eq!(
            state["rates"]["clothing"], 0.0,
            "{executor}: an absent type is unchanged"
        );

        // The server's count, read as fast as it renders, for 6.5 s after the change.
        let mut samples = Vec::new();
        while changed.elapsed() < Duration::from_millis(6500) {
            let n = processed(&server, "food", "").await;
            samples.push((changed.elapsed().as_secs_f64(), n));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let at = |t: f64| {
            samples
                .iter()
                .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
                .map_or(0.0, |s| s.1)
        };
        // From 1 s to 6 s after the change, 1000 orders are due at 200/s (Poisson: sd 32).
        let n = at(6.0) - at(1.0);
        assert!(
            (n - 1000.0).abs() <= 5.0 * 1000f64.sqrt(),
            "{executor}: {n} orders in 5 s"
        );
        // No ~100 ms window after the change holds more than rate x width + 6 sd (+1 for a
        // count read mid-window).
        let mut worst = 0.0f64;
        let mut i = 0;
        while i < samples.len() {
            let j = (i..samples.len())
                .find(|&j| samples[j].0 - samples[i].0 >= 0.1)
                .unwrap_or(samples.len() - 1);
            if j == i {
                break;
            }
            let (dt, k) = (samples[j].0 - samples[i].0, samples[j].1 - samples[i].1);
            let limit = 200.0 * dt + 6.0 * (200.0 * dt).sqrt() + 1.0;
            assert!(
                k <= limit,
                "{executor}: {k} orders in {dt:.3} s from {:.3} s",
                samples[i].0
            );
            worst = worst.max(k / (200.0 * dt));
            i = j;
        }
        eprintln!("{executor}: {n} orders from 1 s to 6 s after the change (1000 asked); busiest ~100 ms window {worst:.2}x the rate");

        let (report, _) = stop_and_report(control, child).await;
        assert_eq!(report["stopped_by"], "interrupted", "{executor}");
        let events = report["events"].as_array().expect("events");
        let kinds: Vec<(&str, &str)> = events
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap_or(""),
                    e["source"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(kinds, [("rates", "api"), ("stop", "api")], "{executor}");
        assert!(events[0]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("food 50/s → 200/s"));
        assert!(report["phases"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "live")));
        drop(server);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_a_scenario_through_the_api_and_the_rates_come_back() {
    let server = support::TestServer::start_with_admin(support::quiet_config(), true).await;
    let target = format!("http://{}", server.addr);
    let control = free_addr();
    // The fault API's base URL, as --admin-url takes it.
    let admin = server.admin_url().replace("/admin/faults", "/");
    let child = loadgen(
        &target,
        control,
        &["--food-rate", "40", "--admin-url", &admin],
    );
    wait_listening(control).await;

    // Every food order fails while the fault is on; clearing it ends the failures.
    let fault =
        json!({"kind": "errors", "order_type": "food", "error_rate": 1.0, "duration": "1m"});
    let (status, body) = call(control, "POST", "/api/v1/faults", Some(fault)).await;
    assert_eq!(status, 201, "the server's own answer: {body}");
    let before = processed(&server, "food", "failed").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = processed(&server, "food", "failed").await;
    assert!(
        during - before >= 20.0,
        "failures while the fault is on: {before} -> {during}"
    );
    let (status, state) = call(control, "GET", "/api/v1/state", None).await;
    assert_eq!(status, 200);
    assert_eq!(state["faults"].as_array().map(Vec::len), Some(1), "{state}");
    let (status, _) = call(control, "DELETE", "/api/v1/faults", None).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cleared = processed(&server, "food", "failed").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        processed(&server, "food", "failed").await,
        cleared,
        "no failure after DELETE"
    );

    // error-burst 120 times faster: 1 s at 20/10, 2.5 s with 30 % of food failing, 1.5 s.
    let (status, state) = call(control, "PUT", "/api/v1/rates", Some(json!({"food": 30}))).await;
    assert_eq!(status, 200, "{state}");
    let (status, state) = call(
        control,
        "POST",
        "/api/v1/scenario",
        Some(json!({"name": "error-burst", "speed": 120})),
    )
    .await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["scenario"]["name"], "error-burst");
    assert_eq!(state["rates"]["food"], 20.0);
    assert_eq!(state["rates"]["clothing"], 10.0);
    let (status, body) = call(
        control,
        "POST",
        "/api/v1/scenario",
        Some(json!({"name": "outage"})),
    )
    .await;
    assert_eq!(status, 409, "one scenario at a time: {body}");
    let failed = processed(&server, "food", "failed").await;
    tokio::time::sleep(Duration::from_millis(5500)).await;
    assert!(
        processed(&server, "food", "failed").await > failed,
        "the burst's faults ran"
    );
    let (_, state) = call(control, "GET", "/api/v1/state", None).await;
    assert_eq!(state["scenario"], Value::Null, "{state}");
    assert_eq!(
        state["rates"]["food"], 30.0,
        "the rates set before it came back"
    );
    assert_eq!(state["rates"]["clothing"], 0.0);
    let clothing = processed(&server, "clothing", "").await;
    assert!(
        clothing >= 5.0,
        "the scenario's clothing orders reached the server: {clothing}"
    );

    let (report, stderr) = stop_and_report(control, child).await;
    let kinds: Vec<&str> = report["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "fault",
            "faults_cleared",
            "rates",
            "scenario",
            "fault",
            "stop"
        ],
        "{}",
        report["events"]
    );
    let text = report.to_string();
    assert!(
        !text.contains(TOKEN) && !stderr.contains(TOKEN),
        "the token leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_are_refused_and_bounded() {
    let (target, _server) = support::order_server().await;
    let control = free_addr();
    let metrics = free_addr();
    let mut child = loadgen(
        &target,
        control,
        &["--food-rate", "20", "--metrics-addr", &metrics.to_string()],
    );
    wait_listening(control).await;
    let url = format!("http://{control}/api/v1/rates");
    let client = reqwest::Client::new();
    let put = |auth: Option<&str>, ctype: &str, body: Vec<u8>| {
        let mut r = client.put(&url).header("content-type", ctype).body(body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    let ok = br#"{"food": 10}"#.to_vec();
    let status = |r: reqwest::Result<reqwest::Response>| r.expect("answer").status().as_u16();
    assert_eq!(
        status(put(None, "application/json", ok.clone()).await),
        401,
        "no token"
    );
    assert_eq!(
        status(put(Some("Bearer nope"), "application/json", ok.clone()).await),
        401,
        "wrong token"
    );
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        status(
            put(
                Some(&bearer),
                "application/x-www-form-urlencoded",
                b"food=10".to_vec()
            )
            .await
        ),
        415,
        "a form"
    );
    assert_eq!(
        status(put(Some(&bearer), "text/plain", ok.clone()).await),
        415,
        "text/plain"
    );
    assert_eq!(
        status(put(Some(&bearer), "application/json", vec![b' '; 1 << 20]).await),
        413,
        "1 MB"
    );
    for bad in [
        r#"{"food": -1}"#,
        r#"{"food": "NaN"}"#,
        r#"{"food": 200000}"#,
        r#"{"fod": 1}"#,
        "[1]",
        "{",
    ] {
        let r = put(Some(&bearer), "application/json", bad.as_bytes().to_vec())
            .await
            .expect("answer");
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        let body: Value = r.json().await.expect("JSON error");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{bad}: {body}"
        );
    }
    let cross = client
        .post(format!("http://{control}/api/v1/stop"))
        .header("origin", "http://evil.example")
        .header("authorization", &bearer)
        .send()
        .await;
    assert_eq!(status(cross), 403, "another site's page");
    let page = client
        .get(format!("http://{control}/"))
        .send()
        .await
        .expect("page");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap_or("")
        .contains("default-src 'none'"));
    let page = page.text().await.expect("page text");
    assert!(page.contains("loadgen: live control") && !page.contains(TOKEN));
    let scrape = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .expect("metrics");
    let text = scrape.text().await.expect("text");
    assert!(!text.contains(TOKEN));
    assert!(text.contains("loadgen_control_events_total"));

    // 1,000 idle connections: the file descriptors and memory stay bounded.
    let pid = child.id();
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let (fds_before, rss_before) = (fds(), support::rss_bytes(pid));
    let mut idle = Vec::new();
    for _ in 0..1000 {
        // Past the listen backlog a connect waits for SYN retries: give up on those.
        let connect = tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(control));
        if let Ok(Ok(s)) = connect.await {
            idle.push(s);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (fds_during, rss_during) = (fds(), support::rss_bytes(pid));
    assert!(
        fds_during <= fds_before + 64 + 8,
        "fds {fds_before} -> {fds_during} with 1000 idle connections"
    );
    assert!(
        rss_during < rss_before + (32 << 20),
        "RSS {rss_before} -> {rss_during}"
    );
    // Still answering (the idle ones wait in the backlog or get closed by the watchdog).
    drop(idle);
    let (code, _) = call(control, "GET", "/api/v1/state", None).await;
    assert_eq!(code, 200);
    eprintln!(
        "1000 idle connections: fds {fds_before} -> {fds_during}, RSS {rss_before} -> {rss_during}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_non_loopback_address_without_a_token_refuses_to_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "--requests",
            "1",
            "--control-addr",
            "0.0.0.0:0",
            "--no-progress",
        ])
        .output()
        .expect("run loadgen");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--control-token") && err.contains("0.0.0.0"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_changes_are_checked_one_at_a_time_and_absurd_rates_do_no_harm() {
    let (target, _server) = support::order_server().await;
    let control = free_addr();
    let child = loadgen(&target, control, &["--food-rate", "1", "--max-rate", "100"]);
    wait_listening(control).await;
    // Two changes that each fit under --max-rate but not together: one is refused.
    let (a, b) = tokio::join!(
        call(control, "PUT", "/api/v1/rates", Some(json!({"food": 90}))),
        call(
            control,
            "PUT",
            "/api/v1/rates",
            Some(json!({"clothing": 90}))
        ),
    );
    let mut codes = [a.0, b.0];
    codes.sort_unstable();
    assert_eq!(codes, [200, 400], "{a:?} {b:?}");
    // Four scenarios at once: one runs, three are told one is running.
    let start = || {
        call(
            control,
            "POST",
            "/api/v1/scenario",
            Some(json!({"name": "flash-sale", "speed": 60})),
        )
    };
    let (s1, s2, s3, s4) = tokio::join!(start(), start(), start(), start());
    let mut codes = [s1.0, s2.0, s3.0, s4.0];
    codes.sort_unstable();
    assert_eq!(codes, [200, 409, 409, 409]);
    let (code, _) = call(control, "DELETE", "/api/v1/scenario", None).await;
    assert_eq!(code, 200);
    // A rate so small its next request would be due past any clock: the run waits on.
    let (code, state) = call(
        control,
        "PUT",
        "/api/v1/rates",
        Some(json!({"food": 1e-300, "clothing": 0})),
    )
    .await;
    assert_eq!(code, 200, "{state}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, state) = call(control, "GET", "/api/v1/state", None).await;
    assert_eq!((code, &state["running"]), (200, &json!(true)), "{state}");
    let (code, state) = call(control, "PUT", "/api/v1/rates", Some(json!({"food": 5}))).await;
    assert_eq!(code, 200, "{state}");
    let (report, _) = stop_and_report(control, child).await;
    assert_eq!(report["stopped_by"], "interrupted");
    assert!(
        report["total"]["completed"].as_u64().unwrap_or(0) > 0,
        "{}",
        report["total"]
    );
}
