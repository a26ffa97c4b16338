//! The metric contract as seen by a scraper: names, types, HELP, labels, buckets, zero
//! series at start-up, food/clothing separation, the daily reset and bounded cardinality.
//! promtool's own lint of a live scrape is in `checks/tests/exposition.rs`, with the other
//! checks that run external tools.

mod support;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use order_server::contract as c;
use support::{quiet_config, TestServer};

#[tokio::test]
async fn every_contract_metric_is_exported_with_help_and_type_from_start_up() {
    let srv = TestServer::start(quiet_config()).await;
    let m = srv.scrape().await;
    let expected = [
        (c::ORDERS_PROCESSED, "counter"),
        (c::ORDERS_RECEIVED, "counter"),
        (c::ORDERS_TODAY, "gauge"),
        (c::ORDER_AMOUNT, "histogram"),
        (c::PROCESSING_DURATION, "histogram"),
        (c::ITEMS_PER_ORDER, "summary"),
        (c::HTTP_REQUESTS, "counter"),
        (c::HTTP_DURATION, "histogram"),
        (c::HTTP_IN_FLIGHT, "gauge"),
        (c::BUILD_INFO, "gauge"),
        (c::FAULT_ACTIVE, "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("process_threads", "gauge"),
    ];
    for (name, ty) in expected {
        assert_eq!(
            m.types.get(name).map(String::as_str),
            Some(ty),
            "TYPE of {name}"
        );
        let help = m.help.get(name).map(String::as_str).unwrap_or_default();
        assert!(help.len() > 10, "HELP of {name}: {help:?}");
    }
    // All four seed series exist at 0 before any order.
    for t in ["food", "clothing"] {
        for s in ["success", "failed"] {
            let v = m.value(c::ORDERS_PROCESSED, &[("order_type", t), ("status", s)]);
            assert_eq!(v, Some(0.0), "{t}/{s}");
        }
        assert_eq!(m.value(c::ORDERS_TODAY, &[("order_type", t)]), Some(0.0));
        assert_eq!(m.value(c::ORDERS_RECEIVED, &[("order_type", t)]), Some(0.0));
        for kind in ["errors", "latency", "stall"] {
            assert_eq!(
                m.value(c::FAULT_ACTIVE, &[("order_type", t), ("kind", kind)]),
                Some(0.0)
            );
        }
        let count = format!("{}_count", c::PROCESSING_DURATION);
        assert_eq!(m.value(&count, &[("order_type", t)]), Some(0.0));
    }
    // The 5xx series that error-ratio queries divide by exist before the first error.
    let v = m.value(
        c::HTTP_REQUESTS,
        &[
            ("method", "GET"),
            ("route", "/makeFoodOrder"),
            ("status", "500"),
        ],
    );
    assert_eq!(v, Some(0.0));
    assert_eq!(
        m.value(c::HTTP_IN_FLIGHT, &[]),
        Some(1.0),
        "the scrape itself"
    );
    let info = m.select(c::BUILD_INFO, &[]).next().expect("build info");
    assert_eq!(info.value, 1.0);
    assert_eq!(info.labels["version"], env!("CARGO_PKG_VERSION"));
    // The commit this build was given, or no label at all (never a made-up "unknown").
    assert_eq!(
        info.labels.get("commit").map(String::as_str),
        Some(order_server::COMMIT).filter(|c| !c.is_empty())
    );
    srv.shutdown().await;
}

#[tokio::test]
async fn histograms_have_the_contract_buckets_and_the_summary_has_quantiles() {
    let srv = TestServer::start(quiet_config()).await;
    srv.get("/makeFoodOrder").await;
    srv.get("/makeClothingOrder").await;
    let m = srv.scrape().await;
    let edges = |name: &str| -> Vec<f64> {
        let mut v: Vec<f64> = m
            .select(&format!("{name}_bucket"), &[("order_type", "food")])
            .map(|s| s.labels["le"].parse::<f64>().expect("le"))
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let mut amount = c::ORDER_AMOUNT_BUCKETS.to_vec();
    amount.push(f64::INFINITY);
    assert_eq!(edges(c::ORDER_AMOUNT), amount);
    let latency = edges(c::PROCESSING_DURATION);
    assert!(latency.contains(&c::LATENCY_SLO_SECONDS), "{latency:?}");
    assert_eq!(latency.len(), c::LATENCY_BUCKETS.len() + 1);
    let quantiles: Vec<_> = m
        .select(c::ITEMS_PER_ORDER, &[("order_type", "food")])
        .filter_map(|s| s.labels.get("quantile").cloned())
        .collect();
    assert!(quantiles.iter().any(|q| q == "0.99"), "{quantiles:?}");
    srv.shutdown().await;
}

#[tokio::test]
async fn clothing_orders_update_clothing_series_only() {
    let srv = TestServer::start(quiet_config()).await;
    for _ in 0..3 {
        assert_eq!(srv.get("/makeFoodOrder").await.status(), 200);
    }
    for _ in 0..2 {
        let r = srv
            .client
            .post(srv.url("/makeClothingOrder"))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 200);
    }
    let m = srv.scrape().await;
    let ok = |t| {
        m.value(
            c::ORDERS_PROCESSED,
            &[("order_type", t), ("status", "success")],
        )
    };
    assert_eq!(ok("food"), Some(3.0));
    assert_eq!(ok("clothing"), Some(2.0));
    // The guide's bug: the clothing handler set the food gauge.
    assert_eq!(
        m.value(c::ORDERS_TODAY, &[("order_type", "food")]),
        Some(3.0)
    );
    assert_eq!(
        m.value(c::ORDERS_TODAY, &[("order_type", "clothing")]),
        Some(2.0)
    );
    let amount_count = format!("{}_count", c::ORDER_AMOUNT);
    assert_eq!(
        m.value(&amount_count, &[("order_type", "clothing")]),
        Some(2.0)
    );
    let req = |method, route| {
        m.value(
            c::HTTP_REQUESTS,
            &[("method", method), ("route", route), ("status", "200")],
        )
    };
    assert_eq!(req("GET", "/makeFoodOrder"), Some(3.0));
    assert_eq!(req("POST", "/makeClothingOrder"), Some(2.0));
    srv.shutdown().await;
}

#[tokio::test]
async fn daily_gauge_resets_at_midnight_of_the_configured_zone() {
    // 2026-11-25 23:59:00 in Asia/Shanghai (UTC+8).
    let start = Utc
        .with_ymd_and_hms(2026, 11, 25, 15, 59, 0)
        .single()
        .expect("valid")
        .timestamp();
    let now = Arc::new(AtomicI64::new(start));
    let mut cfg = quiet_config();
    let clock = Arc::clone(&now);
    cfg.clock = Arc::new(move || {
        Utc.timestamp_opt(clock.load(Ordering::SeqCst), 0)
            .single()
            .expect("valid")
    });
    let srv = TestServer::start(cfg).await;
    for _ in 0..4 {
        srv.get("/makeClothingOrder").await;
    }
    let m = srv.scrape().await;
    assert_eq!(
        m.value(c::ORDERS_TODAY, &[("order_type", "clothing")]),
        Some(4.0)
    );

    now.store(start + 61, Ordering::SeqCst); // 00:00:01 the next day
    let m = srv.scrape().await;
    assert_eq!(
        m.value(c::ORDERS_TODAY, &[("order_type", "clothing")]),
        Some(0.0),
        "reset without any new order"
    );
    srv.get("/makeClothingOrder").await;
    let m = srv.scrape().await;
    assert_eq!(
        m.value(c::ORDERS_TODAY, &[("order_type", "clothing")]),
        Some(1.0)
    );
    // The counter is monotonic and does not reset.
    let ok = m.value(
        c::ORDERS_PROCESSED,
        &[("order_type", "clothing"), ("status", "success")],
    );
    assert_eq!(ok, Some(5.0));
    srv.shutdown().await;
}

#[tokio::test]
async fn random_paths_and_methods_do_not_create_series() {
    let srv = TestServer::start(quiet_config()).await;
    srv.get("/does-not-exist").await;
    let before = srv.scrape().await.samples.len();
    for i in 0..300 {
        let path = format!("/scan/{i}/{}", i * 7919);
        let method = ["GET", "POST", "BREW", "PROPFIND", "DELETE"][i % 5];
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let r = srv
            .client
            .request(method, srv.url(&path))
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 404);
        let body: serde_json::Value = r.json().await.expect("json 404");
        assert_eq!(body["success"], false);
    }
    let m = srv.scrape().await;
    let routes: std::collections::BTreeSet<_> = m
        .select(c::HTTP_REQUESTS, &[])
        .map(|s| s.labels["route"].clone())
        .collect();
    assert!(
        routes.iter().all(|r| r == "other" || r.starts_with('/')),
        "{routes:?}"
    );
    assert!(!routes.iter().any(|r| r.starts_with("/scan")), "{routes:?}");
    let other = m.sum(c::HTTP_REQUESTS, &[("route", "other")]);
    assert_eq!(other, 301.0);
    // A few new (method, status) combinations may appear; 300 random paths must not.
    let after = m.samples.len();
    assert!(
        after <= before + 5 * 20,
        "series grew from {before} to {after}"
    );
    srv.shutdown().await;
}
