//! Everything a run needs, validated: what [`crate::cli`] builds from the command line and
//! what [`crate::run()`] takes, with a constant-rate starting point for tests and library users.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::OutputFormat;
use crate::client::ClientOptions;
use crate::report::Thresholds;
use crate::scenario::TimedFault;
use crate::schedule::{ArrivalProcess, Plan, Profile};

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `None`: start an embedded order server.
    pub target: Option<String>,
    pub plan: Plan,
    pub arrivals: ArrivalProcess,
    pub seed: u64,
    pub scenario: Option<String>,
    pub faults: Vec<TimedFault>,
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub max_in_flight: usize,
    /// Sends wait for the next multiple of this from the start (zero: each at its own time).
    pub tick: Duration,
    pub client: ClientOptions,
    pub admin_url: Option<String>,
    pub admin_token: Option<String>,
    pub output: OutputFormat,
    pub report_file: Option<PathBuf>,
    /// `--report-html`: the report as a self-contained HTML page.
    pub report_html: Option<PathBuf>,
    /// Keep a time series (per second, coarser past an hour) in the report.
    pub series: bool,
    /// The command line the report names (secrets already redacted), or empty.
    pub command_line: Vec<String>,
    pub metrics_addr: Option<SocketAddr>,
    pub metrics_linger: Duration,
    pub thresholds: Thresholds,
    pub drain: Duration,
    pub progress: bool,
    /// `--control-addr`: the live control API, if on.
    pub control: Option<crate::control::ControlConfig>,
    /// `--run-id`: the id every shard of this run shares, if given.
    pub run_id: Option<String>,
    /// The full-screen terminal view, when the binary shows one: the log lines it shows.
    pub terminal: Option<crate::tui::LogBuffer>,
    /// The highest total rate a live change may ask for (`--max-rate`).
    pub max_rate: f64,
    /// A live state the caller steers the run with (the capacity search); otherwise the run
    /// makes one when a front-end needs it.
    pub live: Option<std::sync::Arc<crate::live::Live>>,
}

impl RunConfig {
    /// A run against `target` at constant rates: the starting point for tests and library users.
    pub fn constant(target: Option<String>, food_rate: f64, clothing_rate: f64) -> Self {
        RunConfig {
            target,
            plan: Plan::single(Profile {
                shape: crate::schedule::Shape::Constant,
                rates: [food_rate, clothing_rate],
                flash_sales: None,
            }),
            arrivals: ArrivalProcess::Uniform,
            seed: 1,
            scenario: None,
            faults: Vec::new(),
            duration: None,
            requests: None,
            max_in_flight: 512,
            tick: Duration::ZERO,
            client: ClientOptions {
                timeout: Duration::from_secs(10),
                headers: Vec::new(),
                insecure: false,
                ca_certs: Vec::new(),
                http2: false,
                max_idle: 512,
            },
            admin_url: None,
            admin_token: None,
            output: OutputFormat::Text,
            report_file: None,
            report_html: None,
            series: true,
            command_line: Vec::new(),
            metrics_addr: None,
            metrics_linger: Duration::ZERO,
            thresholds: Thresholds::default(),
            drain: Duration::from_secs(5),
            progress: false,
            control: None,
            run_id: None,
            terminal: None,
            max_rate: 100_000.0,
            live: None,
        }
    }
}
