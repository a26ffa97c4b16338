//! The capacity search's result as people and programs read it: each step (asked and achieved
//! rates, percentiles, errors, verdicts, whether the generator was the limit) and the answer
//! (`capacity`: rate, interval, what bounded it), as text or JSON with a schema version.

use std::io::{self, Write};

use serde::Serialize;

use super::search::Outcome;
use crate::threshold::Check;

/// The JSON's `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// One step of the search.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub index: usize,
    /// Requests a second asked for, both types together.
    pub asked_rate: f64,
    pub food_rate: f64,
    pub clothing_rate: f64,
    /// Answers a second over the span judged.
    pub achieved_rate: f64,
    /// Seconds judged (after the warm-up), and whether the step was cut short.
    pub judged_seconds: f64,
    pub ended_early: bool,
    /// Corrected latency over the span judged (ms); null without answers.
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub error_ratio: f64,
    pub lag_p99_ms: Option<f64>,
    pub late: u64,
    pub skipped: u64,
    pub verdicts: Vec<Check>,
    /// `pass`, `fail` or `generator_limited`.
    pub verdict: &'static str,
    pub generator_limited: bool,
    /// Seconds the load paused after the step, until the target answered what was in
    /// flight (after a failed step only).
    pub drain_seconds: f64,
}

impl StepReport {
    /// The thresholds the step missed, by expression.
    pub fn missed(&self) -> impl Iterator<Item = &str> {
        self.verdicts
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
    }
}

/// The whole search.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityReport {
    pub schema_version: u32,
    pub kind: &'static str,
    pub loadgen_version: String,
    pub target: String,
    pub started_at: Option<String>,
    pub duration_seconds: f64,
    /// The share of each type in every step's rate.
    pub mix: Mix,
    pub thresholds: Vec<String>,
    pub settings: Settings,
    pub capacity: Outcome,
    pub steps: Vec<StepReport>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Mix {
    pub food: f64,
    pub clothing: f64,
}

/// How the search ran.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Settings {
    pub start_rate: f64,
    pub step_seconds: f64,
    pub warmup_seconds: f64,
    pub growth: f64,
    pub precision: f64,
    pub max_rate: f64,
    pub max_duration_seconds: f64,
    pub generator_lag_ms: f64,
}

impl CapacityReport {
    /// The exit code: 0 when a rate passed (a capacity, or at least a lower bound), 1 when
    /// not even the start rate did.
    pub fn exit_code(&self) -> u8 {
        match self.capacity.lower {
            Some(_) => crate::exit::OK,
            None => crate::exit::THRESHOLD,
        }
    }

    /// The answer in one sentence.
    pub fn answer(&self) -> String {
        let c = &self.capacity;
        let r = |v: f64| format!("{v:.1}/s");
        match (c.rate, c.found, c.bounded_by.as_str()) {
            (Some(rate), true, by) => format!(
                "capacity {} (food {} + clothing {}): between {} and {}, bounded by {by}",
                r(rate),
                r(rate * self.mix.food),
                r(rate * self.mix.clothing),
                r(rate),
                c.upper.map_or("-".into(), r),
            ),
            (Some(rate), false, "generator") => format!(
                "at least {}, generator-limited: the load generator fell behind at the next step, so that step measured the generator, not the service",
                r(rate)
            ),
            (None, _, "generator") => "no answer, generator-limited: the load generator fell behind at the start rate".into(),
            (Some(rate), false, "max_rate") => format!(
                "at least {}: every step passed up to --max-rate",
                r(rate)
            ),
            (Some(rate), false, why) => format!(
                "at least {} (the search stopped: {why}){}",
                r(rate),
                c.upper.map_or(String::new(), |u| format!("; {} failed", r(u)))
            ),
            (None, _, why) => format!("no capacity: even the start rate failed {why}"),
        }
    }

    pub fn write_json(&self, w: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *w, self)?;
        writeln!(w)
    }

    pub fn write_text(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(w, "capacity search of {}", self.target)?;
        writeln!(
            w,
            "thresholds: {}   mix: food {:.0} %, clothing {:.0} %",
            self.thresholds.join(", "),
            self.mix.food * 100.0,
            self.mix.clothing * 100.0
        )?;
        writeln!(w)?;
        writeln!(
            w,
            "step  asked/s achieved/s   p50 ms   p99 ms  errors   lag p99  judged  verdict"
        )?;
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        for s in &self.steps {
            let failed: Vec<&str> = s.missed().collect();
            let verdict = match s.verdict {
                "fail" => format!("fail ({})", failed.join(", ")),
                v => v.to_string(),
            };
            writeln!(
                w,
                "{:>4} {:>8.1} {:>10.1} {:>8} {:>8} {:>6.2}% {:>9} {:>5.0}s{} {verdict}",
                s.index,
                s.asked_rate,
                s.achieved_rate,
                ms(s.p50_ms),
                ms(s.p99_ms),
                s.error_ratio * 100.0,
                ms(s.lag_p99_ms),
                s.judged_seconds,
                if s.ended_early { "*" } else { " " },
            )?;
        }
        if self.steps.iter().any(|s| s.ended_early) {
            writeln!(w, "(* ended early: it had already failed beyond recovery)")?;
        }
        writeln!(w)?;
        writeln!(w, "{}", self.answer())?;
        writeln!(
            w,
            "open model: each rate is offered whatever the answers, and latency counts from the intended send time, so this is the rate users are served within the thresholds, below a closed-loop tool's maximum"
        )
    }
}
