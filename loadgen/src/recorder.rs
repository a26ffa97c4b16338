//! What the run measured: per order type, requests scheduled, sent, late and skipped, outcomes
//! by class, and HdrHistograms of corrected latency (from the intended send time, so a stalled
//! target cannot hide behind coordinated omission), service time (from the actual send) and
//! schedule lag. Histograms keep memory flat however long the run. The same three are kept for
//! the interval since the last look, which the time series and the progress line take whole,
//! counts only copied and the interval's histograms swapped out, so the lock is held for
//! microseconds. Every event is mirrored into the exported metrics when they are on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use order_server::contract::OrderType;

use crate::hdr;
use crate::outcome::OutcomeClass;
use crate::telemetry::LoadgenMetrics;

/// A send this much after its intended time counts as late.
pub const LATE_THRESHOLD: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct TypeStats {
    pub scheduled: u64,
    pub sent: u64,
    pub late: u64,
    pub skipped: u64,
    pub outcomes: [u64; 6],
    /// Microseconds from intended send time to response.
    pub corrected: Histogram<u64>,
    /// Microseconds from actual send to response.
    pub service: Histogram<u64>,
    /// Microseconds from intended to actual send.
    pub lag: Histogram<u64>,
    /// The latencies since the last [`Recorder::take_window`].
    pub window: Window,
}

/// Latencies of one interval, in microseconds. Service time and lag are only kept when the
/// run records a time series; corrected latency always (the progress line shows its p99).
#[derive(Debug, Clone)]
pub struct Window {
    pub corrected: Histogram<u64>,
    pub service: Histogram<u64>,
    pub lag: Histogram<u64>,
}

impl Window {
    pub fn new() -> Self {
        Window {
            corrected: histogram(),
            service: histogram(),
            lag: histogram(),
        }
    }

    /// Adds another interval's latencies (same bounds on both sides, so it cannot fail).
    pub fn add(&mut self, other: &Window) {
        let _ = self.corrected.add(&other.corrected);
        let _ = self.service.add(&other.service);
        let _ = self.lag.add(&other.lag);
    }
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

/// A type's counts at one moment, without its histograms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub scheduled: u64,
    pub sent: u64,
    pub late: u64,
    pub skipped: u64,
    pub outcomes: [u64; 6],
}

impl Counts {
    /// Both counts added, count by count (two types' totals, say).
    pub fn plus(&self, other: &Counts) -> Counts {
        self.zip(other, u64::saturating_add)
    }

    /// This count less an earlier one of the same type (the span between two looks).
    pub fn since(&self, earlier: &Counts) -> Counts {
        self.zip(earlier, u64::saturating_sub)
    }

    fn zip(&self, o: &Counts, f: fn(u64, u64) -> u64) -> Counts {
        let mut outcomes = self.outcomes;
        for (a, b) in outcomes.iter_mut().zip(o.outcomes) {
            *a = f(*a, b);
        }
        Counts {
            scheduled: f(self.scheduled, o.scheduled),
            sent: f(self.sent, o.sent),
            late: f(self.late, o.late),
            skipped: f(self.skipped, o.skipped),
            outcomes,
        }
    }

    pub fn completed(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    pub fn ok(&self) -> u64 {
        self.outcomes[OutcomeClass::Success.index()]
    }
}

/// The bounds a report's histograms are read back with (hdr.rs), so shards add up.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(hdr::LOWEST, hdr::HIGHEST, hdr::SIGFIG)
        .unwrap_or_else(|_| unreachable!())
}

impl TypeStats {
    pub(crate) fn new() -> Self {
        let h = histogram;
        TypeStats {
            scheduled: 0,
            sent: 0,
            late: 0,
            skipped: 0,
            outcomes: [0; 6],
            corrected: h(),
            service: h(),
            lag: h(),
            window: Window::new(),
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            scheduled: self.scheduled,
            sent: self.sent,
            late: self.late,
            skipped: self.skipped,
            outcomes: self.outcomes,
        }
    }

    pub fn completed(&self) -> u64 {
        self.outcomes.iter().sum()
    }

    pub fn ok(&self) -> u64 {
        self.outcomes[OutcomeClass::Success.index()]
    }

