//! The command line (clap derive, every option also an environment variable) and its one-time
//! conversion into a validated [`RunConfig`]; errors name the flag or field at fault.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::client::{ClientError, ClientOptions};
use crate::config::RunConfig;
use crate::endpoint::{parse_base, parse_header, EndpointError};
use crate::report::Thresholds;
use crate::scenario::{Scenario, ScenarioError};
use crate::schedule::{ArrivalProcess, Plan, Profile};
use crate::shape::{check_rate, RateError, ShapeError, ShapeSpec};
use crate::threshold::ThresholdError;

/// A send later than this counts as late, so a longer tick would make every send late.
const MAX_TICK: Duration = crate::recorder::LATE_THRESHOLD;
const MAX_TICK_TEXT: &str = "at most 10ms";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    /// The corrected latency's percentile distribution, HdrHistogram's `.hgrm` text (ms).
    Hgrm,
    /// The same for service time.
    HgrmService,
}

/// `I/N`: this replica is number I (from 0) of N and takes 1/N of every rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected I/N with 0 <= I < N, e.g. 0/3");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Open-model load generator for the order service.
///
/// Sends food and clothing orders on a schedule that does not wait for answers (no coordinated
/// omission), measures latency from the intended send time, prints a report, and exits 0 (ok),
/// 1 (a threshold missed), 2 (usage error, or the target was never reached) or 3 (the report
/// could not be written, e.g. a broken pipe). Without --target
/// it starts an order server in-process on 127.0.0.1 and drives that. `loadgen merge
/// REPORT.json...` combines the reports of a sharded run (see `loadgen merge --help`);
/// `loadgen capacity` finds the highest rate within the thresholds (`loadgen capacity
/// --help`).
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about,
    long_about,
    allow_negative_numbers = true
)]
pub struct Cli {
    /// Base URL of the order service, e.g. http://127.0.0.1:5001 (default: an embedded server).
    #[arg(long, env = "LOADGEN_TARGET")]
    pub target: Option<String>,

