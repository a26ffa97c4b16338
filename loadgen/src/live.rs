//! The live state of a run that can be steered: front-ends (the control API and its page, the
//! capacity search, the terminal view's keys) send [`Change`]s into its inbox and read its
//! snapshot; the dispatch core takes the changes at its next step and applies them with
//! [`crate::change::edit`], from that moment on. Every change, and every fault a front-end
//! switches, becomes an [`Event`] (kept for the report, counted in the generator's metrics).
//! The once-a-second monitor's view of the last minutes is published here too, so no
//! front-end reads the recorder or the schedule itself.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use order_server::contract::OrderType;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use order_server::FaultRequest;

use crate::change::{edit, Change, Source};
use crate::monitor::Monitor;
use crate::schedule::Plan;
use crate::telemetry::LoadgenMetrics;

/// The most events a run keeps; older ones are dropped (and counted) past it.
pub const MAX_EVENTS: usize = 10_000;
/// The most changes waiting for the dispatch core; a flood past it is refused.
const MAX_WAITING: usize = 64;

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Rates,
    Scenario,
    ScenarioEnd,
    Fault,
    FaultsCleared,
    Stop,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Rates,
        EventKind::Scenario,
        EventKind::ScenarioEnd,
        EventKind::Fault,
        EventKind::FaultsCleared,
        EventKind::Stop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Rates => "rates",
            EventKind::Scenario => "scenario",
            EventKind::ScenarioEnd => "scenario_end",
            EventKind::Fault => "fault",
            EventKind::FaultsCleared => "faults_cleared",
            EventKind::Stop => "stop",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One change to the run, as the report and the page show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds from the start of the run.
    pub at_s: f64,
    /// RFC 3339 UTC.
    pub wall_clock: String,
    pub kind: EventKind,
    pub detail: String,
    pub source: Source,
}

/// A scenario started live: its name and span in seconds from the start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Running {
    pub name: String,
    pub from: f64,
    pub to: f64,
}

#[derive(Debug)]
struct State {
    plan: Plan,
    version: u64,
    events: VecDeque<Event>,
    dropped_events: u64,
    scenario: Option<Running>,
    inbox: Vec<(Change, Source)>,
    /// Faults switched on through the load generator, as shown, and until when (seconds).
    faults: Vec<(String, f64)>,
    /// The drivers that switch a scenario's faults on at their times: the run's own
    /// (`--scenario`) and one started live. A change that replaces their plan stops them.
    drivers: [Option<tokio::task::AbortHandle>; 2],
}

/// Whose faults a driver switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// The run's own scenario (`--scenario`), on the run's clock.
    Run = 0,
    /// A scenario started live.
    Live = 1,
}

/// Why a change was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveError {
    #[error("too many changes are waiting to be applied; try again in a moment")]
    Busy,
    #[error("the run is over")]
    Over,
}

/// The shared live state of one run; see the module documentation.
#[derive(Debug)]
pub struct Live {
    state: Mutex<State>,
    /// Set when the inbox holds changes: the dispatch core's only per-step cost.
    waiting: AtomicBool,
    /// Wakes an executor that waits for a due time.
    wake: Notify,
    /// Wakes front-ends waiting for their change to apply.
    applied: Notify,
    stop: Notify,
    stop_requested: AtomicBool,
    over: AtomicBool,
    /// The run's fixed end, if it has one (no change moves it).
    end: Option<f64>,
    start: OnceLock<(Instant, SystemTime)>,
    metrics: OnceLock<Arc<LoadgenMetrics>>,
    pub monitor: Mutex<Monitor>,
    ticks: AtomicU64,
}

