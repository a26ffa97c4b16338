//! End to end on real components, the incident drill: a real Prometheus on loopback scrapes
//! the real order server and load generator, evaluates the bundled rules and sends alerts to
//! a real Alertmanager, both started with the compose stack's flags and the shipped
//! `prometheus.yml` and `alertmanager.yml` (only the service-name targets become loopback
//! ports). The load generator runs the bundled error-burst scenario:
//! - healthy baseline: every dashboard query returns data, and no critical alert reaches
//!   Alertmanager;
//! - food error burst: the page (critical `OrderServiceErrorBudgetBurn`, `order_type="food"`)
//!   reaches Alertmanager routed to the `page` receiver, and the ticket (warning) of the same
//!   alert is inhibited while the page is active;
//! - recovery: the page resolves in Alertmanager while traffic still flows, and the ticket is
//!   no longer inhibited.
//!
//! As the burst starts, the drill sets the same rates again through the load generator's
//! live control API, so the dashboards' "Live changes" annotation has a change to show.
//!
//! Time is compressed so this takes under three minutes: the rules' windows and `for`
//! durations are divided by 60 (5m -> 5s, 1h -> 1m, 6h -> 6m), scrapes and evaluations run
//! every second, and the scenario's phases are cut from 2m/5m/3m to 30s/60s/60s. The rule
//! text is otherwise the shipped one.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use clap::Parser;
use order_metrics_checks::alertmanager::{Alert, Alertmanager};
use order_metrics_checks::dashboards;
use order_metrics_checks::prometheus::{free_port, Prometheus};
use order_metrics_checks::tools::tool;
use order_metrics_checks::{grafana, promql, repo_root, rules};
use order_server::test_kit::TestServer;
use order_server::Config;

const COMPRESSION: u64 = 60;
const BASELINE: Duration = Duration::from_secs(30);
const BURST: Duration = Duration::from_secs(60);
const RECOVERY: Duration = Duration::from_secs(60);
/// How long a ticket may show uninhibited beside its active page before that is a failure.
const INHIBIT_GRACE: Duration = Duration::from_secs(5);

/// Replaces every `from` with `to`, insisting that `from` occurs: a changed shipped file must
/// break this test loudly rather than silently run against the wrong thing.
fn replace_all(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        assert!(out.contains(from), "expected {from:?} in the shipped file");
        out = out.replace(from, to);
    }
    out
}

/// Which jobs each dashboard's job variables must offer once Grafana has resolved them.
fn expected_jobs(uid: &str) -> &'static [(&'static str, &'static str)] {
    match uid {
        "order-service" => &[("job", "order-server"), ("loadgen_job", "loadgen")],
        "order-loadgen" => &[("job", "loadgen"), ("server_job", "order-server")],
        other => panic!("no expectation for dashboard {other}"),
    }
}

