//! The rule files and the Prometheus config, checked by the real promtool, plus the
//! conventions promtool cannot see: every alert has a severity, summary, description and a
//! runbook section, and a promtool test that shows it firing and one that shows it silent.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use order_metrics_checks::rules::{self, Rule};
use order_metrics_checks::tools::{run, tool};
use order_metrics_checks::{promql, repo_root};

const RUNBOOK_URL: &str = "https://github.com/order-metrics/order-metrics/blob/main/RUNBOOK.md";

fn alerts() -> Vec<Rule> {
    let all = rules::load_all(&repo_root()).expect("rule files load");
    all.into_iter().filter(|r| r.alert.is_some()).collect()
}

#[test]
#[cfg_attr(
    missing_promtool,
    ignore = "promtool not in target/tools/bin: run bash scripts/tools"
)]
fn promtool_checks_the_rules_and_the_config() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let root = repo_root();
    let files = rules::rule_files(&root).expect("rule files");
    assert!(files.len() >= 2, "{files:?}");
    let out = run(Command::new(&promtool)
        .arg("check")
        .arg("rules")
        .args(&files))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("SUCCESS"), "{out}");

    // The config as shipped: promtool 3.5 rejects keys it does not know, and loads
    // the rule files the config names.
    let out = run(Command::new(&promtool)
        .args(["check", "config"])
        .arg(root.join("deploy/prometheus/prometheus.yml")))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.contains(&format!("SUCCESS: {} rule files found", files.len())),
        "the config must load every file in deploy/prometheus/rules:\n{out}"
    );
}

#[test]
#[cfg_attr(
    missing_promtool,
    ignore = "promtool not in target/tools/bin: run bash scripts/tools"
)]
fn promtool_unit_tests_pass() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let tests = rules::test_files(&repo_root()).expect("test files");
    assert!(tests.len() >= 2, "{tests:?}");
    let out = run(Command::new(&promtool).args(["test", "rules"]).args(&tests))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn every_alert_has_severity_annotations_and_a_runbook_section() {
    let runbook =
        std::fs::read_to_string(repo_root().join("RUNBOOK.md")).expect("RUNBOOK.md exists");
    let alerts = alerts();
    assert!(alerts.len() >= 8, "{} alerts", alerts.len());
    for a in &alerts {
        let name = a.alert.as_deref().unwrap_or_default();
        let severity = a.labels.get("severity").map(String::as_str);
        assert!(
            matches!(severity, Some("critical" | "warning")),
            "{name}: severity {severity:?} (critical pages, warning is a ticket)"
        );
        for key in ["summary", "description", "runbook_url"] {
            let v = a.annotations.get(key).map(String::as_str).unwrap_or("");
            assert!(v.len() > 10, "{name}: annotation {key} is {v:?}");
        }
        let url = &a.annotations["runbook_url"];
        assert_eq!(
            url,
            &format!("{RUNBOOK_URL}#{}", name.to_lowercase()),
            "{name}: runbook_url"
        );
        let heading = format!("\n## {name}\n");
        let start = runbook
            .find(&heading)
            .unwrap_or_else(|| panic!("RUNBOOK.md has no section {heading:?}"));
        let section = &runbook[start + heading.len()..];
        let section = &section[..section.find("\n## ").unwrap_or(section.len())];
        for part in [
            "**Means:**",
            "**First query:**",
            "```promql",
            "**Likely causes:**",
        ] {
            assert!(
                section.contains(part),
                "RUNBOOK.md section {name} lacks {part}"
            );
        }
        // Every query in the section is valid PromQL. A line that starts with an operator
        // continues the query above it.
        for block in section.split("```promql\n").skip(1) {
            let block = block.split("```").next().unwrap_or_default();
            let mut queries: Vec<String> = Vec::new();
            for line in block.lines().filter(|l| !l.trim().is_empty()) {
                let continues = ["-", "+", "/", "*", "and ", "or ", "unless "]
                    .iter()
                    .any(|op| line.starts_with(op));
                match queries.last_mut() {
                    Some(q) if continues => q.push_str(&format!("\n{line}")),
                    _ => queries.push(line.to_string()),
                }
            }
            assert!(!queries.is_empty(), "RUNBOOK.md {name}: empty promql block");
            for q in queries {
                promql::selectors(&q).unwrap_or_else(|e| panic!("RUNBOOK.md {name}: {e}"));
            }
        }
    }
}

#[test]
fn every_alert_has_a_firing_and_a_silent_promtool_case() {
    let coverage =
        rules::coverage(&rules::test_files(&repo_root()).expect("test files")).expect("parse");
    let names: BTreeSet<String> = alerts().into_iter().filter_map(|a| a.alert).collect();
    for name in &names {
        let c = coverage
            .get(name)
            .unwrap_or_else(|| panic!("no promtool test mentions {name}"));
        assert!(!c.firing.is_empty(), "{name}: no case where it fires");
        assert!(c.silent > 0, "{name}: no case where it must stay silent");
    }
    // Both severities of the burn-rate alerts are shown firing.
    for name in [
        "OrderServiceErrorBudgetBurn",
        "OrderServiceLatencyBudgetBurn",
    ] {
        let severities: BTreeSet<&str> = coverage[name]
            .firing
            .iter()
            .filter_map(|l| l.get("severity").map(String::as_str))
            .collect();
        assert_eq!(
            severities,
            BTreeSet::from(["critical", "warning"]),
            "{name}"
        );
    }
    for tested in coverage.keys() {
        assert!(names.contains(tested), "tests name unknown alert {tested}");
    }
}

