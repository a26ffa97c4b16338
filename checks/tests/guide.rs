//! The guide's own service under the bundled dashboards. `bench/guide/order-server.py` is the
//! AOM guide's Flask + prometheus_client server, as its users run it: it exports only
//! `order_service_processed_orders_total{order_type}` and `order_total_by_everyday{order_type}`.
//! A real Prometheus scrapes it with the shipped `prometheus.yml` and rules while orders
//! arrive; the Order Service dashboard's variables are resolved the way Grafana resolves
//! them, and then:
//! - the variables offer the guide's job and its instance, not the other exporter's in the
//!   same job;
//! - every panel whose metrics the guide's service exports shows data;
//! - every other query runs without an error and is empty ("No data"), so the page works.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use order_metrics_checks::daemon::Daemon;
use order_metrics_checks::prometheus::{free_port, Prometheus};
use order_metrics_checks::tools::{guide_python, tool, GUIDE_PACKAGES};
use order_metrics_checks::{dashboards, grafana, promql, repo_root};
use order_server::exposition::Exposition;

/// The panels a guide-style service fills: the two whose metrics it has.
const GUIDE_PANELS: [&str; 2] = ["Orders per second by type and status", "Orders today"];

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().expect("port")))
}

#[test]
fn scripts_test_installs_the_guide_packages_the_checks_name() {
    let script = std::fs::read_to_string(repo_root().join("scripts/test")).expect("scripts/test");
    for p in GUIDE_PACKAGES {
        assert!(script.contains(p), "scripts/test does not install {p}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(missing_prometheus, missing_guide_python),
    ignore = "Prometheus not in target/tools/bin (bash scripts/tools), or python3 without flask and prometheus_client (scripts/test installs them)"
)]
async fn the_guides_flask_service_fills_the_panels_its_metrics_feed() {
    let (Some(prometheus_bin), Some(python)) = (tool("prometheus"), guide_python()) else {
        return;
    };
    let root = repo_root();

    let guide_addr = loopback();
    let guide = Daemon::start(
        "guide",
        &python,
        &[
            root.join("bench/guide/order-server.py")
                .display()
                .to_string(),
            guide_addr.port().to_string(),
        ],
        tempfile::tempdir().expect("tempdir"),
        guide_addr,
        "/metrics",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // Orders at about 20/s, bounded in count and time, for as long as the test needs.
    let client = guide.client.clone();
    let traffic = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..1200u32 {
            if Instant::now() > deadline {
                break;
            }
            let path = if i % 3 == 0 {
                "makeClothingOrder"
            } else {
                "makeFoodOrder"
            };
            let _ = client
                .get(format!("http://{guide_addr}/{path}"))
                .send()
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });

    // The shipped config with the guide's service as the order-server target, sharing its
    // job with a second exporter (Prometheus itself, which exports process_* metrics), as
    // every annotated pod shares job "monitoring/kubernetes-pods" under CCE's discovery; the
    // other targets point at closed ports (down, as they would be without the rest of the
    // stack).
    let prom_addr = loopback();
    let config = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    let config = [
        (
            "\"order-server:5001\"",
            format!("\"{guide_addr}\", \"{prom_addr}\""),
        ),
        ("loadgen:9464", loopback().to_string()),
        ("localhost:9090", prom_addr.to_string()),
        ("alertmanager:9093", loopback().to_string()),
        ("scrape_interval: 5s", "scrape_interval: 1s".into()),
        ("scrape_timeout: 4s", "scrape_timeout: 1s".into()),
        ("evaluation_interval: 15s", "evaluation_interval: 1s".into()),
    ]
    .iter()
    .fold(config, |c, (from, to)| {
        assert!(c.contains(from), "expected {from:?} in prometheus.yml");
        c.replace(from, to)
    });
    let files: Vec<(String, String)> = order_metrics_checks::rules::rule_files(&root)
        .expect("rule files")
        .iter()
        .map(|f| {
            let name = f.file_name().expect("name").to_string_lossy();
            (
                format!("rules/{name}"),
                std::fs::read_to_string(f).expect("rule file"),
            )
        })
        .collect();
    let prom = Prometheus::start(&prometheus_bin, &root, prom_addr, &config, &files)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // Ready when Prometheus holds a few scrapes of moving counters (enough for a rate over
    // the dashboards' $__rate_interval).
    let ready_query =
        r#"count_over_time(order_service_processed_orders_total{job="order-server"}[15s]) >= 4"#;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let ready = prom.query(ready_query).await.expect("readiness query");
        if !ready.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has not scraped the guide's service: {:?}\n{}",
            prom.targets().await,
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // What the guide's service exports, read from its own /metrics.
    let text = guide
        .client
        .get(format!("http://{guide_addr}/metrics"))
        .send()
        .await
        .expect("scrape the guide")
        .text()
        .await
        .expect("body");
    let exported: BTreeSet<String> = Exposition::parse(&text)
        .expect("the guide's exposition parses")
        .samples
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        exported.contains("order_service_processed_orders_total"),
        "{exported:?}"
    );
    assert!(exported.contains("order_total_by_everyday"), "{exported:?}");

    let boards = dashboards::load_all(&root.join("dashboards")).expect("dashboards");
    let board = |uid: &str| boards.iter().find(|d| d.uid() == uid).expect("dashboard");

    let service = board("order-service");
    let resolved = grafana::resolve(service, &prom)
        .await
        .unwrap_or_else(|e| panic!("variables: {e}"));
    let options = |name: &str| {
        resolved
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.options.clone())
            .unwrap_or_default()
    };
    assert_eq!(options("job"), ["order-server"], "{resolved:?}");
    assert_eq!(
        options("instance"),
        [guide_addr.to_string()],
        "{resolved:?}"
    );
    let vars = grafana::expansion(&resolved);

    let mut with_data = BTreeSet::new();
    let mut feeds_guide_panel = BTreeSet::new();
    for q in service.queries().iter().filter(|q| !q.annotation) {
        let expr = promql::expand(&q.expr, &vars);
        let names: Vec<String> = promql::selectors(&expr)
            .expect("query parses")
            .into_iter()
            .map(|s| s.name)
            .collect();
        let result = prom
            .query(&expr)
            .await
            .unwrap_or_else(|e| panic!("{}: the query fails: {e}", q.source));
        if names.iter().all(|n| exported.contains(n)) {
            feeds_guide_panel.insert(q.source.clone());
            assert!(
                !result.is_empty(),
                "{}: no data from the guide's service: {expr}",
                q.source
            );
            with_data.insert(q.source.clone());
        } else if !result.is_empty() {
            with_data.insert(q.source.clone());
        }
    }
    let expected: BTreeSet<String> = GUIDE_PANELS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        feeds_guide_panel, expected,
        "the panels the guide's metrics feed"
    );
    assert_eq!(with_data, expected, "the panels that show data");

    // The Load Generator dashboard's server job resolves from the guide's metrics too.
    let lg = grafana::resolve(board("order-loadgen"), &prom)
        .await
        .unwrap_or_else(|e| panic!("load generator variables: {e}"));
    let server_job = lg
        .iter()
        .find(|r| r.name == "server_job")
        .expect("server_job");
    assert_eq!(server_job.options, ["order-server"]);

    traffic.abort();
}
