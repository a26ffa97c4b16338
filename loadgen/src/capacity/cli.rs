//! `loadgen capacity`'s command line: every option of a run that says what to load and how
//! (target, mix, client, thresholds, output, metrics), plus the search's own, validated once
//! into a run configuration and a [`SearchConfig`]. Options that shape a run in time
//! (`--duration`, `--scenario`, a shape, `--control-addr`) have no meaning here and are
//! refused, as is a search without a latency threshold to judge by.

use std::time::Duration;

use clap::{Args, Parser};

use super::SearchConfig;
use crate::cli::{Cli, ConfigError, OutputFormat};
use crate::config::RunConfig;
use crate::threshold::Metric;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen capacity",
    bin_name = "loadgen capacity",
    version,
    about = "Find the highest rate the target holds within its thresholds: an open-model load, stepped up geometrically until a step fails, then bisected"
)]
pub struct CapacityCli {
    #[command(flatten)]
    pub search: SearchArgs,

    #[command(flatten)]
    pub run: Cli,
}

/// The search's own options.
#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// The first step's total rate (default: --food-rate + --clothing-rate); the mix of the
    /// two stays the same throughout.
    #[arg(long, env = "LOADGEN_START_RATE")]
    pub start_rate: Option<f64>,

    /// How long each step holds its rate.
    #[arg(long, env = "LOADGEN_STEP", default_value = "30s", value_parser = order_server::config::parse_duration)]
    pub step: Duration,

    /// The start of each step that is not judged (connections warm, queues settle).
    #[arg(long, env = "LOADGEN_WARMUP", default_value = "5s", value_parser = order_server::config::parse_duration)]
    pub warmup: Duration,

    /// Each passing step's rate times this is the next, until a step fails.
    #[arg(long, env = "LOADGEN_GROWTH", default_value_t = 2.0)]
    pub growth: f64,

    /// Bisect until (failing - passing) / passing is at most this.
    #[arg(long, env = "LOADGEN_PRECISION", default_value_t = 0.05)]
    pub precision: f64,

    /// A step whose schedule lag p99 is above this (or with late or skipped sends) measured
    /// the generator, not the service.
    #[arg(long, env = "LOADGEN_GENERATOR_LAG", default_value = "1ms", value_parser = order_server::config::parse_duration)]
    pub generator_lag: Duration,

    /// The longest the search may take; it then answers with the interval it has.
    #[arg(long, env = "LOADGEN_MAX_DURATION", default_value = "30m", value_parser = order_server::config::parse_duration)]
    pub max_duration: Duration,
}

