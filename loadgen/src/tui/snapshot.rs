//! What one frame of the terminal view shows, read from the live state: the cheap parts
//! (clock, phase, rates, faults, events, log lines) at every redraw, the figures that merge
//! histograms (the last ten seconds' percentiles, the thresholds so far) only when the
//! monitor has ticked since the last frame.

use super::TuiInfo;
use crate::live::{Event, Live, Running};
use crate::monitor::{Recent, Second};
use crate::recorder::Counts;
use crate::threshold::Check;

/// Seconds of history the charts cover.
pub const CHART_SECONDS: usize = 60;
/// Events and log lines shown.
const SHOWN: usize = 6;

/// One frame's data.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub target: String,
    pub elapsed: f64,
    pub end: Option<f64>,
    pub phase: Option<String>,
    pub stopping: bool,
    pub rates: [f64; 2],
    pub history: Vec<Second>,
    pub recent: [Recent; 2],
    pub counts: [Counts; 2],
    pub in_flight: u64,
    pub checks: Vec<Check>,
    pub faults: Vec<(String, f64)>,
    pub scenario: Option<Running>,
    pub events: Vec<Event>,
    pub logs: Vec<String>,
}

impl Snapshot {
    /// Reads `live`; `ticked`: the monitor moved, so the histograms are merged again.
    pub fn refresh(&mut self, live: &Live, info: &TuiInfo, ticked: bool) {
        self.target.clone_from(&info.target);
        self.elapsed = live.elapsed();
        self.end = live.end();
        let plan = live.plan();
        self.phase = plan
            .phase_at(self.elapsed)
            .map(|(i, _)| plan.phases[i].name.clone());
        self.stopping = live.stop_requested() || live.is_over();
        self.rates = live.rates_at(self.elapsed);
        self.faults = live.faults(self.elapsed);
        self.scenario = live.scenario(self.elapsed);
        let (events, _) = live.recent_events(SHOWN);
        self.events = events.into_iter().rev().collect();
        self.logs = info.logs.last(SHOWN);
        if !ticked {
            return;
        }
        let mut m = live.monitor.lock().unwrap_or_else(|e| e.into_inner());
        let history = m.history();
        let skip = history.len().saturating_sub(CHART_SECONDS);
        self.history = history[skip..].to_vec();
        self.recent = m.recent();
        self.counts = m.counts();
        self.in_flight = m.in_flight();
        let so_far = m.so_far();
        let mut all = so_far[0].clone();
        // Same bounds on both sides, so adding cannot fail.
        let _ = all.add(&so_far[1]);
        let total = self.counts[0].plus(&self.counts[1]);
        self.checks = info.thresholds.judge(|scope| match scope {
            Some(t) => (self.counts[t.index()], &so_far[t.index()]),
            None => (total, &all),
        });
    }
}
