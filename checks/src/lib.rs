//! Checks of the observability bundle against real components: the rule files and their
//! promtool tests, the Grafana dashboards (lint and metric contract), and a real Prometheus
//! scraping the real order server and load generator. The library holds the parsing and the
//! process plumbing; the checks themselves are the integration tests in `tests/`.
//!
//! # Layout
//! - [`tools`]: finds promtool, Prometheus, Alertmanager and the schema checkers; a missing
//!   tool fails under `CI=true`.
//! - [`promql`]: Grafana variable expansion and the metric selectors of an expression.
//! - [`rules`]: rule files, their alerts and records, time compression for the end-to-end run.
//! - [`dashboards`]: dashboard JSON, its queries, and the lint.
//! - [`grafana`]: template variables resolved against a Prometheus the way Grafana does.
//! - [`daemon`], [`compose`]: a server process on loopback, started with the compose
//!   service's own flags.
//! - [`prometheus`]: a Prometheus process on loopback and its HTTP query API.
//! - [`alertmanager`]: an Alertmanager on loopback with the shipped config, and its alerts.
//! - [`docker`], [`dockerignore`]: the Dockerfile's build stage rehearsed on the host.
//! - [`browser`]: headless Chromium, for the load generator's HTML report.
//! - [`webdriver`]: Chromium driven over WebDriver (chromedriver), for the control page.

use std::path::PathBuf;

pub mod alertmanager;
pub mod browser;
pub mod compose;
pub mod daemon;
pub mod dashboards;
pub mod docker;
pub mod dockerignore;
pub mod grafana;
pub mod prometheus;
pub mod promql;
pub mod rules;
pub mod tools;
pub mod webdriver;

/// The repository root (the workspace directory).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}