#[test]
fn rules_select_the_jobs_the_config_scrapes() {
    let root = repo_root();
    let config = std::fs::read_to_string(root.join("deploy/prometheus/prometheus.yml"))
        .expect("prometheus.yml");
    for r in rules::load_all(&root).expect("rules") {
        for s in promql::selectors(&r.expr).expect("rule expr parses") {
            for m in s.matchers.iter().filter(|m| m.label == "job") {
                for job in m.value.split('|') {
                    assert!(
                        config.contains(&format!("job_name: {job}\n")),
                        "{:?}/{:?}: job {job} is not scraped by prometheus.yml",
                        r.alert,
                        r.record
                    );
                }
            }
        }
    }
}

/// The container names the rules match under CCE's pod-annotation discovery are the
/// containers the Kubernetes manifests run.
#[test]
fn rules_select_the_containers_the_manifests_run() {
    let root = repo_root();
    let mut containers = BTreeSet::new();
    for rel in [
        "deploy/k8s/order-server.yaml",
        "deploy/k8s/loadgen.yaml",
        "deploy/k8s/jobs/loadgen-job.yaml",
    ] {
        let text = std::fs::read_to_string(root.join(rel)).expect("manifest");
        for doc in yaml_rust2::YamlLoader::load_from_str(&text).expect("yaml") {
            for c in doc["spec"]["template"]["spec"]["containers"]
                .as_vec()
                .into_iter()
                .flatten()
            {
                containers.insert(c["name"].as_str().expect("container name").to_string());
            }
        }
    }
    let mut seen = 0;
    for r in rules::load_all(&root).expect("rules") {
        for s in promql::selectors(&r.expr).expect("rule expr parses") {
            for m in s.matchers.iter().filter(|m| m.label == "container") {
                for c in m.value.split('|') {
                    seen += 1;
                    assert!(
                        containers.contains(c),
                        "{:?}: container {c} is not in the manifests ({containers:?})",
                        r.alert
                    );
                }
            }
        }
    }
    assert!(seen >= 4, "{seen} container matchers");
}

#[test]
fn scenarios_name_alerts_that_exist() {
    let names: BTreeSet<String> = alerts().into_iter().filter_map(|a| a.alert).collect();
    let dir = repo_root().join("loadgen/scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let fires = text
            .lines()
            .find_map(|l| l.strip_prefix("# Fires: "))
            .unwrap_or_else(|| panic!("{}: no '# Fires:' line", path.display()));
        seen += 1;
        if fires.starts_with("no alert") {
            continue;
        }
        let named: Vec<&str> = fires
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| names.contains(*w))
            .collect();
        assert!(
            !named.is_empty(),
            "{}: '# Fires: {fires}' names no bundled alert",
            path.display()
        );
    }
    assert!(seen >= 6, "{seen} scenarios");
}

/// Days of raw 5 s scrapes per evaluation are what recording rules exist to avoid: windows of
/// a day or more read the recorded 5-minute rates.
#[test]
fn long_windows_read_recorded_rates_not_raw_scrapes() {
    let all = rules::load_all(&repo_root()).expect("rules");
    let recorded: BTreeSet<String> = all.iter().filter_map(|r| r.record.clone()).collect();
    let mut long = 0;
    for r in &all {
        for s in promql::selectors(&r.expr).expect("rule expr parses") {
            if s.range.is_some_and(|d| d >= Duration::from_secs(86_400)) {
                long += 1;
                assert!(
                    recorded.contains(&s.name),
                    "{:?}: {}[{:?}] reads raw samples over a long window",
                    r.record.as_ref().or(r.alert.as_ref()),
                    s.name,
                    s.range
                );
            }
        }
    }
    assert!(long >= 10, "{long} long-window selectors");
}

/// The compose stack's Prometheus keeps at least the longest window any rule looks back over,
/// or the 30-day budget silently becomes "the budget of the data kept".
#[test]
fn compose_retention_covers_the_longest_rule_window() {
    let root = repo_root();
    let longest = rules::load_all(&root)
        .expect("rules")
        .iter()
        .flat_map(|r| promql::selectors(&r.expr).expect("rule expr parses"))
        .filter_map(|s| s.range)
        .max()
        .expect("some range");
    assert!(longest >= Duration::from_secs(30 * 86_400), "{longest:?}");
    let args = order_metrics_checks::compose::command(&root, "prometheus", &[]).expect("command");
    let retention = args
        .iter()
        .find_map(|a| a.strip_prefix("--storage.tsdb.retention.time="))
        .expect("compose sets --storage.tsdb.retention.time");
    let kept = rules::parse_duration(retention).expect("retention is a duration");
    assert!(
        u128::from(kept) >= longest.as_millis(),
        "retention {retention} is shorter than the longest rule window {longest:?}"
    );
    assert!(
        !args
            .iter()
            .any(|a| a.starts_with("--storage.tsdb.retention.size")),
        "a size limit can cut the 30-day window short"
    );
}
