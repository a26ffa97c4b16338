//! `loadgen merge`: the JSON reports of one run's shards combined into one report, without
//! loss: counts summed, histograms added (so percentiles are those of every sample, not an
//! average of percentiles), the time series aligned by each shard's wall-clock start, the run
//! lasting from the first start to the last end, each shard's target rate weighed by how long
//! it ran. Inputs that do not belong together are refused: another schema, the same shard
//! twice, shards of different splits, a shard missing, or shards of different runs
//! ([`crate::run_id`]); so is anything a load generator
//! would not have written. A report may sit among log lines (`kubectl logs` of a pod
//! mixes them): the pretty-printed object from its first `{` line to its last `}` line is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use order_server::contract::OrderType;
use serde::Deserialize;

use crate::dispatch::StopReason;
use crate::hdr;
use crate::outcome::OutcomeClass;
use crate::recorder::{Counts, TypeStats};
use crate::redact::{quoted, without_credentials};
use crate::report::{PhaseSpan, Report, ShardInfo, Thresholds, SCHEMA_VERSION};
use crate::scenario::{MAX_NAME_BYTES, MAX_PHASES};
use crate::series::Series;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("no reports to merge")]
    Empty,
    #[error("{0}: cannot read: {1}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{0}: not a load generator JSON report ({1})")]
    NotAReport(PathBuf, String),
    #[error("{0}: schema_version {1}, but this loadgen reads {SCHEMA_VERSION}")]
    Schema(PathBuf, String),
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
    #[error("{0}: a histogram does not decode: {1}")]
    Histogram(PathBuf, #[source] hdr::HdrError),
    #[error("{0} and {1} are both shard {2}/{3}")]
    SameShard(PathBuf, PathBuf, u32, u32),
    #[error("{0} is a shard of {1}, {2} of {3}: not the same run")]
    ShardCounts(PathBuf, u32, PathBuf, u32),
    #[error("shard {0} of {1} is missing (given: {2})")]
    MissingShard(u32, u32, String),
    #[error("the merged counts overflow")]
    Overflow,
    #[error("{0}")]
    NotOneRun(String),
}

/// Reports larger than this are not a load generator's: the largest, with a full time series,
/// holds about 2.5 MB.
const MAX_REPORT_BYTES: u64 = 16 << 20;
/// The longest target or scenario a report may carry (a scenario given by path is its path).
const MAX_TEXT_BYTES: usize = 4096;
/// The longest run a report can describe: the duration flags' own limit.
const MAX_SECONDS: f64 = 366.0 * 86_400.0;