    /// Food orders per second (fractional allowed); with --shape daily, the peak rate.
    #[arg(
        long,
        env = "LOADGEN_FOOD_RATE",
        allow_negative_numbers = true,
        default_value_t = 10.0,
        conflicts_with = "scenario"
    )]
    pub food_rate: f64,

    /// Clothing orders per second (fractional allowed); with --shape daily, the peak rate.
    #[arg(
        long,
        env = "LOADGEN_CLOTHING_RATE",
        allow_negative_numbers = true,
        default_value_t = 5.0,
        conflicts_with = "scenario"
    )]
    pub clothing_rate: f64,

    #[command(flatten)]
    pub shape: ShapeSpec,

    /// Spacing of requests: uniform (even) or poisson (like independent customers).
    #[arg(long, env = "LOADGEN_ARRIVALS", value_enum, default_value = "poisson")]
    pub arrivals: ArrivalProcess,

    /// Seed for arrivals and flash sales: same seed, same schedule.
    #[arg(long, env = "LOADGEN_SEED", default_value_t = 1)]
    pub seed: u64,

    /// A bundled scenario (steady, daily, flash-sale, error-burst, latency-spike, outage) or a
    /// TOML file; replaces the rate and shape options.
    #[arg(long, env = "LOADGEN_SCENARIO")]
    pub scenario: Option<String>,

    /// Stop after this long (default: the scenario's length, else until Ctrl-C).
    #[arg(long, env = "LOADGEN_DURATION", value_parser = order_server::config::parse_duration)]
    pub duration: Option<Duration>,

    /// Stop after this many requests have fallen due (both types together).
    #[arg(long, env = "LOADGEN_REQUESTS")]
    pub requests: Option<u64>,

    /// Most requests in flight at once; a due request waits for a slot and is counted late.
    #[arg(long, env = "LOADGEN_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// Wake at most once per tick and send every request due by then, e.g. 1ms as wrk2 does:
    /// fewer wake-ups per request at high rates, for sends up to one tick late (the lag is
    /// recorded and latency still counts from the intended time). 0s sends each on time (on
    /// plain http, requests due within 200us of a wake-up share it).
    #[arg(long, env = "LOADGEN_TICK", default_value = "0s", value_parser = order_server::config::parse_duration)]
    pub tick: Duration,

    /// Per-request timeout (counted as outcome "timeout").
    #[arg(long, env = "LOADGEN_TIMEOUT", default_value = "10s", value_parser = order_server::config::parse_duration)]
    pub timeout: Duration,

    /// Extra request header NAME:VALUE (repeatable), e.g. an ingress auth token.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    pub headers: Vec<String>,

    /// Skip TLS certificate verification (self-signed test clusters only).
    #[arg(long, env = "LOADGEN_INSECURE")]
    pub insecure: bool,

    /// Also trust the CA certificate(s) in this PEM file (a cluster behind a private CA).
    #[arg(long, env = "LOADGEN_CACERT", value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,

    /// Speak HTTP/2 (prior knowledge: h2c on http://, h2 on https://).
    #[arg(long, env = "LOADGEN_HTTP2")]
    pub http2: bool,

    /// Base URL of the server's fault API (its --admin-listen), for scenarios with faults;
    /// needs --target (the same server's orders address).
    #[arg(long, env = "LOADGEN_ADMIN_URL")]
    pub admin_url: Option<String>,

    /// Bearer token for the fault API.
    #[arg(long, env = "LOADGEN_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Report format on standard output: text, json, or the percentile distribution in
    /// HdrHistogram's .hgrm text of corrected latency (hgrm) or service time (hgrm-service).
    #[arg(long, env = "LOADGEN_OUTPUT", value_enum, default_value = "text")]
    pub output: OutputFormat,

    /// Also write the JSON report to this file.
    #[arg(long, env = "LOADGEN_REPORT_FILE")]
    pub report_file: Option<PathBuf>,

    /// Also write the report as one self-contained HTML page with plots (opens offline).
    #[arg(long, env = "LOADGEN_REPORT_HTML")]
    pub report_html: Option<PathBuf>,

    /// Keep no time series: the report has its totals only, the HTML page no plots over time.
    #[arg(long, env = "LOADGEN_NO_SERIES")]
    pub no_series: bool,

    /// Serve the load generator's own Prometheus metrics here (off by default).
    #[arg(long, env = "LOADGEN_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Keep serving /metrics this long after the run, so the last scrape sees the end.
    #[arg(long, env = "LOADGEN_METRICS_LINGER", default_value = "0s", value_parser = order_server::config::parse_duration)]
    pub metrics_linger: Duration,

    /// This replica's share, I/N: takes 1/N of every rate (N replicas add up to the total).
    #[arg(long, env = "LOADGEN_SHARD", default_value = "0/1")]
    pub shard: Shard,

    /// Exit 1 unless this holds (repeatable): `[food.|clothing.]METRIC OP LIMIT` with METRIC
    /// pNN (corrected latency, e.g. p99, p99.9), error_ratio or achieved_ratio, OP <, <=, > or
    /// >=, e.g. `p99<250ms`, `food.p99.9<1s`, `clothing.error_ratio<0.01`, `achieved_ratio>0.99`.
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,

    /// Exit 1 if failed/completed exceeds this ratio (shorthand for error_ratio<=R).
    #[arg(long, env = "LOADGEN_MAX_ERROR_RATIO")]
    pub max_error_ratio: Option<f64>,

    /// Exit 1 if the corrected p99 latency exceeds this, e.g. 250ms (shorthand for p99<=D).
    #[arg(long, env = "LOADGEN_MAX_P99", value_parser = order_server::config::parse_duration)]
    pub max_p99: Option<Duration>,

    /// After stopping, wait this long for requests in flight before reporting.
    #[arg(long, env = "LOADGEN_DRAIN", default_value = "5s", value_parser = order_server::config::parse_duration)]
    pub drain: Duration,

    /// No live progress line (it is off anyway when standard error is not a terminal).
    #[arg(long, env = "LOADGEN_NO_PROGRESS")]
    pub no_progress: bool,

    /// No full-screen terminal view: the one-line progress instead (the view needs both
    /// standard output and standard error to be terminals).
    #[arg(long, env = "LOADGEN_NO_TUI")]
    pub no_tui: bool,

    #[command(flatten)]
    pub control: crate::control::ControlArgs,

    #[command(flatten)]
    pub run_id: crate::run_id::RunIdArgs,

    /// Log filter for messages on standard error.
    #[arg(long, env = "LOADGEN_LOG", default_value = "warn,loadgen=info")]
    pub log: String,
}