/// Why a capacity command line does not make a search.
#[derive(Debug, thiserror::Error)]
pub enum CapacityConfigError {
    #[error(transparent)]
    Run(#[from] ConfigError),
    #[error("{0} has no meaning in a capacity search, which steps its own rates")]
    NotHere(&'static str),
    #[error("give at least one latency threshold, e.g. --threshold 'p99<250ms': the search judges each step by it")]
    NoLatencyThreshold,
    #[error("{0}")]
    Invalid(String),
}

impl CapacityCli {
    /// The run's configuration and the search's.
    pub fn into_configs(self) -> Result<(RunConfig, SearchConfig), CapacityConfigError> {
        let s = self.search;
        let given = |present: bool, flag: &'static str| {
            if present {
                Err(CapacityConfigError::NotHere(flag))
            } else {
                Ok(())
            }
        };
        given(self.run.scenario.is_some(), "--scenario")?;
        given(self.run.duration.is_some(), "--duration")?;
        given(self.run.requests.is_some(), "--requests")?;
        given(self.run.control.control_addr.is_some(), "--control-addr")?;
        // Each shard would search its share alone, and the shares' answers do not add up.
        given(self.run.shard.count != 1, "--shard")?;
        let run = self.run.into_config()?;
        let profile = &run.plan.phases[0].profile;
        if !profile.is_constant() {
            return Err(CapacityConfigError::NotHere("--shape"));
        }
        if !matches!(run.output, OutputFormat::Text | OutputFormat::Json) {
            return Err(CapacityConfigError::Invalid(
                "--output must be text or json for a capacity search".into(),
            ));
        }
        let t = &run.thresholds;
        let latency = t
            .shorthands()
            .iter()
            .chain(&t.exprs)
            .any(|t| matches!(t.metric, Metric::Percentile(_)));
        if !latency {
            return Err(CapacityConfigError::NoLatencyThreshold);
        }
        let mix = profile.rates[0] + profile.rates[1];
        if mix <= 0.0 {
            return Err(CapacityConfigError::Invalid(
                "--food-rate and --clothing-rate set the mix: at least one must be above 0".into(),
            ));
        }
        let max_rate = run.max_rate;
        let start = s.start_rate.unwrap_or(mix);
        let bad = |m: String| Err(CapacityConfigError::Invalid(m));
        if !(start.is_finite() && start > 0.0 && start <= max_rate) {
            return bad(format!(
                "--start-rate must be above 0 and at most --max-rate ({max_rate}), got {start}"
            ));
        }
        if !(s.growth > 1.0 && s.growth <= 100.0) {
            return bad(format!(
                "--growth must be above 1 and at most 100, got {}",
                s.growth
            ));
        }
        if !(s.precision > 0.0 && s.precision <= 1.0) {
            return bad(format!(
                "--precision must be above 0 and at most 1, got {}",
                s.precision
            ));
        }
        // A step is judged from the tick after its warm-up: a warm-up under a second could
        // judge part of the step before.
        if s.warmup < Duration::from_secs(1) {
            return bad("--warmup must be at least 1s".into());
        }
        if s.warmup + Duration::from_secs(1) > s.step {
            return bad("--step must be at least 1s longer than --warmup".into());
        }
        if s.max_duration < s.step {
            return bad("--max-duration must be at least one --step".into());
        }
        let search = SearchConfig {
            start_rate: start,
            step: s.step,
            warmup: s.warmup,
            growth: s.growth,
            precision: s.precision,
            max_rate,
            max_duration: s.max_duration,
            generator_lag: s.generator_lag,
        };
        Ok((run, search))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<(RunConfig, SearchConfig), String> {
        let cli = CapacityCli::try_parse_from(
            std::iter::once("loadgen capacity").chain(args.iter().copied()),
        )
        .map_err(|e| e.to_string())?;
        cli.into_configs().map_err(|e| e.to_string())
    }

    #[test]
    fn options_are_validated_and_meaningless_ones_refused() {
        let (run, s) = parse(&[
            "--threshold",
            "p99<250ms",
            "--food-rate",
            "6",
            "--clothing-rate",
            "2",
        ])
        .expect("valid");
        assert_eq!(s.start_rate, 8.0, "the mix's total by default");
        assert_eq!(
            (s.step, s.warmup),
            (Duration::from_secs(30), Duration::from_secs(5))
        );
        assert_eq!(run.plan.phases[0].profile.rates, [6.0, 2.0]);
        for (args, want) in [
            (
                &["--threshold", "error_ratio<0.01"][..],
                "latency threshold",
            ),
            (
                &["--threshold", "p99<1s", "--duration", "1m"][..],
                "--duration",
            ),
            (
                &["--threshold", "p99<1s", "--scenario", "steady"][..],
                "--scenario",
            ),
            (&["--threshold", "p99<1s", "--shape", "sine"][..], "--shape"),
            (&["--threshold", "p99<1s", "--growth", "1"][..], "--growth"),
            (
                &["--threshold", "p99<1s", "--precision", "0"][..],
                "--precision",
            ),
            (
                &["--threshold", "p99<1s", "--step", "5s", "--warmup", "5s"][..],
                "--step",
            ),
            (
                &["--threshold", "p99<1s", "--start-rate", "1e9"][..],
                "--start-rate",
            ),
            (
                &["--threshold", "p99<1s", "--output", "hgrm"][..],
                "--output",
            ),
            (
                &[
                    "--threshold",
                    "p99<1s",
                    "--food-rate",
                    "0",
                    "--clothing-rate",
                    "0",
                ][..],
                "mix",
            ),
        ] {
            let err = parse(args).expect_err("refused");
            assert!(err.contains(want), "{args:?}: {err}");
        }
    }
}