impl Live {
    pub fn new(plan: Plan, end: Option<f64>) -> Self {
        Live {
            state: Mutex::new(State {
                plan,
                version: 0,
                events: VecDeque::new(),
                dropped_events: 0,
                scenario: None,
                inbox: Vec::new(),
                faults: Vec::new(),
                drivers: [None, None],
            }),
            waiting: AtomicBool::new(false),
            wake: Notify::new(),
            applied: Notify::new(),
            stop: Notify::new(),
            stop_requested: AtomicBool::new(false),
            over: AtomicBool::new(false),
            end,
            start: OnceLock::new(),
            metrics: OnceLock::new(),
            monitor: Mutex::new(Monitor::default()),
            ticks: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the events in the generator's own metrics from now on.
    pub fn count_in(&self, metrics: Arc<LoadgenMetrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// The run started at `at` (both clocks), which event times count from.
    pub fn begin(&self, at: Instant, wall: SystemTime) {
        let _ = self.start.set((at, wall));
    }

    /// When the run started, if it has: the wall clock.
    pub fn started_at(&self) -> Option<SystemTime> {
        self.start.get().map(|(_, wall)| *wall)
    }

    /// Seconds since the run started (0 before).
    pub fn elapsed(&self) -> f64 {
        self.start
            .get()
            .map_or(0.0, |(at, _)| at.elapsed().as_secs_f64())
    }

    /// The run's fixed end in seconds, if it has one.
    pub fn end(&self) -> Option<f64> {
        self.end
    }

    /// Hands a change to the dispatch core; it applies at its next step.
    pub fn submit(&self, change: Change, source: Source) -> Result<u64, LiveError> {
        if self.over.load(Ordering::Acquire) {
            return Err(LiveError::Over);
        }
        let mut s = self.lock();
        if s.inbox.len() >= MAX_WAITING {
            return Err(LiveError::Busy);
        }
        s.inbox.push((change, source));
        let want = s.version + s.inbox.len() as u64;
        drop(s);
        self.waiting.store(true, Ordering::Release);
        self.wake.notify_one();
        Ok(want)
    }

    /// Hands over the driver of a scenario's faults, which a change replacing its plan
    /// stops (a rate change stops both; ending a live scenario stops its own).
    pub fn hold_driver(&self, driver: Driver, handle: tokio::task::AbortHandle) {
        if let Some(old) = self.lock().drivers[driver as usize].replace(handle) {
            old.abort();
        }
    }

    /// Whether the run's own scenario still has faults to switch on: its phases are on the
    /// run's clock, so nothing may be spliced in before them.
    pub fn run_faults_pending(&self) -> bool {
        self.lock().drivers[Driver::Run as usize]
            .as_ref()
            .is_some_and(|h| !h.is_finished())
    }

    /// Waits until the plan's version reaches `version` (the change applied), at most
    /// `limit`; whether it did. A run that stops first never applies it.
    pub async fn applied(&self, version: u64, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.applied.notified();
            if self.lock().version >= version {
                return true;
            }
            if self.is_over() {
                return false;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.lock().version >= version;
            }
        }
    }

    /// Whether changes wait; cheap enough for every step.
    pub fn has_changes(&self) -> bool {
        self.waiting.load(Ordering::Acquire)
    }

    /// Waits for a change to be submitted (for an executor asleep until a due time).
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Applies the waiting changes at `at` seconds: the new plan, if anything changed.
    pub fn apply(&self, at: f64) -> Option<Plan> {
        let mut s = self.lock();
        self.waiting.store(false, Ordering::Release);
        let inbox = std::mem::take(&mut s.inbox);
        if inbox.is_empty() {
            return None;
        }
        for (change, source) in inbox {
            let before = s.plan.clone();
            let change = match change {
                // A scenario cut short that is no longer running changes nothing.
                Change::EndScenario { .. } => match s.scenario.take() {
                    Some(r) if r.to > at => Change::EndScenario { to: r.to },
                    _ => {
                        s.version += 1;
                        continue;
                    }
                },
                c => c,
            };
            s.plan = edit(&before, &change, at, self.end);
            s.version += 1;
            let (kind, detail) = match &change {
                Change::Rates(_) => {
                    s.scenario = None;
                    for d in s.drivers.iter_mut().filter_map(Option::take) {
                        d.abort();
                    }
                    (EventKind::Rates, describe_rates(&before, &s.plan, at))
                }
                Change::Scenario { name, phases } => {
                    let len: f64 = phases.iter().filter_map(|p| p.duration).sum();
                    s.scenario = Some(Running {
                        name: name.clone(),
                        from: at,
                        to: at + len,
                    });
                    (EventKind::Scenario, format!("{name} started ({len:.0} s)"))
                }
                Change::EndScenario { .. } => {
                    if let Some(d) = s.drivers[Driver::Live as usize].take() {
                        d.abort();
                    }
                    (EventKind::ScenarioEnd, "the scenario was stopped".into())
                }
            };
            self.push_event(&mut s, at, kind, detail, source);
        }
        let plan = s.plan.clone();
        drop(s);
        self.applied.notify_waiters();
        Some(plan)
    }

    /// A fault the server took, switched on by `source`: an event, and shown as active until
    /// its duration runs out.
    pub fn fault_on(&self, fault: &FaultRequest, source: Source) {
        let at = self.elapsed();
        let lasts = humantime::parse_duration(&fault.duration).map_or(0.0, |d| d.as_secs_f64());
        let shown = format!(
            "{}{} on {} orders",
            fault.kind,
            match (fault.error_rate, &fault.extra_latency) {
                (Some(r), _) => format!(" at {:.0} %", r * 100.0),
                (_, Some(l)) => format!(" +{l}"),
                _ => String::new(),
            },
            fault.order_type.as_deref().unwrap_or("all"),
        );
        let mut s = self.lock();
        s.faults.retain(|(_, until)| *until > at);
        if s.faults.len() < MAX_WAITING {
            s.faults.push((shown, at + lasts));
        }
        let detail = serde_json::to_string(fault).unwrap_or_default();
        self.push_event(&mut s, at, EventKind::Fault, detail, source);
    }

    /// Every fault was cleared at the server.
    pub fn faults_cleared(&self, detail: String, source: Source) {
        let at = self.elapsed();
        let mut s = self.lock();
        s.faults.clear();
        self.push_event(&mut s, at, EventKind::FaultsCleared, detail, source);
    }

    /// The faults switched on through the load generator that are still on at `at`, with
    /// the seconds each has left.
    pub fn faults(&self, at: f64) -> Vec<(String, f64)> {
        let s = self.lock();
        s.faults
            .iter()
            .filter(|(_, until)| *until > at)
            .map(|(f, until)| (f.clone(), until - at))
            .collect()
    }

    /// Records an event that is not a plan change (a fault switched, a stop).
    pub fn event(&self, kind: EventKind, detail: String, source: Source) {
        let at = self.elapsed();
        let mut s = self.lock();
        self.push_event(&mut s, at, kind, detail, source);
    }

    fn push_event(&self, s: &mut State, at: f64, kind: EventKind, detail: String, source: Source) {
        let wall = self
            .start
            .get()
            .map_or(SystemTime::now(), |(_, w)| *w + Duration::from_secs_f64(at));
        if s.events.len() >= MAX_EVENTS {
            s.events.pop_front();
            s.dropped_events += 1;
        }
        s.events.push_back(Event {
            at_s: at,
            wall_clock: humantime::format_rfc3339_millis(wall).to_string(),
            kind,
            detail,
            source,
        });
        if let Some(m) = self.metrics.get() {
            m.control_event(kind);
        }
    }

    /// The plan as it stands now.
    pub fn plan(&self) -> Plan {
        self.lock().plan.clone()
    }

    /// The plan's version: it grows with every change applied.
    pub fn version(&self) -> u64 {
        self.lock().version
    }

    /// The fleet's asked rate of each type at `at` seconds.
    pub fn rates_at(&self, at: f64) -> [f64; 2] {
        let s = self.lock();
        let shards = f64::from(s.plan.shard.1.max(1));
        OrderType::ALL.map(|t| s.plan.rate(at, t) * shards)
    }

    /// The scenario started live that is still running at `at`, if any.
    pub fn scenario(&self, at: f64) -> Option<Running> {
        self.lock().scenario.clone().filter(|r| r.to > at)
    }

    /// The events so far (oldest first) and how many were dropped past [`MAX_EVENTS`].
    pub fn events(&self) -> (Vec<Event>, u64) {
        self.recent_events(MAX_EVENTS)
    }

    /// The last `n` events (oldest first), without copying the others.
    pub fn recent_events(&self, n: usize) -> (Vec<Event>, u64) {
        let s = self.lock();
        let skip = s.events.len().saturating_sub(n);
        (
            s.events.iter().skip(skip).cloned().collect(),
            s.dropped_events,
        )
    }

    /// Asks the run to stop as Ctrl-C does.
    pub fn request_stop(&self, source: Source) {
        if !self.stop_requested.swap(true, Ordering::AcqRel) {
            self.event(EventKind::Stop, "stop requested".into(), source);
        }
        self.stop.notify_one();
    }

    pub fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    /// Completes when a stop is requested.
    pub async fn stopped(&self) {
        loop {
            let n = self.stop.notified();
            if self.stop_requested() {
                return;
            }
            n.await;
        }
    }

    /// The schedule stopped: no change is taken any more.
    pub fn close(&self) {
        self.over.store(true, Ordering::Release);
        self.applied.notify_waiters();
    }

    pub fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }

    /// Counts a monitor tick: front-ends recompute what they show when it moves.
    pub fn tick(&self) {
        self.ticks.fetch_add(1, Ordering::Relaxed);
    }

    /// The monitor's ticks so far.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

/// "food 50/s → 200/s, clothing 10/s" for a rate change.
fn describe_rates(before: &Plan, after: &Plan, at: f64) -> String {
    let shards = f64::from(after.shard.1.max(1));
    OrderType::ALL
        .map(|t| {
            let (a, b) = (before.rate(at, t) * shards, after.rate(at, t) * shards);
            if (a - b).abs() < 1e-9 {
                format!("{} {}/s", t.as_str(), fmt_rate(b))
            } else {
                format!("{} {}/s → {}/s", t.as_str(), fmt_rate(a), fmt_rate(b))
            }
        })
        .join(", ")
}

fn fmt_rate(r: f64) -> String {
    if (r - r.round()).abs() < 1e-9 {
        format!("{r:.0}")
    } else {
        format!("{r:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Profile, Shape};

    fn live() -> Live {
        Live::new(
            Plan::single(Profile {
                shape: Shape::Constant,
                rates: [50.0, 10.0],
                flash_sales: None,
            }),
            None,
        )
    }

    #[test]
    fn changes_wait_for_the_dispatch_core_and_become_events() {
        let l = live();
        assert!(!l.has_changes());
        let want = l
            .submit(Change::Rates([Some(200.0), None]), Source::Api)
            .expect("taken");
        assert!(l.has_changes());
        assert_eq!(l.rates_at(5.0), [50.0, 10.0], "not applied before the step");
        let plan = l.apply(5.0).expect("a new plan");
        assert!(!l.has_changes());
        assert_eq!(l.version(), want);
        assert_eq!(plan.rate(5.0, OrderType::Food), 200.0);
        let (events, dropped) = l.events();
        assert_eq!(dropped, 0);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Rates);
        assert_eq!(events[0].source, Source::Api);
        assert_eq!(events[0].detail, "food 50/s → 200/s, clothing 10/s");
        assert_eq!(l.apply(6.0), None, "nothing waiting");
    }

    #[test]
    fn a_flood_is_refused_and_a_finished_run_takes_nothing() {
        let l = live();
        for _ in 0..MAX_WAITING {
            l.submit(Change::Rates([Some(1.0), None]), Source::Api)
                .expect("room");
        }
        assert_eq!(
            l.submit(Change::Rates([Some(1.0), None]), Source::Api),
            Err(LiveError::Busy)
        );
        l.apply(1.0);
        l.close();
        assert_eq!(
            l.submit(Change::Rates([Some(1.0), None]), Source::Api),
            Err(LiveError::Over)
        );
    }

    #[test]
    fn ending_a_scenario_that_is_not_running_changes_nothing() {
        let l = live();
        l.submit(Change::EndScenario { to: 0.0 }, Source::Api)
            .expect("taken");
        let before = l.plan();
        l.apply(3.0);
        assert_eq!(l.plan(), before);
        assert!(l.events().0.is_empty());
    }
}
