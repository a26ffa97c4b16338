//! The end-of-run report: built from the recorder's numbers, checked against the thresholds,
//! and rendered as text for people or as one JSON document (with a schema version) for
//! machines, to any writer.

use std::io::{self, Write};
use std::time::Duration;

use hdrhistogram::Histogram;
use order_server::contract::OrderType;
use serde::Serialize;

use crate::dispatch::StopReason;
use crate::hdr;
use crate::outcome::OutcomeClass;
use crate::recorder::TypeStats;
use crate::series::Series;
pub use crate::threshold::{Check, Thresholds};

mod text;

/// Bumped whenever a field changes meaning or disappears. 2: `target_rate` is the rate the
/// plan asked for (it was the scheduled count per second, now `scheduled_rate`).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub min_ms: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn from_micros(h: &Histogram<u64>) -> Self {
        let ms = |v: u64| v as f64 / 1000.0;
        if h.is_empty() {
            return Latency {
                count: 0,
                min_ms: 0.0,
                mean_ms: 0.0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                p999_ms: 0.0,
                max_ms: 0.0,
            };
        }
        Latency {
            count: h.len(),
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TypeReport {
    /// Requests that fell due on the schedule.
    pub scheduled: u64,
    pub sent: u64,
    /// Requests that got an answer or an error.
    pub completed: u64,
    pub ok: u64,
    pub failed: u64,
    /// By class: 2xx, 4xx, 5xx, timeout, connect_error, other.
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    /// Sent more than 10 ms after their intended time.
    pub late: u64,
    /// Fell due but never sent (the run stopped first).
    pub skipped: u64,
    /// The rate the plan asked for: its rate integrated over the run, per second.
    pub target_rate: f64,
    /// Requests the schedule drew per second (Poisson arrivals scatter around the target).
    pub scheduled_rate: f64,
    /// Requests completed per second.
    pub achieved_rate: f64,
    /// Failed / completed.
    pub error_ratio: f64,
    /// From the intended send time: what a user waiting on the schedule experienced.
    pub latency_corrected: Latency,
    /// From the actual send: what the server took (plus the network).
    pub latency_service: Latency,
    /// Actual minus intended send time.
    pub schedule_lag: Latency,
    /// The three histograms whole, for merging shards and for other tools.
    pub histograms: Histograms,
}

/// A type's histograms in HdrHistogram's V2 compressed serialization, base64, values in
/// microseconds (lowest 1 µs, highest 1 h, 3 significant digits).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Histograms {
    pub corrected: String,
    pub service: String,
    pub lag: String,
}

/// `--shard I/N` as the report records it.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ShardInfo {
    pub index: u32,
    pub count: u32,
}

/// One phase of the plan: from `start_seconds` to `end_seconds` (`null`: until the run ended).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PhaseSpan {
    pub name: String,
    pub start_seconds: f64,
    pub end_seconds: Option<f64>,
}

impl PhaseSpan {
    /// The phases of `plan` laid end to end.
    pub fn of(plan: &crate::schedule::Plan) -> Vec<PhaseSpan> {
        let mut start = 0.0;
        plan.phases
            .iter()
            .map(|p| {
                let end = p.duration.map(|d| start + d);
                let span = PhaseSpan {
                    name: p.name.clone(),
                    start_seconds: start,
                    end_seconds: end,
                };
                start = end.unwrap_or(start);
                span
            })
            .collect()
    }
}

/// Which latency a distribution is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Corrected,
    Service,
}

