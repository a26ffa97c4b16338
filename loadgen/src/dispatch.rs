//! The rules of a run's dispatch, without I/O: the merged schedule of both order types and,
//! at any moment, the next step (send this request, wait until then, or stop and why), by the
//! run's end, its request cap and its tick; and at the end, what fell due but was never sent.
//! Both executors, the paced engine (`engine`) and the tokio path (`tokio_path`), only carry
//! out its steps, so a run ends, ticks and counts the same way on either. A steerable run's
//! changes ([`crate::live`]) are taken here too, at the step after they arrive: the arrivals
//! go on from that moment under the new plan, so both executors follow them with no code of
//! their own, and a run whose rates are all zero waits for the next change instead of ending.

use order_server::contract::OrderType;
use serde::Serialize;

use std::sync::Arc;

use crate::live::Live;
use crate::schedule::{before_end, tick_after, Arrivals, Plan};

/// At most this many requests of one type are counted as skipped after a stop, so a stop
/// after an absurd schedule cannot spend minutes counting.
const MAX_UNSENT_COUNT: u64 = 10_000_000;
/// How long a steerable run with nothing due waits before it looks again (seconds); the
/// tokio path is woken by a change at once, the engine looks every few milliseconds anyway.
const DORMANT: f64 = 0.25;
// A due time past MAX_DUE is no due time: executors turn due times into instants (a fixed
// list of due times is held to it here, a plan's arrivals by the schedule itself).
use crate::schedule::MAX_DUE;

/// Why a run stopped; the report's `stopped_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The run's `--duration` (or its scenario's length) is over.
    Duration,
    /// `--requests` requests have fallen due.
    Requests,
    /// A scenario without a fixed length has nothing more due.
    ScenarioEnd,
    /// A signal (or the library caller) stopped it.
    Interrupted,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Requests => "requests",
            StopReason::ScenarioEnd => "scenario_end",
            StopReason::Interrupted => "interrupted",
        }
    }

    /// Whether requests that fell due before the stop and were never sent count as skipped:
    /// a stop in the middle of the schedule leaves them behind, while the request cap and the
    /// end of a scenario stop where the schedule itself stops.
    fn leaves_due_requests(self) -> bool {
        matches!(self, StopReason::Duration | StopReason::Interrupted)
    }
}

/// Compares with the report's strings, as readers of the JSON report do.
impl PartialEq<&str> for StopReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request to send: its type and due time in seconds from the start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Due {
    pub t: OrderType,
    pub at: f64,
    /// False when the request is offered again because the executor could not send it yet
    /// (every connection or in-flight slot busy); it was counted as scheduled the first time.
    pub first: bool,
}

/// What an executor does next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Send this request now, then report it with [`Dispatch::sent`]; until then it is held
    /// and offered again.
    Send(Due),
    /// Nothing to send before this many seconds from the start: sleep until then, unless a
    /// stop or (for the engine) an answer comes first.
    WaitUntil(f64),
    Stop(StopReason),
}

/// Where the run ends and how it wakes, from its configuration (seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub duration: Option<f64>,
    pub requests: Option<u64>,
    /// Sends wait for the next multiple of this from the start; 0 sends each at its due time.
    pub tick: f64,
}

/// Requests that fell due but were never sent, per order type (by index).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unsent {
    /// Still in the schedule at the stop: never offered, so not yet counted as scheduled.
    pub never_offered: [u64; 2],
    /// Offered and counted as scheduled, but held by the executor when the run stopped.
    pub held: [u64; 2],
}

impl Unsent {
    /// Everything skipped of order type `t`.
    pub fn skipped(&self, t: OrderType) -> u64 {
        self.never_offered[t.index()] + self.held[t.index()]
    }
}

/// One order type's due times: a plan's arrivals, which a live change can replan, or a
/// fixed list (tests, benchmarks).
pub enum Source {
    Arrivals(Arrivals),
    Fixed(Box<dyn Iterator<Item = f64> + Send>),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Arrivals(_) => "Source::Arrivals",
            Source::Fixed(_) => "Source::Fixed",
        })
    }
}

impl Source {
    fn next(&mut self) -> Option<f64> {
        let due = match self {
            Source::Arrivals(a) => a.next_due(),
            Source::Fixed(i) => i.next(),
        };
        due.filter(|d| d.is_finite() && *d <= MAX_DUE)
    }
}

