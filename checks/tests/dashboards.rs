//! The dashboards and Grafana provisioning: the lint on every dashboard, and the metric
//! contract between the dashboards and rules on one side and what the real server and load
//! generator export over HTTP on the other.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use order_metrics_checks::dashboards::{self, Dashboard};
use order_metrics_checks::{grafana, promql, repo_root, rules};
use order_server::exposition::Exposition;
use order_server::test_kit::TestServer;
use order_server::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use yaml_rust2::YamlLoader;

/// Series Prometheus itself creates for every target or rule.
const PROMETHEUS_SYNTHETIC: [&str; 4] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "ALERTS",
];

fn all_dashboards() -> Vec<Dashboard> {
    let d = dashboards::load_all(&repo_root().join("dashboards")).expect("dashboards load");
    assert!(d.len() >= 2, "{} dashboards", d.len());
    d
}

#[test]
fn dashboards_pass_the_lint() {
    let mut uids = BTreeSet::new();
    for d in all_dashboards() {
        let problems = dashboards::lint(&d);
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            d.path.display(),
            problems.join("\n  ")
        );
        assert!(
            uids.insert(d.uid().to_string()),
            "uid {} used twice",
            d.uid()
        );
    }
    assert!(uids.contains("order-service") && uids.contains("order-loadgen"));
}

/// The links between the two dashboards open the other one on the same time range, data
/// source and server job: every `var-NAME=` they set is a variable of the target.
#[test]
fn links_between_dashboards_carry_variables_the_target_has() {
    let boards = all_dashboards();
    let mut links = 0;
    for d in &boards {
        for (uid, url) in grafana::links(d) {
            let target = boards
                .iter()
                .find(|b| b.uid() == uid)
                .unwrap_or_else(|| panic!("{}: link to unknown dashboard {uid}", d.title()));
            let names: BTreeSet<&str> = target
                .variables()
                .into_iter()
                .filter_map(|v| v["name"].as_str())
                .collect();
            let (sets, _) = grafana::link_variables(&url);
            assert!(
                sets.iter().any(|s| s != "datasource"),
                "{}: link {url} carries no variable but the data source",
                d.title()
            );
            for name in sets {
                assert!(
                    names.contains(name.as_str()),
                    "{}: link {url} sets var-{name}, which {uid} does not have ({names:?})",
                    d.title()
                );
            }
            links += 1;
        }
    }
    assert!(links >= 2, "{links} links");
}

