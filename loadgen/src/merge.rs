//! `loadgen merge`: the JSON reports of one run's shards combined into one report, without
//! loss: counts summed, histograms added (so percentiles are those of every sample, not an
//! average of percentiles), target rates summed, the longest duration. Inputs that do not
//! belong together are refused: another schema, the same shard twice, shards of different
//! splits, or a shard missing. A report may sit among log lines (`kubectl logs` of a pod
//! mixes them): the pretty-printed object from its first `{` line to its last `}` line is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use order_server::contract::OrderType;
use serde::Deserialize;

use crate::dispatch::StopReason;
use crate::hdr;
use crate::outcome::OutcomeClass;
use crate::recorder::TypeStats;
use crate::report::{Report, ShardInfo, Thresholds, SCHEMA_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no reports to merge")]
    Empty,
    #[error("{0}: cannot read: {1}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{0}: not a load generator JSON report ({1})")]
    NotAReport(PathBuf, String),
    #[error("{0}: schema_version {1}, but this loadgen reads {SCHEMA_VERSION}")]
    Schema(PathBuf, u32),
    #[error("{0}: a histogram does not decode: {1}")]
    Histogram(PathBuf, #[source] hdr::HdrError),
    #[error("{0} and {1} are both shard {2}/{3}")]
    SameShard(PathBuf, PathBuf, u32, u32),
    #[error("{0} is a shard of {1}, {2} of {3}: not the same run")]
    ShardCounts(PathBuf, u32, PathBuf, u32),
    #[error("shard {0} of {1} is missing (given: {2})")]
    MissingShard(u32, u32, String),
}

#[derive(Debug, Deserialize)]
struct ReportIn {
    target: String,
    scenario: Option<String>,
    duration_seconds: f64,
    stopped_by: StopReason,
    shard: ShardInfo,
    food: TypeIn,
    clothing: TypeIn,
}

#[derive(Debug, Deserialize)]
struct TypeIn {
    scheduled: u64,
    sent: u64,
    late: u64,
    skipped: u64,
    outcomes: BTreeMap<String, u64>,
    target_rate: f64,
    histograms: HistogramsIn,
}

#[derive(Debug, Deserialize)]
struct HistogramsIn {
    corrected: String,
    service: String,
    lag: String,
}

/// The JSON object in `text`: the whole text, or the object among log lines.
fn json_in(path: &Path, text: &str) -> Result<serde_json::Value, MergeError> {
    let whole = serde_json::from_str::<serde_json::Value>(text);
    let err = match whole {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().position(|l| l.trim_end() == "{");
    let last = lines.iter().rposition(|l| l.trim_end() == "}");
    match (first, last) {
        (Some(a), Some(b)) if a < b => serde_json::from_str(&lines[a..=b].join("\n"))
            .map_err(|e| MergeError::NotAReport(path.into(), e.to_string())),
        _ => Err(MergeError::NotAReport(path.into(), err.to_string())),
    }
}

/// Reads one shard report, its schema checked before its fields.
pub fn read(path: &Path) -> Result<(PathBuf, ReportInfo), MergeError> {
    let text = std::fs::read_to_string(path).map_err(|e| MergeError::Read(path.into(), e))?;
    let value = json_in(path, &text)?;
    match value["schema_version"].as_u64() {
        Some(v) if v == u64::from(SCHEMA_VERSION) => {}
        Some(v) => return Err(MergeError::Schema(path.into(), v as u32)),
        None => {
            return Err(MergeError::NotAReport(
                path.into(),
                "no schema_version".into(),
            ))
        }
    }
    let report = serde_json::from_value(value)
        .map_err(|e| MergeError::NotAReport(path.into(), e.to_string()))?;
    Ok((path.into(), ReportInfo(report)))
}

/// One shard's report as read (opaque outside this module).
#[derive(Debug)]
pub struct ReportInfo(ReportIn);

/// Merges the reports of `paths` into one, judged by `thresholds`.
pub fn merge(paths: &[PathBuf], thresholds: &Thresholds) -> Result<Report, MergeError> {
    let inputs = paths
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    check_shards(&inputs)?;
    let first = &inputs.first().ok_or(MergeError::Empty)?.1 .0;
    let mut stats = [TypeStats::new(), TypeStats::new()];
    let mut target_rates = [0.0; 2];
    let mut elapsed: f64 = 0.0;
    let mut stopped_by = first.stopped_by;
    for (path, ReportInfo(r)) in &inputs {
        elapsed = elapsed.max(r.duration_seconds);
        if r.stopped_by == StopReason::Interrupted {
            stopped_by = StopReason::Interrupted;
        }
        for t in OrderType::ALL {
            let part = match t {
                OrderType::Food => &r.food,
                OrderType::Clothing => &r.clothing,
            };
            let s = &mut stats[t.index()];
            s.scheduled += part.scheduled;
            s.sent += part.sent;
            s.late += part.late;
            s.skipped += part.skipped;
            for class in OutcomeClass::ALL {
                s.outcomes[class.index()] +=
                    part.outcomes.get(class.as_str()).copied().unwrap_or(0);
            }
            let decode =
                |text: &str| hdr::decode(text).map_err(|e| MergeError::Histogram(path.clone(), e));
            // Same bounds on every side (the recorder's), so adding cannot fail.
            let _ = s.corrected.add(decode(&part.histograms.corrected)?);
            let _ = s.service.add(decode(&part.histograms.service)?);
            let _ = s.lag.add(decode(&part.histograms.lag)?);
            target_rates[t.index()] += part.target_rate;
        }
    }
    Ok(Report::build(
        first.target.clone(),
        first.scenario.clone(),
        stopped_by,
        std::time::Duration::from_secs_f64(elapsed.max(0.0)),
        &stats,
        target_rates,
        thresholds,
    ))
}

/// The shards must be one split, each once, none missing.
fn check_shards(inputs: &[(PathBuf, ReportInfo)]) -> Result<(), MergeError> {
    let Some((first_path, ReportInfo(first))) = inputs.first() else {
        return Err(MergeError::Empty);
    };
    let count = first.shard.count;
    let mut seen: BTreeMap<u32, &PathBuf> = BTreeMap::new();
    for (path, ReportInfo(r)) in inputs {
        if r.shard.count != count {
            return Err(MergeError::ShardCounts(
                first_path.clone(),
                count,
                path.clone(),
                r.shard.count,
            ));
        }
        if let Some(other) = seen.insert(r.shard.index, path) {
            return Err(MergeError::SameShard(
                other.clone(),
                path.clone(),
                r.shard.index,
                count,
            ));
        }
    }
    if let Some(missing) = (0..count).find(|i| !seen.contains_key(i)) {
        let given: Vec<String> = seen.keys().map(|i| format!("{i}/{count}")).collect();
        return Err(MergeError::MissingShard(missing, count, given.join(", ")));
    }
    Ok(())
}