/// The dispatch rules of one run; see the module documentation.
pub struct Dispatch {
    sources: [Source; 2],
    next: [Option<f64>; 2],
    limits: Limits,
    offered: u64,
    held: Option<Due>,
    /// With ticks, a request held at the end is offered once more at the end's wake.
    offered_at_end: bool,
    interrupted: bool,
    live: Option<Arc<Live>>,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("next", &self.next)
            .field("limits", &self.limits)
            .field("offered", &self.offered)
            .field("held", &self.held)
            .field("interrupted", &self.interrupted)
            .finish_non_exhaustive()
    }
}

impl Dispatch {
    /// Dispatch over the due times of each order type (food first), each ascending.
    pub fn new(sources: [Source; 2], limits: Limits) -> Self {
        let mut sources = sources;
        let next = [sources[0].next(), sources[1].next()];
        Dispatch {
            sources,
            next,
            limits,
            offered: 0,
            held: None,
            offered_at_end: false,
            interrupted: false,
            live: None,
        }
    }

    /// Dispatch over both order types' arrivals, which end at the run's duration.
    pub fn from_arrivals(arrivals: [Arrivals; 2], limits: Limits) -> Self {
        Self::new(
            arrivals.map(|a| Source::Arrivals(a.until(limits.duration))),
            limits,
        )
    }

    /// Takes `live`'s changes from now on.
    pub fn steered_by(mut self, live: Arc<Live>) -> Self {
        self.live = Some(live);
        self
    }

    /// The live state this dispatch takes changes from, for an executor that must wake when
    /// one arrives.
    pub fn live(&self) -> Option<&Arc<Live>> {
        self.live.as_ref()
    }

    /// Whether due requests wait for tick boundaries (which then set when the executor wakes).
    pub fn ticks(&self) -> bool {
        self.limits.tick > 0.0
    }

    /// When the run ends, in seconds from the start, if it has a fixed length.
    pub fn end(&self) -> Option<f64> {
        self.limits.duration
    }

    /// The executor's stop signal: the next step is `Stop(Interrupted)`.
    pub fn interrupt(&mut self) {
        self.interrupted = true;
    }

    /// The request last offered went out.
    pub fn sent(&mut self) {
        self.held = None;
    }

    /// The next step at `now` seconds from the start.
    pub fn next(&mut self, now: f64) -> Step {
        if self.interrupted {
            return Step::Stop(StopReason::Interrupted);
        }
        if let Some(plan) = self
            .live
            .as_ref()
            .filter(|l| l.has_changes())
            .and_then(|l| l.apply(now))
        {
            self.replan(plan, now);
        }
        let ended = self
            .limits
            .duration
            .is_some_and(|end| !before_end(now, end));
        if let Some(held) = self.held {
            // A request waiting for a connection or slot goes before anything else, and is
            // given up when the run's time is over; with ticks, after one more try at the
            // end's wake, which is the last boundary.
            if ended && (self.limits.tick <= 0.0 || self.offered_at_end) {
                return Step::Stop(StopReason::Duration);
            }
            self.offered_at_end |= ended;
            return Step::Send(Due {
                first: false,
                ..held
            });
        }
        if self.limits.requests.is_some_and(|n| self.offered >= n) {
            return Step::Stop(StopReason::Requests);
        }
        // Without ticks the run ends on time even when the schedule has fallen behind the
        // clock (a slow target, the in-flight cap full); what was due is counted as skipped.
        // With ticks the last boundary can be the end itself: what fell due before the end
        // still goes out then, as it would at any other boundary.
        if ended && self.limits.tick <= 0.0 {
            return Step::Stop(StopReason::Duration);
        }
        match self.peek() {
            Some((i, at)) if self.limits.duration.is_none_or(|end| before_end(at, end)) => {
                let go = tick_after(at, self.limits.tick, self.limits.duration);
                if go > now {
                    return Step::WaitUntil(go);
                }
                self.advance(i);
                self.offered += 1;
                let due = Due {
                    t: OrderType::ALL[i],
                    at,
                    first: true,
                };
                self.held = Some(due);
                Step::Send(due)
            }
            // Nothing more due before the end: a run with a fixed length waits the rest out,
            // so "duration" always means the full duration.
            _ => match self.limits.duration {
                Some(end) if now < end => Step::WaitUntil(end),
                Some(_) => Step::Stop(StopReason::Duration),
                // A steerable run waits for its next change, until its end if it has one.
                None => match self.live.as_ref().map(|l| l.end()) {
                    Some(None) => Step::WaitUntil(now + DORMANT),
                    Some(Some(end)) if now < end => Step::WaitUntil((now + DORMANT).min(end)),
                    _ => Step::Stop(StopReason::ScenarioEnd),
                },
            },
        }
    }