/// Why a command line does not make a run; every message names the flag or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("--admin-url: {0}")]
    AdminUrl(#[source] EndpointError),
    #[error("--admin-url needs --target: without it the load goes to an embedded order server (which brings its own fault API), so the faults would go to a server that gets none of the load; pass the server's address as --target")]
    AdminWithoutTarget,
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    #[error("{flag} must be {expected}, got {got}")]
    Range {
        flag: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("{flag} must be {expected}")]
    Bound {
        flag: &'static str,
        expected: &'static str,
    },
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error(transparent)]
    Rate(#[from] RateError),
    #[error(transparent)]
    CaCert(#[from] ClientError),
    #[error(transparent)]
    Threshold(#[from] ThresholdError),
    #[error("{0}")]
    RunId(String),
}

/// Combines the JSON reports of one run's shards (`--shard I/N`, one report each) into one
/// report: counts summed, histograms added, so the percentiles are those of every request.
/// Exit 0, 1 (a threshold missed), 2 (inputs that do not belong together) or 3 (the merged
/// report could not be written).
#[derive(Debug, Parser)]
#[command(name = "loadgen merge", bin_name = "loadgen merge", version)]
pub struct MergeCli {
    /// The shards' JSON reports: files written by --report-file or --output json, or the
    /// output of `kubectl logs` holding one.
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,

    /// Report format on standard output: text, json, hgrm or hgrm-service.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,

    /// Also write the merged JSON report to this file.
    #[arg(long)]
    pub report_file: Option<PathBuf>,

    /// Also write the merged report as one self-contained HTML page with plots.
    #[arg(long)]
    pub report_html: Option<PathBuf>,

    /// Exit 1 unless this holds for the merged run (repeatable; as for a run).
    #[arg(long = "threshold", value_name = "EXPR")]
    pub thresholds: Vec<String>,
}

impl MergeCli {
    /// The thresholds, parsed.
    pub fn thresholds(&self) -> Result<Thresholds, ThresholdError> {
        Ok(Thresholds {
            exprs: self
                .thresholds
                .iter()
                .map(|t| t.parse())
                .collect::<Result<_, _>>()?,
            ..Thresholds::default()
        })
    }
}

impl Cli {
    pub fn into_config(self) -> Result<RunConfig, ConfigError> {
        if let Some(t) = &self.target {
            parse_base(t)?;
        }
        if let Some(a) = &self.admin_url {
            parse_base(a).map_err(ConfigError::AdminUrl)?;
            if self.target.is_none() {
                return Err(ConfigError::AdminWithoutTarget);
            }
        }
        let headers = self
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        if self.max_in_flight == 0 || self.max_in_flight > 100_000 {
            return Err(ConfigError::Range {
                flag: "--max-in-flight",
                expected: "from 1 to 100000",
                got: self.max_in_flight.to_string(),
            });
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Bound {
                flag: "--timeout",
                expected: "longer than 0",
            });
        }
        if self.duration.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Bound {
                flag: "--duration",
                expected: "longer than 0",
            });
        }
        if self.tick > MAX_TICK {
            return Err(ConfigError::Range {
                flag: "--tick",
                expected: MAX_TICK_TEXT,
                got: humantime::format_duration(self.tick).to_string(),
            });
        }
        if self.requests == Some(0) {
            return Err(ConfigError::Bound {
                flag: "--requests",
                expected: "at least 1",
            });
        }
        if let Some(r) = self.max_error_ratio {
            if r.is_sign_negative() || !(0.0..=1.0).contains(&r) {
                return Err(ConfigError::Range {
                    flag: "--max-error-ratio",
                    expected: "between 0 and 1",
                    got: r.to_string(),
                });
            }
        }
        let (mut plan, faults, scenario, arrivals) = match &self.scenario {
            Some(s) => {
                let sc = Scenario::load(s, self.seed)?;
                (
                    sc.plan,
                    sc.faults,
                    Some(sc.name),
                    sc.arrivals.unwrap_or(self.arrivals),
                )
            }
            None => {
                let food = check_rate("--food-rate", self.food_rate)?;
                let clothing = check_rate("--clothing-rate", self.clothing_rate)?;
                let (shape, flash_sales) = self.shape.build(self.duration, self.seed)?;
                let plan = Plan::single(Profile {
                    shape,
                    rates: [food, clothing],
                    flash_sales,
                });
                (plan, Vec::new(), None, self.arrivals)
            }
        };
        plan.shard = (self.shard.index, self.shard.count);
        let ca_certs = match &self.cacert {
            Some(path) => crate::client::read_ca_certs(path)?,
            None => Vec::new(),
        };
        Ok(RunConfig {
            target: self.target,
            plan,
            arrivals,
            seed: self.seed,
            scenario,
            faults,
            duration: self.duration,
            requests: self.requests,
            max_in_flight: self.max_in_flight,
            tick: self.tick,
            client: ClientOptions {
                timeout: self.timeout,
                headers,
                insecure: self.insecure,
                ca_certs,
                http2: self.http2,
                max_idle: self.max_in_flight,
            },
            admin_url: self.admin_url,
            admin_token: self.admin_token,
            output: self.output,
            report_file: self.report_file,
            report_html: self.report_html,
            series: !self.no_series,
            command_line: Vec::new(),
            metrics_addr: self.metrics_addr,
            metrics_linger: self.metrics_linger,
            thresholds: Thresholds {
                max_error_ratio: self.max_error_ratio,
                max_p99: self.max_p99,
                exprs: self
                    .thresholds
                    .iter()
                    .map(|t| t.parse())
                    .collect::<Result<_, _>>()?,
            },
            drain: self.drain,
            progress: !self.no_progress,
            terminal: None,
            max_rate: self.control.max_rate,
            live: None,
            control: self.control.validate()?,
            run_id: self.run_id.validated().map_err(ConfigError::RunId)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<RunConfig, String> {
        let cli = Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.into_config().map_err(|e| e.to_string())
    }

    #[test]
    fn the_tick_bound_is_the_late_threshold() {
        assert_eq!(
            format!("at most {}", humantime::format_duration(MAX_TICK)),
            MAX_TICK_TEXT
        );
    }

    #[test]
    fn defaults_and_shard() {
        let c = config(&["--shard", "1/4", "--food-rate", "8"]).expect("valid");
        assert_eq!(c.plan.shard, (1, 4));
        assert_eq!(
            c.plan.rate(0.0, order_server::contract::OrderType::Food),
            2.0
        );
        assert!(c.target.is_none());
    }

    #[test]
    fn bad_input_names_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--food-rate=-3"], "--food-rate"),
            (&["--food-rate", "lots"], "--food-rate"),
            (&["--shard", "3/3"], "--shard"),
            (&["--shard", "x"], "--shard"),
            (&["--target", "localhost:5001"], "--target"),
            (&["--header", "nocolon"], "--header"),
            (&["--max-in-flight", "0"], "--max-in-flight"),
            (&["--duration", "0s"], "--duration"),
            (&["--duration", "forever"], "--duration"),
            (&["--max-error-ratio", "2"], "--max-error-ratio"),
            (&["--shape", "zigzag"], "--shape"),
            (&["--shape", "ramp"], "--ramp-over"),
            (&["--scenario", "nope"], "--scenario"),
            (&["--scenario", "steady", "--food-rate", "3"], "--food-rate"),
            (&["--requests", "0"], "--requests"),
        ];
        for (args, needle) in cases {
            let e = config(args).expect_err(&format!("{args:?}"));
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn scenario_brings_its_plan_and_faults() {
        let c = config(&["--scenario", "error-burst"]).expect("valid");
        assert_eq!(c.scenario.as_deref(), Some("error-burst"));
        assert_eq!(c.faults.len(), 1);
        assert_eq!(c.plan.length(), Some(600.0));
    }
}