    /// Adds another type's numbers into this one (for totals).
    pub fn merge(&mut self, other: &TypeStats) {
        self.scheduled += other.scheduled;
        self.sent += other.sent;
        self.late += other.late;
        self.skipped += other.skipped;
        for (a, b) in self.outcomes.iter_mut().zip(other.outcomes) {
            *a += b;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.service.add(&other.service);
        let _ = self.lag.add(&other.lag);
        self.window.add(&other.window);
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(hdr::LOWEST, hdr::HIGHEST)
}

/// Shared by the dispatcher and every request task.
#[derive(Debug)]
pub struct Recorder {
    stats: Mutex<[TypeStats; 2]>,
    /// Kept outside the lock: the dispatcher counts every due request, and at saturation it
    /// would otherwise contend with every request task for the lock.
    scheduled: [AtomicU64; 2],
    in_flight: AtomicU64,
    metrics: Option<Arc<LoadgenMetrics>>,
    /// Keep service time and lag per interval too (for the time series).
    series: bool,
}

impl Recorder {
    /// `series`: also keep each interval's service time and lag, which the time series
    /// shows.
    pub fn new(metrics: Option<Arc<LoadgenMetrics>>, series: bool) -> Self {
        Recorder {
            stats: Mutex::new([TypeStats::new(), TypeStats::new()]),
            scheduled: [AtomicU64::new(0), AtomicU64::new(0)],
            in_flight: AtomicU64::new(0),
            metrics,
            series,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [TypeStats; 2]> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn scheduled(&self, t: OrderType) {
        self.scheduled_n(t, 1);
    }

    pub fn scheduled_n(&self, t: OrderType, n: u64) {
        self.scheduled[t.index()].fetch_add(n, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.scheduled(t, n);
        }
    }

    /// A copy of the stats with the scheduled counts filled in.
    fn copy(&self, s: &[TypeStats; 2]) -> [TypeStats; 2] {
        let mut out = s.clone();
        for (o, n) in out.iter_mut().zip(&self.scheduled) {
            o.scheduled = n.load(Ordering::Relaxed);
        }
        out
    }

    /// A request left `lag` after its intended time.
    pub fn sent(&self, t: OrderType, lag: Duration) {
        let late = lag > LATE_THRESHOLD;
        {
            let mut s = self.lock();
            let s = &mut s[t.index()];
            s.sent += 1;
            s.late += u64::from(late);
            let _ = s.lag.record(micros(lag));
            if self.series {
                let _ = s.window.lag.record(micros(lag));
            }
        }
        let n = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(m) = &self.metrics {
            m.sent(t, lag, late);
            m.set_in_flight(n);
        }
    }

    pub fn completed(
        &self,
        t: OrderType,
        class: OutcomeClass,
        corrected: Duration,
        service: Duration,
    ) {
        {
            let mut s = self.lock();
            let s = &mut s[t.index()];
            s.outcomes[class.index()] += 1;
            if class.is_timed() {
                let _ = s.corrected.record(micros(corrected));
                let _ = s.service.record(micros(service));
                let _ = s.window.corrected.record(micros(corrected));
                if self.series {
                    let _ = s.window.service.record(micros(service));
                }
            }
        }
        let n = self
            .in_flight
            .fetch_sub(1, Ordering::Relaxed)
            .saturating_sub(1);
        if let Some(m) = &self.metrics {
            m.completed(t, class, corrected, service);
            m.set_in_flight(n);
        }
    }

    /// Requests that fell due but were never sent (the run stopped first).
    /// What the dispatch never sent: the requests never offered count as scheduled now, and
    /// every unsent request as skipped.
    pub fn unsent(&self, u: &crate::dispatch::Unsent) {
        for t in OrderType::ALL {
            self.scheduled_n(t, u.never_offered[t.index()]);
            self.skipped(t, u.skipped(t));
        }
    }

    pub fn skipped(&self, t: OrderType, n: u64) {
        if n == 0 {
            return;
        }
        self.lock()[t.index()].skipped += n;
        if let Some(m) = &self.metrics {
            m.skipped(t, n);
        }
    }

    pub fn set_target_rate(&self, t: OrderType, rate: f64) {
        if let Some(m) = &self.metrics {
            m.set_target_rate(t, rate);
        }
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> [TypeStats; 2] {
        self.copy(&self.lock())
    }

    /// Counts so far, and the latencies since the previous call, which start afresh. The
    /// fresh histograms are made before the lock is taken.
    pub fn take_window(&self) -> [(Counts, Window); 2] {
        let fresh = [Window::new(), Window::new()];
        self.swap_windows(&mut self.lock(), fresh)
    }

    /// The final numbers and the last interval, from one look under the lock, so the time
    /// series' last point and the report's totals agree even while a request the drain gave
    /// up on is still being recorded.
    pub fn close(&self) -> ([TypeStats; 2], [(Counts, Window); 2]) {
        let fresh = [Window::new(), Window::new()];
        let mut s = self.lock();
        let last = self.swap_windows(&mut s, fresh);
        (self.copy(&s), last)
    }

    fn swap_windows(
        &self,
        s: &mut [TypeStats; 2],
        mut fresh: [Window; 2],
    ) -> [(Counts, Window); 2] {
        let mut counts = [Counts::default(); 2];
        for ((stats, fresh), counts) in s.iter_mut().zip(&mut fresh).zip(&mut counts) {
            *counts = stats.counts();
            std::mem::swap(&mut stats.window, fresh);
        }
        for (c, n) in counts.iter_mut().zip(&self.scheduled) {
            c.scheduled = n.load(Ordering::Relaxed);
        }
        let [a, b] = fresh;
        [(counts[0], a), (counts[1], b)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_histograms() {
        let r = Recorder::new(None, true);
        r.scheduled(OrderType::Food);
        r.scheduled(OrderType::Food);
        r.sent(OrderType::Food, Duration::from_micros(50));
        r.sent(OrderType::Food, Duration::from_millis(20));
        assert_eq!(r.in_flight(), 2);
        r.completed(
            OrderType::Food,
            OutcomeClass::Success,
            Duration::from_millis(30),
            Duration::from_millis(10),
        );
        r.completed(
            OrderType::Food,
            OutcomeClass::ConnectError,
            Duration::ZERO,
            Duration::ZERO,
        );
        r.skipped(OrderType::Clothing, 3);
        let s = r.snapshot();
        let f = &s[OrderType::Food.index()];
        assert_eq!(
            (f.scheduled, f.sent, f.late, f.completed(), f.ok()),
            (2, 2, 1, 2, 1)
        );
        assert_eq!(f.corrected.len(), 1, "connect errors carry no latency");
        assert!((29_900..=30_100).contains(&f.corrected.max()));
        assert_eq!(s[OrderType::Clothing.index()].skipped, 3);
        assert_eq!(r.in_flight(), 0);
        let mut total = s[0].clone();
        total.merge(&s[1]);
        assert_eq!(total.skipped, 3);
        assert_eq!(total.sent, 2);
    }
}