    /// Both types' arrivals go on under `plan` from `now`: a due time already computed
    /// past `now` is taken back and decided by the new plan; one at or before `now` stands.
    fn replan(&mut self, plan: Plan, now: f64) {
        for i in 0..2 {
            let Source::Arrivals(a) = &mut self.sources[i] else {
                continue;
            };
            let rewind = self.next[i].is_some_and(|d| d > now);
            a.replan(plan.clone(), rewind);
            if rewind || self.next[i].is_none() {
                self.next[i] = self.sources[i].next();
            }
        }
    }

    /// What fell due but was never sent, for a run that stopped for `reason` after `elapsed`
    /// seconds: the held request, and for a stop in mid-schedule everything due before the
    /// end (or before the interruption), but no more than the request cap leaves.
    pub fn finish(mut self, reason: StopReason, elapsed: f64) -> Unsent {
        let mut unsent = Unsent::default();
        if let Some(h) = self.held.take() {
            unsent.held[h.t.index()] += 1;
        }
        if reason.leaves_due_requests() {
            let now = match (reason, self.limits.duration) {
                (StopReason::Duration, Some(end)) => end,
                _ => elapsed,
            };
            let mut room = self
                .limits
                .requests
                .map_or(u64::MAX, |n| n.saturating_sub(self.offered));
            // In due order, as they would have been offered.
            while room > 0 {
                let Some((i, at)) = self.peek() else { break };
                if !before_end(at, now) || unsent.never_offered[i] >= MAX_UNSENT_COUNT {
                    break;
                }
                unsent.never_offered[i] += 1;
                room -= 1;
                self.advance(i);
            }
        }
        unsent
    }

    /// The earliest due request: its type's index and due time.
    fn peek(&self) -> Option<(usize, f64)> {
        match self.next {
            [Some(a), Some(b)] => Some(if a <= b { (0, a) } else { (1, b) }),
            [Some(a), None] => Some((0, a)),
            [None, Some(b)] => Some((1, b)),
            [None, None] => None,
        }
    }

    fn advance(&mut self, i: usize) {
        self.next[i] = self.sources[i].next();
    }
}

