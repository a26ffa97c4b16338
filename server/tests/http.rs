//! Routes, status codes and JSON bodies over real HTTP; the fault API on and off; simulated
//! failures; graceful drain in-process and of the real binary on SIGTERM.

mod support;

use std::time::{Duration, Instant};

use order_server::contract as c;
use order_server::Config;
use serde_json::{json, Value};
use support::{quiet_config, TestServer};

/// Waits until the server has begun processing `n` food orders (its received counter): the
/// readiness signal for "the request is in flight".
async fn until_received(srv: &TestServer, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv
        .scrape()
        .await
        .sum(c::ORDERS_RECEIVED, &[("order_type", "food")])
        < n
    {
        assert!(
            Instant::now() < deadline,
            "no food order reached the server"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn order_routes_answer_json_on_get_and_post() {
    let srv = TestServer::start(quiet_config()).await;
    for (path, ty) in [
        ("/makeFoodOrder", "food"),
        ("/makeClothingOrder", "clothing"),
    ] {
        for method in [reqwest::Method::GET, reqwest::Method::POST] {
            let r = srv
                .client
                .request(method.clone(), srv.url(path))
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 200, "{method} {path}");
            assert_eq!(r.headers()["content-type"], "application/json");
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["success"], true);
            assert_eq!(body["order_type"], ty);
            assert!(body["amount"].as_f64().expect("amount") > 0.0);
            assert!(body["order_id"].is_u64());
        }
    }
    srv.shutdown().await;
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() {
    let srv = TestServer::start(quiet_config()).await;
    let r = srv
        .client
        .put(srv.url("/makeFoodOrder"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["success"], false);
    assert!(body["error"]
        .as_str()
        .expect("message")
        .contains("GET, POST"));

    let r = srv
        .client
        .post(srv.url("/metrics"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");

    let r = srv.get("/makeFoodOrder/extra").await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.expect("json");
    assert!(body["error"]
        .as_str()
        .expect("message")
        .contains("/makeFoodOrder/extra"));

    // The fault API does not exist on the public port.
    let r = srv.get("/admin/faults").await;
    assert_eq!(r.status(), 404);

    let big = vec![b'x'; order_server::contract::MAX_BODY_BYTES + 1];
    let r = srv
        .client
        .post(srv.url("/makeFoodOrder"))
        .body(big)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.expect("json");
    assert!(body["error"]
        .as_str()
        .expect("message")
        .contains("larger than"));
    srv.shutdown().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_content_type() {
    let srv = TestServer::start(quiet_config()).await;
    let r = srv.get("/healthz").await;
    assert_eq!(r.status(), 200);
    let r = srv.get("/readyz").await;
    assert_eq!(r.status(), 200);
    let r = srv.get("/metrics").await;
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn simulated_failures_answer_500_and_count_as_failed() {
    let mut cfg = Config::default();
    cfg.sim.error_rate = 0.3;
    cfg.sim.median_latency = [Duration::from_micros(200); 2];
    let srv = TestServer::start(cfg).await;
    let mut failed = 0;
    for _ in 0..200 {
        let r = srv.get("/makeFoodOrder").await;
        if r.status() == 500 {
            failed += 1;
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["success"], false);
        } else {
            assert_eq!(r.status(), 200);
        }
    }
    assert!((30..=90).contains(&failed), "{failed} of 200 at 30%");
    let m = srv.scrape().await;
    let f = m.value(
        c::ORDERS_PROCESSED,
        &[("order_type", "food"), ("status", "failed")],
    );
    assert_eq!(f, Some(f64::from(failed)));
    let s = m.value(
        c::HTTP_REQUESTS,
        &[
            ("method", "GET"),
            ("route", "/makeFoodOrder"),
            ("status", "500"),
        ],
    );
    assert_eq!(s, Some(f64::from(failed)));
    srv.shutdown().await;
}

#[tokio::test]
async fn simulated_latency_is_visible_and_off_switch_removes_it() {
    let mut cfg = Config::default();
    cfg.sim.median_latency = [Duration::from_millis(20); 2];
    cfg.sim.error_rate = 0.0;
    let srv = TestServer::start(cfg).await;
    for _ in 0..20 {
        srv.get("/makeFoodOrder").await;
    }
    let m = srv.scrape().await;
    let sum = m.value(
        &format!("{}_sum", c::PROCESSING_DURATION),
        &[("order_type", "food")],
    );
    let mean = sum.expect("sum") / 20.0;
    assert!((0.010..0.060).contains(&mean), "mean processing {mean}");
    srv.shutdown().await;

    let srv = TestServer::start(quiet_config()).await;
    let t = Instant::now();
    for _ in 0..20 {
        srv.get("/makeFoodOrder").await;
    }
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "no artificial waiting"
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn fault_api_injects_lists_validates_and_clears() {
    let srv = TestServer::start_with_admin(quiet_config(), true).await;
    let admin = srv.admin_url();

    let r = srv
        .client
        .post(&admin)
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert!(body["error"]
        .as_str()
        .expect("reason")
        .contains("invalid fault request"));

    let r = srv
        .client
        .post(&admin)
        .json(
            &json!({"kind": "errors", "order_type": "food", "duration": "30s", "error_rate": 2.0}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .expect("reason")
            .contains("error_rate"),
        "{body}"
    );

    let r = srv
        .client
        .post(&admin)
        .json(
            &json!({"kind": "errors", "order_type": "food", "duration": "30s", "error_rate": 1.0}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);

    for _ in 0..5 {
        assert_eq!(srv.get("/makeFoodOrder").await.status(), 500);
        assert_eq!(srv.get("/makeClothingOrder").await.status(), 200);
    }
    let m = srv.scrape().await;
    let active = |t, k| m.value(c::FAULT_ACTIVE, &[("order_type", t), ("kind", k)]);
    assert_eq!(active("food", "errors"), Some(1.0));
    assert_eq!(active("clothing", "errors"), Some(0.0));
    let failed = m.value(
        c::ORDERS_PROCESSED,
        &[("order_type", "food"), ("status", "failed")],
    );
    assert_eq!(failed, Some(5.0));

    let listed: Value = srv
        .client
        .get(&admin)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["faults"].as_array().expect("list").len(), 1);
    assert_eq!(listed["faults"][0]["kind"], "errors");

    let r = srv.client.delete(&admin).send().await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(srv.get("/makeFoodOrder").await.status(), 200);
    let m = srv.scrape().await;
    assert_eq!(
        m.value(
            c::FAULT_ACTIVE,
            &[("order_type", "food"), ("kind", "errors")]
        ),
        Some(0.0)
    );

    let r = srv.client.patch(&admin).send().await.expect("send");
    assert_eq!(r.status(), 405);
    srv.shutdown().await;
}

#[tokio::test]
async fn latency_and_stall_faults_delay_orders() {
    let srv = TestServer::start_with_admin(quiet_config(), true).await;
    let post = |body: Value| srv.client.post(srv.admin_url()).json(&body).send();
    let r = post(json!({"kind": "latency", "order_type": "clothing", "duration": "30s", "extra_latency": "300ms"}))
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let t = Instant::now();
    assert_eq!(srv.get("/makeClothingOrder").await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    let r = post(json!({"kind": "stall", "order_type": "food", "duration": "1s"}))
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let t = Instant::now();
    let stuck = async {
        let r = srv.client.get(srv.url("/makeFoodOrder")).send().await;
        (r, Instant::now())
    };
    let probe = async {
        until_received(&srv, 1.0).await;
        // Health is not stalled: it answers while the stalled order still waits.
        assert_eq!(srv.get("/healthz").await.status(), 200);
        (Instant::now(), srv.scrape().await)
    };
    let ((resp, order_done), (health_done, during)) = tokio::join!(stuck, probe);
    assert_eq!(resp.expect("stalled order").status(), 200);
    assert!(health_done < order_done, "health waited for the stall");
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(800), "stalled {waited:?}");
    // While stalled the order is received but not processed: the orders-stalled alert's
    // "traffic offered" side.
    let food = [("order_type", "food")];
    assert_eq!(during.value(c::ORDERS_RECEIVED, &food), Some(1.0));
    let processed: f64 = ["success", "failed"]
        .iter()
        .filter_map(|s| {
            during.value(
                c::ORDERS_PROCESSED,
                &[("order_type", "food"), ("status", s)],
            )
        })
        .sum();
    assert_eq!(processed, 0.0);
    let after = srv.scrape().await;
    assert_eq!(after.value(c::ORDERS_RECEIVED, &food), Some(1.0));
    assert_eq!(
        after.value(c::ORDERS_RECEIVED, &[("order_type", "clothing")]),
        Some(1.0)
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn admin_token_is_enforced_when_set() {
    let mut cfg = quiet_config();
    cfg.admin_token = Some("s3cret".into());
    let srv = TestServer::start_with_admin(cfg, true).await;
    let r = srv.client.get(srv.admin_url()).send().await.expect("send");
    assert_eq!(r.status(), 401);
    let r = srv
        .client
        .get(srv.admin_url())
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    let r = srv
        .client
        .get(srv.admin_url())
        .bearer_auth("s3cret")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    srv.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_turns_not_ready() {
    let mut srv = TestServer::start_with_admin(quiet_config(), true).await;
    let r = srv
        .client
        .post(srv.admin_url())
        .json(&json!({"kind": "latency", "duration": "30s", "extra_latency": "700ms"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);

    let slow = tokio::spawn(srv.client.get(srv.url("/makeFoodOrder")).send());
    until_received(&srv, 1.0).await;
    srv.begin_shutdown();
    let deadline = Instant::now() + Duration::from_secs(10);
    while srv.is_ready() {
        assert!(
            Instant::now() < deadline,
            "draining server must not be ready"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // New connections are refused once the listener is closed.
    let fresh = reqwest::Client::new();
    assert!(fresh.get(srv.url("/healthz")).send().await.is_err());

    let r = slow.await.expect("join").expect("slow request completes");
    assert_eq!(r.status(), 200);
    let report = srv.shutdown().await;
    assert_eq!(report.connections_cut, 0);
}

#[tokio::test]
async fn drain_time_bounds_shutdown() {
    let mut cfg = quiet_config();
    cfg.drain_timeout = Duration::from_millis(300);
    let mut srv = TestServer::start_with_admin(cfg, true).await;
    srv.client
        .post(srv.admin_url())
        .json(&json!({"kind": "stall", "duration": "60s"}))
        .send()
        .await
        .expect("send");
    let stuck = tokio::spawn(srv.client.get(srv.url("/makeFoodOrder")).send());
    until_received(&srv, 1.0).await;
    srv.begin_shutdown();
    let t = Instant::now();
    let report = srv.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(report.connections_cut >= 1);
    stuck.abort();
}

#[cfg(unix)]
#[test]
fn binary_exits_zero_on_sigterm_after_draining() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut child = Command::new(env!("CARGO_BIN_EXE_order-server"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--simulate",
            "off",
            "--log-format",
            "json",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn order-server");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("order-server started"))
        .expect("start-up line");
    let line: Value = serde_json::from_str(&started).expect("json log line");
    assert_eq!(line["fields"]["simulate"], false, "{line}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let code = child.wait().expect("wait");
    assert!(code.success(), "exit {code:?}; log: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("SIGTERM")), "{rest:?}");
}

#[test]
fn binary_rejects_bad_flags_with_a_message() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_order-server"))
        .args(["--timezone", "Nowhere/Land", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--timezone"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test]
async fn healthcheck_probe_passes_against_a_live_server_and_fails_otherwise() {
    let srv = TestServer::start(quiet_config()).await;
    order_server::healthcheck::check(srv.addr, "/healthz", Duration::from_secs(2))
        .await
        .expect("healthy");
    // Another path works too (the image probes the load generator's /metrics this way); a
    // path that answers 404 is unhealthy.
    order_server::healthcheck::check(srv.addr, "/metrics", Duration::from_secs(2))
        .await
        .expect("metrics answers");
    let err = order_server::healthcheck::check(srv.addr, "/nope", Duration::from_secs(2))
        .await
        .expect_err("404 is not healthy");
    assert!(err.to_string().contains("404"), "{err}");
    let addr = srv.addr;
    srv.shutdown().await;
    let err = order_server::healthcheck::check(addr, "/healthz", Duration::from_secs(2))
        .await
        .expect_err("nothing listening");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn metrics_off_records_nothing_per_request() {
    let mut cfg = quiet_config();
    cfg.metrics = false;
    let srv = TestServer::start(cfg).await;
    for _ in 0..3 {
        assert_eq!(srv.get("/makeFoodOrder").await.status(), 200);
    }
    let m = srv.scrape().await;
    let ok = m.value(
        c::ORDERS_PROCESSED,
        &[("order_type", "food"), ("status", "success")],
    );
    assert_eq!(ok, Some(0.0), "the baseline must not record");
    assert_eq!(m.sum(c::HTTP_REQUESTS, &[]), 0.0);
    srv.shutdown().await;
}
