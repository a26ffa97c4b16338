//! The report as text for people: the per-type table, outcomes, latency percentiles
//! (corrected and service), schedule lag, why the target was not reached, and each
//! threshold's verdict.

use std::io::{self, Write};

use super::{Report, TypeReport};

impl Report {
    pub fn write_text(&self, w: &mut impl Write) -> io::Result<()> {
        let target = crate::redact::without_credentials(&self.target);
        writeln!(w, "target    {target}")?;
        if let Some(s) = &self.scenario {
            writeln!(w, "scenario  {s}")?;
        }
        writeln!(
            w,
            "duration  {:.1}s (stopped by {})",
            self.duration_seconds, self.stopped_by
        )?;
        writeln!(w)?;
        writeln!(
            w,
            "{:<9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7}  {:>9} {:>11} {:>10}",
            "",
            "scheduled",
            "sent",
            "ok",
            "failed",
            "late",
            "skipped",
            "target/s",
            "scheduled/s",
            "achieved/s"
        )?;
        for (name, r) in self.rows() {
            writeln!(
                w,
                "{:<9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7}  {:>9.2} {:>11.2} {:>10.2}",
                name,
                r.scheduled,
                r.sent,
                r.ok,
                r.failed,
                r.late,
                r.skipped,
                r.target_rate,
                r.scheduled_rate,
                r.achieved_rate
            )?;
        }
        writeln!(w)?;
        writeln!(
            w,
            "outcomes  {}",
            self.total
                .outcomes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("  ")
        )?;
        writeln!(w, "error ratio {:.4}", self.total.error_ratio)?;
        writeln!(w)?;
        writeln!(
            w,
            "latency (ms)         {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "min", "p50", "p90", "p99", "p99.9", "max"
        )?;
        for (name, r) in self.rows() {
            for (kind, l) in [
                ("corrected", &r.latency_corrected),
                ("service", &r.latency_service),
            ] {
                writeln!(
                    w,
                    "{:<9} {:<10} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                    name, kind, l.min_ms, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
                )?;
            }
        }
        let lag = &self.total.schedule_lag;
        writeln!(
            w,
            "schedule lag (ms)    p50 {:.3}  p99 {:.3}  max {:.3}",
            lag.p50_ms, lag.p99_ms, lag.max_ms
        )?;
        writeln!(w, "corrected = from the intended send time (includes waiting caused by a slow target); service = from the actual send")?;
        if let Some(why) = self.unreached() {
            writeln!(w, "\n{why}")?;
        }
        if !self.thresholds.is_empty() {
            writeln!(w)?;
            self.write_verdicts(w)?;
        }
        Ok(())
    }

    /// One line per threshold: the expression, its limit, the actual value ("none" when
    /// there was nothing to judge) and the verdict.
    pub fn write_verdicts(&self, w: &mut impl Write) -> io::Result<()> {
        for c in &self.thresholds {
            let verdict = if c.passed { "ok" } else { "MISSED" };
            let actual = match c.actual.is_nan() {
                true => "none".to_string(),
                false => format!("{:.4}", c.actual),
            };
            writeln!(
                w,
                "threshold {:<24} {:<2} {:<10.4} actual {actual:<10} {verdict}",
                c.name, c.op, c.limit
            )?;
        }
        Ok(())
    }

    fn rows(&self) -> [(&'static str, &TypeReport); 3] {
        [
            ("food", &self.food),
            ("clothing", &self.clothing),
            ("total", &self.total),
        ]
    }
}