#[cfg(test)]
mod live_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use OrderType::{Clothing, Food};

    fn dispatch(food: &[f64], clothing: &[f64], limits: Limits) -> Dispatch {
        let src = |v: &[f64]| {
            let owned: Vec<f64> = v.to_vec();
            Source::Fixed(Box::new(owned.into_iter()))
        };
        Dispatch::new([src(food), src(clothing)], limits)
    }

    fn send(t: OrderType, at: f64) -> Step {
        Step::Send(Due { t, at, first: true })
    }

    fn again(t: OrderType, at: f64) -> Step {
        Step::Send(Due {
            t,
            at,
            first: false,
        })
    }

    /// What an executor does between steps.
    #[derive(Debug, Clone, Copy)]
    enum Act {
        /// Asks for the next step at this time and expects it; a `Send` is sent at once.
        At(f64, Step),
        /// Like `At`, but the executor cannot send it (every slot busy): it stays held.
        Blocked(f64, Step),
        Interrupt,
    }
    use Act::{At, Blocked, Interrupt};

    /// Runs the script as an executor would, counting as the recorder does; the unsent
    /// counts at `elapsed`. Every request that fell due is sent or skipped, none twice.
    fn run(mut d: Dispatch, script: &[Act], elapsed: f64) -> Unsent {
        let (mut scheduled, mut sent) = (0u64, 0u64);
        let mut reason = None;
        for (n, act) in script.iter().enumerate() {
            match *act {
                Interrupt => d.interrupt(),
                At(now, want) | Blocked(now, want) => {
                    let got = d.next(now);
                    assert_eq!(got, want, "step {n} at {now}");
                    match got {
                        Step::Send(due) => {
                            scheduled += u64::from(due.first);
                            if matches!(act, At(..)) {
                                d.sent();
                                sent += 1;
                            }
                        }
                        Step::Stop(r) => {
                            assert_eq!(d.next(now + 1.0), got, "a stop stays a stop");
                            reason = Some(r);
                        }
                        Step::WaitUntil(_) => {}
                    }
                }
            }
        }
        let unsent = d.finish(reason.expect("the script ends with a stop"), elapsed);
        let never_offered: u64 = unsent.never_offered.iter().sum();
        let skipped = unsent.skipped(Food) + unsent.skipped(Clothing);
        assert_eq!(scheduled + never_offered, sent + skipped, "{unsent:?}");
        unsent
    }

    #[test]
    fn steps_by_the_rules() {
        let none = Unsent::default();
        let limits = |duration: Option<f64>, requests: Option<u64>, tick: f64| Limits {
            duration,
            requests,
            tick,
        };
        type Case<'a> = (
            &'a str,
            &'a [f64],
            &'a [f64],
            Limits,
            &'a [Act],
            f64,
            Unsent,
        );
        let cases: &[Case] = &[
            (
                "merged in due order, then the end of the scenario",
                &[0.1, 0.3],
                &[0.2],
                limits(None, None, 0.0),
                &[
                    At(0.0, Step::WaitUntil(0.1)),
                    At(0.1, send(Food, 0.1)),
                    At(0.1, Step::WaitUntil(0.2)),
                    At(0.25, send(Clothing, 0.2)),
                    At(0.3, send(Food, 0.3)),
                    At(0.3, Step::Stop(StopReason::ScenarioEnd)),
                ],
                0.3,
                none,
            ),
            (
                "a fixed length waits the rest out, and the last request at the end is not sent",
                &[0.5, 1.0],
                &[],
                limits(Some(1.0), None, 0.0),
                &[
                    At(0.5, send(Food, 0.5)),
                    At(0.6, Step::WaitUntil(1.0)),
                    At(1.0, Step::Stop(StopReason::Duration)),
                ],
                1.0,
                none,
            ),
            (
                "a schedule behind the clock stops on time and counts what was due as skipped",
                &[0.1, 0.2, 0.3, 0.4, 1.5],
                &[0.15],
                limits(Some(1.0), None, 0.0),
                &[
                    At(0.1, send(Food, 0.1)),
                    At(1.2, Step::Stop(StopReason::Duration)),
                ],
                1.2,
                Unsent {
                    never_offered: [3, 1],
                    held: [0, 0],
                },
            ),
            (
                "the request cap stops where the schedule does: nothing skipped",
                &[0.1, 0.2, 0.3],
                &[],
                limits(None, Some(2), 0.0),
                &[
                    At(0.1, send(Food, 0.1)),
                    At(0.2, send(Food, 0.2)),
                    At(0.2, Step::Stop(StopReason::Requests)),
                ],
                0.2,
                none,
            ),
            (
                "a held request is offered again, before the cap stops the run",
                &[0.1, 0.2],
                &[],
                limits(None, Some(1), 0.0),
                &[
                    Blocked(0.1, send(Food, 0.1)),
                    Blocked(0.15, again(Food, 0.1)),
                    At(0.18, again(Food, 0.1)),
                    At(0.18, Step::Stop(StopReason::Requests)),
                ],
                0.18,
                none,
            ),
            (
                "a held request is given up at the end and counted once, as skipped",
                &[0.1, 0.9],
                &[0.5],
                limits(Some(1.0), None, 0.0),
                &[
                    Blocked(0.1, send(Food, 0.1)),
                    Blocked(0.6, again(Food, 0.1)),
                    At(1.0, Step::Stop(StopReason::Duration)),
                ],
                1.0,
                Unsent {
                    never_offered: [1, 1],
                    held: [1, 0],
                },
            ),
            (
                "the request cap bounds what a stop behind schedule counts as skipped",
                &[0.1, 0.2, 0.3, 0.4, 0.5],
                &[],
                limits(Some(1.0), Some(3), 0.0),
                &[
                    At(0.1, send(Food, 0.1)),
                    At(1.2, Step::Stop(StopReason::Duration)),
                ],
                1.2,
                Unsent {
                    never_offered: [2, 0],
                    held: [0, 0],
                },
            ),
            (
                "an interruption while a request is held counts it once, as skipped",
                &[0.1, 0.15, 0.3],
                &[],
                limits(None, None, 0.0),
                &[
                    Blocked(0.1, send(Food, 0.1)),
                    Interrupt,
                    At(0.2, Step::Stop(StopReason::Interrupted)),
                ],
                0.2,
                Unsent {
                    never_offered: [1, 0],
                    held: [1, 0],
                },
            ),
            (
                "ticks: a request held at the end gets one more try at the end's wake",
                &[0.0075],
                &[],
                limits(Some(0.01), None, 0.004),
                &[
                    Blocked(0.008, send(Food, 0.0075)),
                    At(0.01, again(Food, 0.0075)),
                    At(0.01, Step::Stop(StopReason::Duration)),
                ],
                0.01,
                none,
            ),
            (
                "ticks: and only one",
                &[0.0075],
                &[],
                limits(Some(0.01), None, 0.004),
                &[
                    Blocked(0.008, send(Food, 0.0075)),
                    Blocked(0.01, again(Food, 0.0075)),
                    At(0.01, Step::Stop(StopReason::Duration)),
                ],
                0.01,
                Unsent {
                    never_offered: [0, 0],
                    held: [1, 0],
                },
            ),
            (
                "the cap and the end of the schedule at once: the cap is the reason",
                &[0.1, 0.2],
                &[],
                limits(Some(1.0), Some(2), 0.0),
                &[
                    At(0.1, send(Food, 0.1)),
                    At(0.2, send(Food, 0.2)),
                    At(0.2, Step::Stop(StopReason::Requests)),
                ],
                0.2,
                none,
            ),
            (
                "an interruption counts what fell due before it, not after",
                &[0.1, 0.2, 0.8],
                &[],
                limits(Some(1.0), None, 0.0),
                &[
                    At(0.1, send(Food, 0.1)),
                    Interrupt,
                    At(0.3, Step::Stop(StopReason::Interrupted)),
                ],
                0.3,
                Unsent {
                    never_offered: [1, 0],
                    held: [0, 0],
                },
            ),
            (
                "ticks: requests wait for the boundary and go together",
                &[0.0011, 0.0015],
                &[0.0019],
                limits(None, None, 0.002),
                &[
                    At(0.001, Step::WaitUntil(0.002)),
                    At(0.002, send(Food, 0.0011)),
                    At(0.002, send(Food, 0.0015)),
                    At(0.002, send(Clothing, 0.0019)),
                    At(0.002, Step::Stop(StopReason::ScenarioEnd)),
                ],
                0.002,
                none,
            ),
            (
                "ticks: the end is the last boundary, and what fell due before it still goes",
                &[0.0095, 0.0105],
                &[],
                limits(Some(0.01), None, 0.004),
                &[
                    At(0.009, Step::WaitUntil(0.01)),
                    At(0.01, send(Food, 0.0095)),
                    At(0.01, Step::Stop(StopReason::Duration)),
                ],
                0.01,
                none,
            ),
        ];
        for (name, food, clothing, limits, script, elapsed, want) in cases {
            let got = run(dispatch(food, clothing, *limits), script, *elapsed);
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn stop_reasons_serialise_to_the_report_strings() {
        for r in [
            StopReason::Duration,
            StopReason::Requests,
            StopReason::ScenarioEnd,
            StopReason::Interrupted,
        ] {
            assert_eq!(
                serde_json::to_value(r).expect("serialises"),
                serde_json::json!(r.as_str())
            );
        }
        assert_eq!(StopReason::ScenarioEnd.to_string(), "scenario_end");
    }

    #[test]
    fn skipped_counts_are_bounded() {
        let mut d = Dispatch::new(
            [
                Source::Fixed(Box::new((0..).map(|i| f64::from(i) * 1e-9))),
                Source::Fixed(Box::new(std::iter::empty())),
            ],
            Limits::default(),
        );
        d.interrupt();
        assert_eq!(d.next(5.0), Step::Stop(StopReason::Interrupted));
        assert_eq!(
            d.finish(StopReason::Interrupted, 5.0).skipped(Food),
            MAX_UNSENT_COUNT
        );
    }
}