#[derive(Debug, Deserialize)]
struct ReportIn {
    target: String,
    scenario: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    duration_seconds: f64,
    #[serde(default)]
    phases: Vec<PhaseSpan>,
    #[serde(default)]
    series: Option<Series>,
    #[serde(default)]
    events: Vec<crate::live::Event>,
    #[serde(default)]
    run: Option<crate::run_id::RunIdentity>,
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

impl TypeIn {
    /// The counts the type's series must add up to.
    fn counts(&self) -> Counts {
        let mut outcomes = [0; 6];
        for class in OutcomeClass::ALL {
            outcomes[class.index()] = self.outcomes.get(class.as_str()).copied().unwrap_or(0);
        }
        Counts {
            scheduled: self.scheduled,
            sent: self.sent,
            late: self.late,
            skipped: self.skipped,
            outcomes,
        }
    }
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

/// Reads one shard report: a regular file of a sane size, its schema checked before its
/// fields, its numbers in range and its shard valid.
fn read(path: &Path) -> Result<(PathBuf, ReportIn), MergeError> {
    let io = |e| MergeError::Read(path.into(), e);
    let meta = std::fs::metadata(path).map_err(io)?;
    let invalid = |why: String| MergeError::Invalid(path.into(), why);
    if !meta.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    if meta.len() > MAX_REPORT_BYTES {
        return Err(invalid(format!(
            "{} bytes: larger than any report",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let value = json_in(path, &text)?;
    match &value["schema_version"] {
        v if v.as_u64() == Some(u64::from(SCHEMA_VERSION)) => {}
        serde_json::Value::Null => {
            return Err(MergeError::NotAReport(
                path.into(),
                "no schema_version".into(),
            ))
        }
        other => return Err(MergeError::Schema(path.into(), other.to_string())),
    }
    let mut report: ReportIn = serde_json::from_value(value)
        .map_err(|e| MergeError::NotAReport(path.into(), e.to_string()))?;
    let d = report.duration_seconds;
    if !(d.is_finite() && (0.0..=MAX_SECONDS).contains(&d)) {
        return Err(invalid(format!("duration_seconds {d} is out of range")));
    }
    for part in [&report.food, &report.clothing] {
        let r = part.target_rate;
        if !(r.is_finite() && (0.0..=1e6).contains(&r)) {
            return Err(invalid(format!("target_rate {r} is out of range")));
        }
        if let Some(k) = part
            .outcomes
            .keys()
            .find(|k| !OutcomeClass::ALL.iter().any(|c| c.as_str() == k.as_str()))
        {
            return Err(invalid(format!("unknown outcome class {k:?}")));
        }
    }
    let ShardInfo { index, count } = report.shard;
    if count == 0 || index >= count {
        return Err(invalid(format!("shard {index}/{count} is not a shard")));
    }
    if let Some(series) = &report.series {
        let totals = [&report.food, &report.clothing].map(TypeIn::counts);
        if let Some(why) = series.invalid(MAX_SECONDS, &totals) {
            return Err(invalid(why));
        }
    }
    // A scenario's own limits: the page repeats every phase's name on every plot.
    if report.phases.len() > MAX_PHASES {
        return Err(invalid(format!(
            "{} phases: more than any plan ({MAX_PHASES})",
            report.phases.len()
        )));
    }
    if let Some(p) = report.phases.iter().find(|p| p.name.len() > MAX_NAME_BYTES) {
        return Err(invalid(format!(
            "a phase name of {} bytes: longer than any plan's ({MAX_NAME_BYTES})",
            p.name.len()
        )));
    }
    let long = [
        report.target.as_str(),
        report.scenario.as_deref().unwrap_or(""),
    ]
    .into_iter()
    .find(|t| t.len() > MAX_TEXT_BYTES);
    if let Some(text) = long {
        return Err(invalid(format!(
            "a target or scenario of {} bytes: longer than {MAX_TEXT_BYTES}",
            text.len()
        )));
    }
    if let Some(at) = &report.started_at {
        started(at).map_err(|e| invalid(format!("started_at {}: {e}", quoted(at))))?;
    }
    // A report written by hand or elsewhere may carry a target with credentials.
    report.target = without_credentials(&report.target).into_owned();
    Ok((path.into(), report))
}

/// Merges the reports of `paths` into one, judged by `thresholds`.
pub fn merge(paths: &[PathBuf], thresholds: &Thresholds) -> Result<Report, MergeError> {
    let inputs = paths
        .iter()
        .map(|p| read(p))
        .collect::<Result<Vec<_>, _>>()?;
    check_shards(&inputs)?;
    let shards: Vec<crate::run_id::Shard<'_>> = inputs
        .iter()
        .map(|(p, r)| {
            let at = r.started_at.as_deref().and_then(|a| started(a).ok());
            (p.as_path(), r.run.as_ref(), at)
        })
        .collect();
    crate::run_id::same_run(&shards).map_err(MergeError::NotOneRun)?;
    let first = &inputs.first().ok_or(MergeError::Empty)?.1;
    let clock = clock(&inputs)?;
    let offset = |i: usize| clock.as_ref().map_or(0.0, |(_, offsets)| offsets[i]);
    let mut stats = [TypeStats::new(), TypeStats::new()];
    // Requests asked for: each shard's target rate over its own duration, so a shard cut
    // short asks for less.
    let mut asked = [0.0; 2];
    // The whole run: from the first start to the last end (on one clock, when known).
    let mut elapsed: f64 = 0.0;
    let mut stopped_by = first.stopped_by;
    for (i, (path, r)) in inputs.iter().enumerate() {
        elapsed = elapsed.max(offset(i) + r.duration_seconds);
        if r.stopped_by == StopReason::Interrupted {
            stopped_by = StopReason::Interrupted;
        }
        for t in OrderType::ALL {
            let part = match t {
                OrderType::Food => &r.food,
                OrderType::Clothing => &r.clothing,
            };
            add_part(&mut stats[t.index()], part, path)?;
            asked[t.index()] += part.target_rate * r.duration_seconds;
        }
    }
    // The total adds the two types: it must fit too.
    if !sum_fits(&stats[0].counts(), &stats[1].counts()) {
        return Err(MergeError::Overflow);
    }
    let target_rates = asked.map(|a| if elapsed > 0.0 { a / elapsed } else { 0.0 });
    let mut report = Report::build(
        first.target.clone(),
        first.scenario.clone(),
        stopped_by,
        std::time::Duration::try_from_secs_f64(elapsed).map_err(|_| MergeError::Overflow)?,
        &stats,
        target_rates,
        thresholds,
    );
    // The phases as the shard that started first ran them: on the merged clock as they are.
    let earliest = (0..inputs.len())
        .min_by(|&a, &b| offset(a).total_cmp(&offset(b)))
        .unwrap_or(0);
    report.phases = inputs[earliest].1.phases.clone();
    report.run = first.run.clone();
    if let Some((origin, offsets)) = &clock {
        report.started_at = Some(humantime::format_rfc3339_millis(*origin).to_string());
        let shards: Option<Vec<(f64, &Series)>> = inputs
            .iter()
            .zip(offsets)
            .map(|((_, r), &off)| r.series.as_ref().map(|s| (off, s)))
            .collect();
        report.series = shards.and_then(|s| Series::aligned(&s));
    }
    // Each shard's live changes, on the merged clock, in time order.
    for (i, (_, r)) in inputs.iter().enumerate() {
        report
            .events
            .extend(r.events.iter().map(|e| crate::live::Event {
                at_s: e.at_s + offset(i),
                ..e.clone()
            }));
    }
    report.events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
    Ok(report)
}

/// Whether every count of `a` plus `b`, and each one's completed requests and both together,
/// fit in a u64.
fn sum_fits(a: &Counts, b: &Counts) -> bool {
    let completed = |c: &Counts| c.outcomes.iter().try_fold(0u64, |s, &n| s.checked_add(n));
    let outcomes = a.outcomes.iter().zip(b.outcomes);
    let each = [a.scheduled, a.sent, a.late, a.skipped]
        .into_iter()
        .zip([b.scheduled, b.sent, b.late, b.skipped])
        .chain(outcomes.map(|(x, y)| (*x, y)))
        .all(|(x, y)| x.checked_add(y).is_some());
    let whole = completed(a)
        .zip(completed(b))
        .and_then(|(x, y)| x.checked_add(y));
    each && whole.is_some()
}

/// A report's `started_at`.
fn started(at: &str) -> Result<SystemTime, humantime::TimestampError> {
    humantime::parse_rfc3339(at)
}

/// The shards on one clock: the earliest start and the seconds each started after it; `None`
/// if a shard does not say when it started.
fn clock(inputs: &[(PathBuf, ReportIn)]) -> Result<Option<(SystemTime, Vec<f64>)>, MergeError> {
    let mut starts = Vec::new();
    for (path, r) in inputs {
        let at = r.started_at.as_deref().map(started).transpose();
        match at.map_err(|e| MergeError::Invalid(path.into(), e.to_string()))? {
            Some(t) => starts.push(t),
            None => return Ok(None),
        }
    }
    let Some(&origin) = starts.iter().min() else {
        return Ok(None);
    };
    let mut offsets = Vec::new();
    for ((path, _), start) in inputs.iter().zip(&starts) {
        let offset = start
            .duration_since(origin)
            .unwrap_or_default()
            .as_secs_f64();
        if offset > MAX_SECONDS {
            return Err(MergeError::Invalid(
                path.into(),
                format!("started {offset:.0} s after the first shard: not the same run"),
            ));
        }
        offsets.push(offset);
    }
    Ok(Some((origin, offsets)))
}

/// Adds one shard's numbers of one order type into `s`, checking that its histograms hold
/// as many samples as its counts say.
fn add_part(s: &mut TypeStats, part: &TypeIn, path: &Path) -> Result<(), MergeError> {
    let sum = |a: u64, b: u64| a.checked_add(b).ok_or(MergeError::Overflow);
    s.scheduled = sum(s.scheduled, part.scheduled)?;
    s.sent = sum(s.sent, part.sent)?;
    s.late = sum(s.late, part.late)?;
    s.skipped = sum(s.skipped, part.skipped)?;
    let mut completed = 0u64;
    for class in OutcomeClass::ALL {
        let n = part.outcomes.get(class.as_str()).copied().unwrap_or(0);
        completed = sum(completed, n)?;
        s.outcomes[class.index()] = sum(s.outcomes[class.index()], n)?;
    }
    let timed = completed - part.outcomes.get("connect_error").copied().unwrap_or(0);
    let h = &part.histograms;
    let decode = |text: &str| hdr::decode(text).map_err(|e| MergeError::Histogram(path.into(), e));
    let (corrected, service, lag) = (decode(&h.corrected)?, decode(&h.service)?, decode(&h.lag)?);
    for (name, got, want) in [
        ("corrected", corrected.len(), timed),
        ("service", service.len(), timed),
        ("lag", lag.len(), part.sent),
    ] {
        if got != want {
            return Err(MergeError::Invalid(
                path.into(),
                format!("the {name} histogram holds {got} samples where the counts say {want}"),
            ));
        }
    }
    // Same bounds as the recorder's (decode checks them): only a count can overflow.
    let add =
        |into: &mut hdrhistogram::Histogram<u64>, h| into.add(h).map_err(|_| MergeError::Overflow);
    add(&mut s.corrected, corrected)?;
    add(&mut s.service, service)?;
    add(&mut s.lag, lag)
}

/// The shards must be one split, each once, none missing.
fn check_shards(inputs: &[(PathBuf, ReportIn)]) -> Result<(), MergeError> {
    let Some((first_path, first)) = inputs.first() else {
        return Err(MergeError::Empty);
    };
    let count = first.shard.count;
    let mut seen: BTreeMap<u32, &PathBuf> = BTreeMap::new();
    for (path, r) in inputs {
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