impl TypeReport {
    /// `target_rate`: the rate the plan asked for, on average over the run.
    pub fn new(s: &TypeStats, target_rate: f64, elapsed: f64) -> Self {
        let completed = s.completed();
        let failed = completed - s.ok();
        let per_s = |n: u64| {
            if elapsed > 0.0 {
                n as f64 / elapsed
            } else {
                0.0
            }
        };
        TypeReport {
            scheduled: s.scheduled,
            sent: s.sent,
            completed,
            ok: s.ok(),
            failed,
            outcomes: OutcomeClass::ALL
                .iter()
                .map(|o| (o.as_str(), s.outcomes[o.index()]))
                .collect(),
            late: s.late,
            skipped: s.skipped,
            target_rate,
            scheduled_rate: per_s(s.scheduled),
            achieved_rate: per_s(completed),
            error_ratio: if completed > 0 {
                failed as f64 / completed as f64
            } else {
                0.0
            },
            latency_corrected: Latency::from_micros(&s.corrected),
            latency_service: Latency::from_micros(&s.service),
            schedule_lag: Latency::from_micros(&s.lag),
            // Serializing into memory cannot fail for a histogram that took its values.
            histograms: Histograms {
                corrected: hdr::encode(&s.corrected).unwrap_or_default(),
                service: hdr::encode(&s.service).unwrap_or_default(),
                lag: hdr::encode(&s.lag).unwrap_or_default(),
            },
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub schema_version: u32,
    /// The version of the load generator that ran (or merged).
    pub loadgen_version: String,
    pub target: String,
    pub scenario: Option<String>,
    /// The command line, with header values and tokens redacted; empty for a merge.
    pub command_line: Vec<String>,
    /// Wall-clock start, RFC 3339 UTC: what merge aligns shards' series by.
    pub started_at: Option<String>,
    pub duration_seconds: f64,
    /// The plan's phases, in seconds from the start.
    pub phases: Vec<PhaseSpan>,
    /// Why the run ended: duration, requests, scenario_end, interrupted.
    pub stopped_by: StopReason,
    /// This run's share (`--shard`); 0 of 1 for a whole run or a merge of all shards.
    pub shard: ShardInfo,
    pub food: TypeReport,
    pub clothing: TypeReport,
    pub total: TypeReport,
    pub thresholds: Vec<Check>,
    /// Per interval and type (see [`Series`]); `null` with `--no-series`.
    pub series: Option<Series>,
    /// Live changes (`--control-addr`), oldest first; empty for a run nobody steered.
    pub events: Vec<crate::live::Event>,
    /// Which run this is (see [`crate::run_id`]); null in reports from before it.
    pub run: Option<crate::run_id::RunIdentity>,
    /// Some request got an answer (false: nothing listening, or nothing answered before
    /// the drain ran out).
    pub target_reached: bool,
    pub passed: bool,
}

impl Report {
    pub fn build(
        target: String,
        scenario: Option<String>,
        stopped_by: StopReason,
        elapsed: Duration,
        stats: &[TypeStats; 2],
        target_rates: [f64; 2],
        thresholds: &Thresholds,
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        let mut merged = stats[0].clone();
        merged.merge(&stats[1]);
        let total = TypeReport::new(&merged, target_rates[0] + target_rates[1], secs);
        let food = TypeReport::new(
            &stats[OrderType::Food.index()],
            target_rates[OrderType::Food.index()],
            secs,
        );
        let clothing = TypeReport::new(
            &stats[OrderType::Clothing.index()],
            target_rates[OrderType::Clothing.index()],
            secs,
        );
        let checks = thresholds.judge(|scope| match scope {
            Some(t) => (stats[t.index()].counts(), &stats[t.index()].corrected),
            None => (merged.counts(), &merged.corrected),
        });
        let reached = total.completed > total.outcomes["connect_error"];
        let passed = checks.iter().all(|c| c.passed);
        Report {
            schema_version: SCHEMA_VERSION,
            loadgen_version: env!("CARGO_PKG_VERSION").to_string(),
            target,
            scenario,
            command_line: Vec::new(),
            started_at: None,
            duration_seconds: secs,
            phases: Vec::new(),
            stopped_by,
            shard: ShardInfo { index: 0, count: 1 },
            food,
            clothing,
            total,
            thresholds: checks,
            series: None,
            events: Vec::new(),
            run: None,
            target_reached: reached || total_sent_is_zero(stats),
            passed,
        }
    }

    /// Why the target counts as not reached (`None` if it was): connections refused, or
    /// accepted but with no answer before the drain ran out, in the run's own numbers.
    pub fn unreached(&self) -> Option<String> {
        if self.target_reached {
            return None;
        }
        let t = &self.total;
        let refused = t.outcomes["connect_error"];
        let unanswered = t.sent.saturating_sub(t.completed);
        let mut why = Vec::new();
        if refused > 0 {
            why.push(format!(
                "{refused} of {} requests failed to connect",
                t.sent
            ));
        }
        if unanswered > 0 {
            why.push(format!(
                "{unanswered} got no answer before the drain ran out"
            ));
        }
        Some(format!("the target was never reached: {}", why.join(", ")))
    }

    /// The total's percentile distribution of `kind` in HdrHistogram's `.hgrm` text.
    pub fn write_hgrm(&self, w: &mut impl Write, kind: Kind) -> io::Result<()> {
        let encoded = match kind {
            Kind::Corrected => &self.total.histograms.corrected,
            Kind::Service => &self.total.histograms.service,
        };
        let h = hdr::decode(encoded).map_err(io::Error::other)?;
        hdr::write_percentiles(&h, w)
    }

    pub fn write_json(&self, w: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *w, self)?;
        writeln!(w)
    }
}

fn total_sent_is_zero(stats: &[TypeStats; 2]) -> bool {
    stats.iter().all(|s| s.sent == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::Recorder;

    fn stats() -> [TypeStats; 2] {
        let r = Recorder::new(None, true);
        for i in 0..100u64 {
            r.scheduled(OrderType::Food);
            r.sent(OrderType::Food, Duration::from_micros(100));
            let class = if i < 5 {
                OutcomeClass::ServerError
            } else {
                OutcomeClass::Success
            };
            r.completed(
                OrderType::Food,
                class,
                Duration::from_millis(i + 1),
                Duration::from_millis(1),
            );
        }
        r.snapshot()
    }

    #[test]
    fn thresholds_decide_passed() {
        let s = stats();
        let exprs = |list: &[&str]| list.iter().map(|t| t.parse().expect("valid")).collect();
        let ok = Thresholds {
            max_error_ratio: Some(0.1),
            max_p99: Some(Duration::from_millis(150)),
            exprs: exprs(&["p99<150ms", "food.error_ratio<=0.05", "achieved_ratio>0.8"]),
        };
        let r = Report::build(
            "t".into(),
            None,
            StopReason::Requests,
            Duration::from_secs(10),
            &s,
            [12.0, 0.0],
            &ok,
        );
        assert!(r.passed, "{:?}", r.thresholds);
        assert_eq!(r.total.error_ratio, 0.05);
        // Asked for 12/s, the schedule drew 10/s.
        assert_eq!(r.food.target_rate, 12.0);
        assert_eq!(r.food.scheduled_rate, 10.0);
        assert_eq!(r.total.target_rate, 12.0);
        let strict = Thresholds {
            max_error_ratio: Some(0.01),
            max_p99: Some(Duration::from_millis(50)),
            exprs: exprs(&["food.p50<10ms", "achieved_ratio>1", "clothing.p99>1ms"]),
        };
        let r = Report::build(
            "t".into(),
            None,
            StopReason::Requests,
            Duration::from_secs(10),
            &s,
            [12.0, 0.0],
            &strict,
        );
        assert!(!r.passed);
        assert!(r.thresholds.iter().all(|c| !c.passed), "{:?}", r.thresholds);
        let names: Vec<&str> = r.thresholds.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "error_ratio<=0.01",
                "p99<=50ms",
                "food.p50<10ms",
                "achieved_ratio>1",
                "clothing.p99>1ms"
            ]
        );
        // Every request scheduled completed: 1, whatever rate was asked.
        let achieved = &r.thresholds[3];
        assert_eq!((achieved.op, achieved.actual), (">", 1.0));
        let mut text = Vec::new();
        r.write_text(&mut text).expect("write");
        let text = String::from_utf8(text).expect("utf8");
        assert!(
            text.contains("food.p50<10ms") && text.contains("MISSED"),
            "{text}"
        );
    }

    #[test]
    fn json_has_schema_version_and_text_has_percentiles() {
        let r = Report::build(
            "http://x/".into(),
            Some("steady".into()),
            StopReason::Duration,
            Duration::from_secs(10),
            &stats(),
            [10.0, 0.0],
            &Thresholds::default(),
        );
        let mut json = Vec::new();
        r.write_json(&mut json).expect("write");
        let v: serde_json::Value = serde_json::from_slice(&json).expect("json");
        assert_eq!(v["schema_version"], SCHEMA_VERSION);
        assert_eq!(v["food"]["outcomes"]["5xx"], 5);
        assert!(
            v["total"]["latency_corrected"]["p99_ms"]
                .as_f64()
                .expect("p99")
                > 90.0
        );
        let mut text = Vec::new();
        r.write_text(&mut text).expect("write");
        let text = String::from_utf8(text).expect("utf8");
        assert!(
            text.contains("p99.9") && text.contains("corrected") && text.contains("steady"),
            "{text}"
        );
    }
}