/// The food `OrderServiceErrorBudgetBurn` of `severity` among Alertmanager's alerts.
fn burn<'a>(alerts: &'a [Alert], severity: &str) -> Option<&'a Alert> {
    alerts.iter().find(|a| {
        a.label("alertname") == Some("OrderServiceErrorBudgetBurn")
            && a.label("order_type") == Some("food")
            && a.label("severity") == Some(severity)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    any(missing_prometheus, missing_alertmanager),
    ignore = "Prometheus or Alertmanager (with its templates) not in target/tools/bin: run bash scripts/tools, as root"
)]
async fn prometheus_fills_every_panel_and_the_error_burst_pages_then_clears() {
    let (Some(prometheus_bin), Some(alertmanager_bin)) = (tool("prometheus"), tool("alertmanager"))
    else {
        return;
    };
    let root = repo_root();

    // The order server, with its fault API on a second loopback port.
    let server = TestServer::start_with_admin(Config::default(), true).await;
    let server_addr = server.addr;
    let admin_addr = server.admin.expect("admin listener");
    let loadgen_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().expect("port")));
    let control_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().expect("port")));
    let prom_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().expect("port")));
    let am_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port().expect("port")));
    let am = Alertmanager::start(&alertmanager_bin, &root, am_addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The shipped config, pointed at loopback and sped up.
    let config = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    let config = replace_all(
        &config,
        &[
            ("order-server:5001", &server_addr.to_string()),
            ("loadgen:9464", &loadgen_addr.to_string()),
            ("localhost:9090", &prom_addr.to_string()),
            ("alertmanager:9093", &am_addr.to_string()),
            ("scrape_interval: 5s", "scrape_interval: 1s"),
            ("scrape_timeout: 4s", "scrape_timeout: 1s"),
            ("evaluation_interval: 15s", "evaluation_interval: 1s"),
        ],
    );
    let mut files = Vec::new();
    for f in rules::rule_files(&root).expect("rule files") {
        let text = std::fs::read_to_string(&f).expect("rule file");
        let name = f.file_name().expect("name").to_string_lossy().to_string();
        files.push((
            format!("rules/{name}"),
            rules::compress(&text, COMPRESSION).expect("compress"),
        ));
    }
    let prom = Prometheus::start(&prometheus_bin, &root, prom_addr, &config, &files)
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // The error-burst scenario, shortened.
    let scenario =
        std::fs::read_to_string(root.join("loadgen/scenarios/error-burst.toml")).expect("scenario");
    let scenario = replace_all(
        &scenario,
        &[
            ("duration = \"2m\"", "duration = \"30s\""),
            ("duration = \"5m\"", "duration = \"60s\""),
            ("duration = \"3m\"", "duration = \"60s\""),
        ],
    );
    let scenario_dir = tempfile::tempdir().expect("tempdir");
    let scenario_path = scenario_dir.path().join("error-burst-short.toml");
    std::fs::write(&scenario_path, scenario).expect("write scenario");
    let cli = loadgen::Cli::try_parse_from([
        "loadgen".to_string(),
        "--scenario".into(),
        scenario_path.display().to_string(),
        "--target".into(),
        format!("http://{server_addr}"),
        "--admin-url".into(),
        format!("http://{admin_addr}"),
        "--metrics-addr".into(),
        loadgen_addr.to_string(),
        "--control-addr".into(),
        control_addr.to_string(),
        "--no-progress".into(),
        "--seed".into(),
        "7".into(),
    ])
    .expect("loadgen flags");
    let run_config = cli.into_config().expect("loadgen config");
    let t0 = Instant::now();
    let run = tokio::spawn(loadgen::run(run_config, std::future::pending()));

    // The page expression, exactly as shipped but for the compressed windows.
    let page = rules::load_all(&root)
        .expect("rules")
        .into_iter()
        .find(|r| {
            r.alert.as_deref() == Some("OrderServiceErrorBudgetBurn")
                && r.labels.get("severity").map(String::as_str) == Some("critical")
        })
        .expect("the error-budget page rule");
    let page_expr = rules::compress(&page.expr, COMPRESSION).expect("compress expr");

    // --- Baseline: healthy traffic fills every panel and pages no one.
    tokio::time::sleep_until((t0 + BASELINE - Duration::from_secs(6)).into()).await;
    for job in ["order-server", "loadgen"] {
        let up = prom
            .query(&format!("up{{job=\"{job}\"}} == 1"))
            .await
            .expect("query up");
        assert_eq!(
            up.len(),
            1,
            "{job} is not scraped: {:?}\n{}",
            prom.targets().await,
            prom.log()
        );
    }
    let boards = dashboards::load_all(&root.join("dashboards")).expect("dashboards");
    let mut annotation_queries = Vec::new();
    let mut empty = Vec::new();
    let mut checked = 0;
    for d in &boards {
        // The variables as Grafana resolves them on load: from Prometheus's label values.
        let resolved = grafana::resolve(d, &prom)
            .await
            .unwrap_or_else(|e| panic!("{}: variables: {e}", d.title()));
        for (name, job) in expected_jobs(d.uid()) {
            let var = resolved.iter().find(|r| r.name == *name).expect("variable");
            assert_eq!(var.options, [*job], "{} / ${name}", d.title());
        }
        let vars = grafana::expansion(&resolved);
        for q in d.queries() {
            let expr = promql::expand(&q.expr, &vars);
            if q.annotation {
                annotation_queries.push((q.source.clone(), expr));
                continue;
            }
            let result = prom
                .query(&expr)
                .await
                .unwrap_or_else(|e| panic!("{} / {}: {e}", d.title(), q.source));
            checked += 1;
            if result.is_empty() {
                empty.push(format!("{} / {}: {expr}", d.title(), q.source));
            }
        }
    }
    assert!(checked >= 30, "only {checked} panel queries");
    assert!(
        empty.is_empty(),
        "panel queries with no data after {:?} of traffic:\n  {}",
        t0.elapsed(),
        empty.join("\n  ")
    );
    let pages = prom
        .query(r#"ALERTS{severity="critical"}"#)
        .await
        .expect("ALERTS");
    assert!(
        pages.is_empty(),
        "healthy traffic paged (or is about to): {pages:?}"
    );
    let delivered = am.alerts().await.expect("Alertmanager alerts");
    let critical: Vec<&Alert> = delivered
        .iter()
        .filter(|a| a.label("severity") == Some("critical"))
        .collect();
    assert!(
        critical.is_empty(),
        "healthy traffic put a critical alert into Alertmanager: {critical:?}"
    );
    eprintln!(
        "baseline: {checked} panel queries returned data at {:?}",
        t0.elapsed()
    );

    // --- Burst: 30 % of food orders fail. The page expression must appear, for food only.
    // A live change as it starts: the scenario's own rates, set through the control API.
    tokio::time::sleep_until((t0 + BASELINE + Duration::from_secs(1)).into()).await;
    let changed = reqwest::Client::new()
        .put(format!("http://{control_addr}/api/v1/rates"))
        .json(&serde_json::json!({"food": 20, "clothing": 10}))
        .send()
        .await
        .expect("the control API answers");
    assert_eq!(changed.status(), 200, "{:?}", changed.text().await);
    let burst_end = t0 + BASELINE + BURST;
    let mut page_seen = None;
    let mut firing_seen = None;
    let mut annotations_seen = std::collections::BTreeSet::new();
    let mut page_delivered = None;
    let mut ticket_inhibited = None;
    let mut ticket_seen: Option<Duration> = None;
    while Instant::now() < burst_end - Duration::from_secs(1) {
        let hits = prom.query(&page_expr).await.expect("page expr");
        for h in &hits {
            assert_eq!(
                h.labels.get("order_type").map(String::as_str),
                Some("food"),
                "only food orders burn: {hits:?}"
            );
        }
        if !hits.is_empty() && page_seen.is_none() {
            page_seen = Some(t0.elapsed());
        }
        let firing = prom
            .query(r#"ALERTS{alertname="OrderServiceErrorBudgetBurn", alertstate="firing", severity="critical", order_type="food"}"#)
            .await
            .expect("ALERTS");
        if !firing.is_empty() && firing_seen.is_none() {
            firing_seen = Some(t0.elapsed());
        }
        let delivered = am.alerts().await.expect("Alertmanager alerts");
        if let Some(page) = burn(&delivered, "critical") {
            assert_eq!(
                page.receivers,
                ["page"],
                "the page is routed to `page`: {page:?}"
            );
            page_delivered.get_or_insert(t0.elapsed());
            if let Some(ticket) = burn(&delivered, "warning") {
                if page.state == "active" {
                    // Alertmanager's inhibitor learns of a new source alert on its own
                    // schedule: a moment of grace after the ticket first shows.
                    let first = *ticket_seen.get_or_insert(t0.elapsed());
                    if ticket.state == "suppressed"
                        && ticket.inhibited_by.contains(&page.fingerprint)
                    {
                        ticket_inhibited.get_or_insert(t0.elapsed());
                    } else {
                        assert!(
                            t0.elapsed() < first + INHIBIT_GRACE,
                            "the ticket is not inhibited by the active page: {delivered:?}"
                        );
                    }
                }
            }
        }
        for (source, expr) in &annotation_queries {
            if !prom.query(expr).await.expect("annotation").is_empty() {
                annotations_seen.insert(source.clone());
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let page_seen = page_seen.unwrap_or_else(|| {
        panic!(
            "the error-budget page expression never returned data during the burst\n{}",
            prom.log()
        )
    });
    let firing_seen = firing_seen.expect("OrderServiceErrorBudgetBurn never fired");
    let page_delivered = page_delivered.unwrap_or_else(|| {
        panic!(
            "the page never reached Alertmanager\n{}\n{}",
            prom.log(),
            am.log()
        )
    });
    let ticket_inhibited = ticket_inhibited
        .expect("the ticket never reached Alertmanager (inhibited) while the page was active");
    for (source, _) in &annotation_queries {
        assert!(
            annotations_seen.contains(source),
            "{source} showed nothing during the burst"
        );
    }
    eprintln!(
        "burst began at {BASELINE:?}: page expression from {page_seen:?}, alert firing from \
         {firing_seen:?}, in Alertmanager from {page_delivered:?}, ticket inhibited from \
         {ticket_inhibited:?}"
    );

    // --- Recovery: traffic goes on without errors; the page must clear before it ends.
    tokio::time::sleep_until(burst_end.into()).await;
    let recovery_end = burst_end + RECOVERY;
    let mut cleared = None;
    while Instant::now() < recovery_end - Duration::from_secs(2) {
        if prom.query(&page_expr).await.expect("page expr").is_empty() {
            cleared = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let cleared = cleared.unwrap_or_else(|| {
        panic!("the page expression was still non-empty at the end of the recovery phase")
    });
    // Traffic was still flowing when it cleared.
    let flowing = prom
        .query(r#"sum(rate(order_service_processed_orders_total{job="order-server", order_type="food", status="success"}[5s])) > 1"#)
        .await
        .expect("rate");
    assert_eq!(flowing.len(), 1, "traffic stopped before the page cleared");
    eprintln!(
        "burst ended at {:?}: page expression empty from {cleared:?}",
        BASELINE + BURST
    );

    // Alertmanager hears of it: the page resolves there, and the ticket, still burning over
    // its longer windows, is no longer inhibited.
    let mut resolved = None;
    while Instant::now() < recovery_end {
        let delivered = am.alerts().await.expect("Alertmanager alerts");
        if burn(&delivered, "critical").is_none() {
            let ticket = burn(&delivered, "warning").expect("the ticket still fires");
            assert_eq!(ticket.state, "active", "{ticket:?}");
            assert_eq!(ticket.receivers, ["ticket"], "{ticket:?}");
            resolved = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let resolved = resolved.unwrap_or_else(|| {
        panic!(
            "the page had not resolved in Alertmanager by the end of the recovery phase\n{}",
            am.log()
        )
    });
    eprintln!("page resolved in Alertmanager at {resolved:?}");

    let report = run.await.expect("loadgen task").expect("loadgen run");
    assert!(report.target_reached);
    drop(prom);
    drop(am);
    server.shutdown().await;
}