#[test]
fn provisioning_pins_the_datasource_uid_and_loads_the_dashboards_folder() {
    let root = repo_root().join("deploy/grafana/provisioning");
    let ds = std::fs::read_to_string(root.join("datasources/prometheus.yml")).expect("datasource");
    let ds = &YamlLoader::load_from_str(&ds).expect("yaml")[0];
    assert_eq!(ds["apiVersion"].as_i64(), Some(1));
    let list = ds["datasources"].as_vec().expect("datasources list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["type"].as_str(), Some("prometheus"));
    assert_eq!(list[0]["uid"].as_str(), Some("order-metrics-prometheus"));
    assert_eq!(list[0]["url"].as_str(), Some("http://prometheus:9090"));
    assert_eq!(list[0]["isDefault"].as_bool(), Some(true));
    // $__rate_interval is at least four scrape intervals only if Grafana knows the interval.
    let prom = std::fs::read_to_string(repo_root().join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    let scrape = YamlLoader::load_from_str(&prom).expect("yaml")[0]["global"]["scrape_interval"]
        .as_str()
        .map(String::from);
    assert_eq!(
        list[0]["jsonData"]["timeInterval"]
            .as_str()
            .map(String::from),
        scrape
    );

    let prov =
        std::fs::read_to_string(root.join("dashboards/order-metrics.yml")).expect("provider");
    let prov = &YamlLoader::load_from_str(&prov).expect("yaml")[0];
    let p = &prov["providers"][0];
    assert_eq!(p["type"].as_str(), Some("file"));
    assert_eq!(
        p["options"]["path"].as_str(),
        Some("/var/lib/grafana/dashboards")
    );
}

async fn scrape(client: &reqwest::Client, addr: std::net::SocketAddr) -> Exposition {
    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    Exposition::parse(&text).expect("exposition")
}

/// What the live server and load generator export, scraped over loopback HTTP.
async fn live_expositions() -> (Exposition, Exposition) {
    let client = reqwest::Client::new();

    let server = TestServer::start(Config::default()).await;
    let addr = server.addr;
    // One order of each type, so nothing depends on what exists before the first request.
    for path in ["/makeFoodOrder", "/makeClothingOrder"] {
        client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .expect("order");
    }
    let server_metrics = scrape(&client, addr).await;
    server.shutdown().await;

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let metrics = Arc::new(loadgen::telemetry::LoadgenMetrics::new().expect("loadgen metrics"));
    let (stop, stopped) = oneshot::channel::<()>();
    let lg = tokio::spawn(loadgen::telemetry::serve_metrics(
        listener,
        metrics,
        async move {
            let _ = stopped.await;
        },
    ));
    let loadgen_metrics = scrape(&client, addr).await;
    let _ = stop.send(());
    lg.await.expect("loadgen task");
    (server_metrics, loadgen_metrics)
}

#[tokio::test]
async fn dashboards_and_rules_use_only_exported_metrics_and_show_every_business_metric() {
    let (server, lg) = live_expositions().await;
    // name -> label -> values seen
    let mut exported: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for s in server.samples.iter().chain(&lg.samples) {
        let labels = exported.entry(s.name.clone()).or_default();
        for (k, v) in &s.labels {
            labels.entry(k.clone()).or_default().insert(v.clone());
        }
    }
    let all_rules = rules::load_all(&repo_root()).expect("rules");
    let recorded: BTreeSet<String> = all_rules.iter().filter_map(|r| r.record.clone()).collect();

    let mut uses: Vec<(String, String)> = Vec::new(); // (where, expr)
    let vars = [
        ("job", "order-server"),
        ("server_job", "order-server"),
        ("instance", ".*"),
    ];
    let mut expand_vars: Vec<(&str, &str)> = dashboards::GRAFANA_BUILTINS.to_vec();
    expand_vars.extend(vars);
    let mut shown_families = BTreeSet::new();
    for d in all_dashboards() {
        for q in d.queries() {
            let expr = promql::expand(&q.expr, &expand_vars);
            for s in promql::selectors(&expr).expect("dashboard query parses") {
                shown_families.insert(promql::family(&s.name).to_string());
            }
            uses.push((format!("{} / {}", d.title(), q.source), expr));
        }
    }
    for r in &all_rules {
        let name = r.alert.clone().or(r.record.clone()).unwrap_or_default();
        uses.push((format!("rule {name}"), r.expr.clone()));
    }

    for (place, expr) in &uses {
        for s in promql::selectors(expr).expect("query parses") {
            if s.name.is_empty() || PROMETHEUS_SYNTHETIC.contains(&s.name.as_str()) {
                continue;
            }
            if recorded.contains(&s.name) {
                continue;
            }
            let Some(labels) = exported.get(&s.name) else {
                panic!(
                    "{place}: {} is exported by neither the server nor the load generator",
                    s.name
                );
            };
            for (label, value) in s.equalities() {
                if label == "job" || label == "instance" {
                    continue; // target labels, added by Prometheus
                }
                let values = labels.get(label);
                assert!(
                    values.is_some_and(|v| v.contains(value)),
                    "{place}: {}{{{label}=\"{value}\"}} does not exist; exported values: {values:?}",
                    s.name
                );
            }
        }
    }

    // Every business metric the server exports is on a dashboard, and so is every metric of
    // the load generator.
    let families: BTreeSet<&str> = server
        .types
        .keys()
        .chain(lg.types.keys())
        .map(String::as_str)
        .filter(|n| {
            n.starts_with("order_service_")
                || *n == "order_total_by_everyday"
                || n.starts_with("loadgen_")
        })
        .collect();
    assert!(families.len() >= 15, "{families:?}");
    for f in families {
        assert!(
            shown_families.contains(f),
            "{f} is exported but no dashboard shows it"
        );
    }
}
