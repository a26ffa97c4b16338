//! The paced engine for plain-http HTTP/1.1 targets on Linux: the whole open-model dispatch
//! loop on one thread of its own, with no async runtime on the request path. It sleeps to the
//! next due time, reads without blocking whatever answers came in since the last wake, then
//! writes the requests now due on idle keep-alive connections. So a request costs one wake-up
//! instead of two (its send time and its answer), and answers are timed by the kernel's
//! receive timestamp (`SO_TIMESTAMPNS`), so reading them at the next wake does not make them
//! look slower. It waits on the sockets themselves (epoll) only when it must: a due request
//! with every allowed connection busy, a connection being opened, the final drain. Stops are
//! noticed within `MAX_SLEEP`.

mod pool;
mod target;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use order_server::contract::OrderType;

use crate::recorder::Recorder;
use crate::schedule::{before_end, tick_after};
use pool::{InFlight, Pool};
pub use target::Target;

/// The longest the engine sleeps without looking at the stop flag and at answers.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// Wake-ups a few microseconds late instead of the default 50 µs of timer slack, for as long
/// as the engine runs: its thread belongs to tokio's blocking pool, and whatever runs there
/// next gets the slack it had before.
struct TimerSlack(Option<i32>);

impl TimerSlack {
    fn precise() -> Self {
        let before = nix::sys::prctl::get_timerslack().ok();
        let _ = nix::sys::prctl::set_timerslack(1_000);
        TimerSlack(before)
    }
}

impl Drop for TimerSlack {
    fn drop(&mut self) {
        if let Some(ns) = self.0.and_then(|ns| u64::try_from(ns).ok()) {
            let _ = nix::sys::prctl::set_timerslack(ns);
        }
    }
}

/// Where the run ends, from its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub duration: Option<Duration>,
    pub requests: Option<u64>,
    pub drain: Duration,
}

/// Runs the dispatch loop, taking due requests from `next_due` (order type, seconds from
/// `start`), then the drain; returns why scheduling stopped and how long it ran. With a
/// non-zero `tick` it wakes only on tick boundaries and sends everything due by then. What
/// the schedule still holds afterwards is the caller's to count as skipped.
pub fn run(
    target: &Target,
    mut next_due: impl FnMut() -> Option<(OrderType, f64)>,
    limits: Limits,
    tick: Duration,
    recorder: &Recorder,
    start: Instant,
    stop: &AtomicBool,
) -> std::io::Result<(&'static str, Duration)> {
    let mut pool = Pool::new(target, recorder)?;
    let _slack = TimerSlack::precise();
    let end = limits.duration.map(|d| start + d);
    let (tick_s, length_s) = (tick.as_secs_f64(), limits.duration.map(|d| d.as_secs_f64()));
    let mut scheduled: u64 = 0;
    // The next due request, taken from the schedule but not yet sent.
    let mut next: Option<(OrderType, f64)> = next_due();
    // A due request counted as scheduled that waits for a connection.
    let mut waiting: Option<InFlight> = None;

    let stopped_by = loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) {
            break "interrupted";
        }
        pool.expire(now);
        pool.send_retries(now);
        // With ticks, the last tick boundary can fall on the end or after it: what fell due
        // before the end still goes out then, as it would have at that boundary.
        let at_end = end.is_some_and(|e| now >= e);
        if at_end && tick.is_zero() {
            break "duration";
        }
        // Send what is due while connections allow.
        let mut blocked = false;
        loop {
            if let Some(w) = waiting {
                match pool.send(w, now) {
                    Ok(()) => waiting = None,
                    Err(w) => {
                        waiting = Some(w);
                        blocked = true;
                        break;
                    }
                }
            }
            let Some((t, due)) = next else { break };
            if let Some(length) = limits.duration {
                if !before_end(due, length.as_secs_f64()) {
                    break;
                }
            }
            // With ticks, a request waits for its tick boundary even when something else
            // (an answer, a look at the stop flag) wakes the loop earlier.
            if start + Duration::from_secs_f64(tick_after(due, tick_s, length_s)) > now {
                break;
            }
            if limits.requests.is_some_and(|n| scheduled >= n) {
                break;
            }
            recorder.scheduled(t);
            scheduled += 1;
            next = next_due();
            waiting = Some(InFlight {
                t,
                at: start + Duration::from_secs_f64(due),
                sent: now,
                retried: false,
            });
        }
        pool.send_retries(now);
        blocked |= pool.has_retries();
        if at_end {
            break "duration";
        }
        if waiting.is_none() {
            if limits.requests.is_some_and(|n| scheduled >= n) {
                break "requests";
            }
            if next.is_none() && end.is_none() {
                break "scenario_end";
            }
        }

        // The next thing to do: the next due request, the end, a deadline, a look at the flag.
        let mut wake = now + MAX_SLEEP;
        if let Some((_, due)) = next.filter(|_| waiting.is_none()) {
            let look = tick_after(due, tick_s, length_s);
            wake = wake.min(start + Duration::from_secs_f64(look));
        }
        if let Some(e) = end {
            wake = wake.min(e);
        }
        if let Some(d) = pool.earliest_deadline() {
            wake = wake.min(d);
        }
        if blocked || pool.must_watch() {
            pool.wait(Some(wake))?;
        } else {
            if let Some(left) = wake.checked_duration_since(Instant::now()) {
                std::thread::sleep(left);
            }
            pool.wait(None)?;
        }
    };

    let elapsed = start.elapsed();
    if let Some(w) = waiting.take() {
        recorder.skipped(w.t, 1);
    }
    // The caller counts what the schedule still holds that fell due before the end; the one
    // request taken from it here but never sent is counted now.
    let now_s = match (stopped_by, limits.duration) {
        ("duration", Some(d)) => d.as_secs_f64(),
        _ => elapsed.as_secs_f64(),
    };
    if matches!(stopped_by, "duration" | "interrupted") {
        if let Some((t, due)) = next.take() {
            if before_end(due, now_s) {
                recorder.scheduled(t);
                recorder.skipped(t, 1);
            }
        }
    }
    pool.drain(limits.drain)?;
    Ok((stopped_by, elapsed))
}

#[cfg(test)]
mod tests {
    use super::TimerSlack;
    use nix::sys::prctl::get_timerslack;

    #[test]
    fn the_thread_gets_its_timer_slack_back() {
        std::thread::spawn(|| {
            let before = get_timerslack().expect("slack");
            {
                let _slack = TimerSlack::precise();
                assert_eq!(get_timerslack().expect("slack"), 1_000);
            }
            assert_eq!(get_timerslack().expect("slack"), before);
        })
        .join()
        .expect("thread");
    }
}
