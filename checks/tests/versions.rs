//! The versions that ship against the versions the tests run. Compose pins Prometheus and
//! Alertmanager images in `.env`; the checks run the binaries `scripts/tools` fetched. A pin
//! whose major version differs from the tested one, or that is older than it, fails here, so
//! nobody ships a stack the rule tests and the drill never saw (pinning
//! `prom/prometheus:v2.55.0` fails; so does `prom/alertmanager:v0.28.1` against a tested 0.33).

use order_metrics_checks::repo_root;
use order_metrics_checks::tools::{parse_version, tool, version_of};

fn pin(var: &str, image: &str) -> Vec<u64> {
    let env = std::fs::read_to_string(repo_root().join(".env")).expect(".env");
    let value = env
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{var}=")))
        .unwrap_or_else(|| panic!(".env has no {var}"));
    let (name, tag) = value
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{var}={value}: no tag"));
    assert_eq!(name, image, "{var}: the official image");
    parse_version(tag).unwrap_or_else(|| panic!("{var}={value}: the tag is not a release version"))
}

/// The pin may be newer than what was tested, never older, and never another major line.
fn check(var: &str, image: &str, binary: &str) {
    let pinned = pin(var, image);
    let Some(bin) = tool(binary) else {
        return;
    };
    let tested = version_of(&bin).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        pinned[0], tested[0],
        "{var} pins {pinned:?}, a different major version from the {binary} {tested:?} the tests run"
    );
    assert!(
        pinned >= tested,
        "{var} pins {pinned:?}, older than the {binary} {tested:?} the tests run"
    );
    eprintln!("{binary}: shipped {pinned:?}, tested {tested:?}");
}

#[test]
#[cfg_attr(
    missing_prometheus,
    ignore = "prometheus not in target/tools/bin: run bash scripts/tools"
)]
fn prometheus_pin_is_the_tested_major_and_not_older() {
    check("PROMETHEUS_IMAGE", "prom/prometheus", "prometheus");
}

#[test]
#[cfg_attr(
    missing_alertmanager,
    ignore = "Alertmanager (with its templates) not in target/tools/bin: run bash scripts/tools, as root"
)]
fn alertmanager_pin_is_the_tested_major_and_not_older() {
    check("ALERTMANAGER_IMAGE", "prom/alertmanager", "alertmanager");
}

#[test]
#[cfg_attr(
    any(missing_prometheus, missing_promtool),
    ignore = "prometheus or promtool not in target/tools/bin: run bash scripts/tools"
)]
fn promtool_is_the_same_release_as_prometheus() {
    let (Some(prometheus), Some(promtool)) = (tool("prometheus"), tool("promtool")) else {
        return;
    };
    assert_eq!(
        version_of(&prometheus).expect("prometheus version"),
        version_of(&promtool).expect("promtool version")
    );
}

#[test]
fn readmes_state_the_shipped_pins() {
    let env = std::fs::read_to_string(repo_root().join(".env")).expect(".env");
    for readme in ["README.md", "README.zh-CN.md"] {
        let text = std::fs::read_to_string(repo_root().join(readme)).expect(readme);
        for var in ["PROMETHEUS_IMAGE", "ALERTMANAGER_IMAGE", "GRAFANA_IMAGE"] {
            let value = env
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{var}=")))
                .unwrap_or_else(|| panic!(".env has no {var}"));
            assert!(
                text.contains(&format!("`{value}`")),
                "{readme}'s supported-versions table does not name `{value}`"
            );
        }
    }
}
