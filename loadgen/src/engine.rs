//! The paced engine for plain-http HTTP/1.1 targets on Linux: carries out the dispatch core's
//! steps on one thread of its own, with no async runtime on the request path. It sleeps to the
//! next due time (requests due close together share a wake-up, `SHARED_WAKE`), reads without
//! blocking whatever answers came in since the last wake, then writes the requests now due on
//! idle keep-alive connections, preferring one an answer just freed to opening another. So a
//! request costs at most one wake-up instead of two (its send time and its answer), and
//! answers are timed by the kernel's receive timestamp (`SO_TIMESTAMPNS`), so reading them at
//! the next wake does not make them look slower. It waits on the sockets themselves (epoll)
//! only when it must: a connection being opened, a request held while few others are out,
//! the final drain. Stops are noticed within `MAX_SLEEP`.

mod conn;
mod events;
mod pool;
mod target;
mod warm;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::dispatch::{Dispatch, Step, StopReason};
use crate::recorder::Recorder;
use conn::InFlight;
use pool::Pool;
pub use target::Target;
pub use warm::Ready;

/// The longest the engine sleeps without looking at the stop flag and at answers.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// Without a tick, a request due less than this after a wake-up waits for the next wake-up,
/// which takes every request due by then: at most this late (the lag is recorded, and
/// latency still counts from the intended time). Requests further apart than this, as at
/// 2,000/s, each get a wake-up of their own and go on time. At high rates a wake-up per
/// request would cost the generator a sleep, a wake and a timer each, and the target a
/// wake-up per request too (BENCHMARKS.md, "Cost per request in open-model runs").
pub const SHARED_WAKE: Duration = Duration::from_micros(200);

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

/// Carries out `dispatch`'s steps until it stops, calls `stopped`, then waits for the answers
/// still out, at most `drain`; why it stopped and how long scheduling ran. Due requests go
/// out when their step says (with a tick, everything due by the boundary at one wake).
pub fn run(
    ready: Ready,
    dispatch: &mut Dispatch,
    drain: Duration,
    recorder: &Recorder,
    start: Instant,
    stop: &AtomicBool,
    stopped: impl FnOnce(),
) -> std::io::Result<(StopReason, Duration)> {
    let Ready { target, warm } = ready;
    let mut pool = Pool::new(&target, recorder, warm)?;
    let _slack = TimerSlack::precise();
    let end = dispatch.end().map(|e| start + Duration::from_secs_f64(e));
    let shared = if dispatch.ticks() {
        Duration::ZERO
    } else {
        SHARED_WAKE
    };

    let reason = loop {
        let now = Instant::now();
        if stop.load(Ordering::Relaxed) {
            dispatch.interrupt();
        }
        pool.wake_began();
        pool.expire(now);
        pool.send_retries(now);
        // Send what is due while connections allow; then the next wake.
        let mut wake = now + MAX_SLEEP;
        let mut blocked = false;
        let since_start = now.saturating_duration_since(start).as_secs_f64();
        let stopped = loop {
            match dispatch.next(since_start) {
                Step::Stop(reason) => break Some(reason),
                Step::WaitUntil(at) => {
                    let due = start + Duration::from_secs_f64(at);
                    wake = wake.min(due.max(now + shared));
                    break None;
                }
                Step::Send(due) => {
                    if due.first {
                        recorder.scheduled(due.t);
                    }
                    let req = InFlight {
                        t: due.t,
                        at: start + Duration::from_secs_f64(due.at),
                        sent: now,
                        retried: false,
                    };
                    if pool.send(req, now).is_err() {
                        // No connection for it now: it stays held.
                        blocked = true;
                        break None;
                    }
                    dispatch.sent();
                }
            }
        };
        if let Some(reason) = stopped {
            break reason;
        }
        pool.send_retries(now);
        blocked |= pool.has_retries();
        if let Some(e) = end {
            wake = wake.min(e);
        }
        if let Some(d) = pool.earliest_deadline() {
            wake = wake.min(d);
        }
        if blocked {
            // A held request is late already. With many requests out, looking again after
            // a shared wake-up's time rather than at each answer spares the target a wake-up
            // of this thread per answer when it is slow, which is when it can least afford
            // one; with few out, or with ticks, an answer wakes it, and no later than that.
            wake = wake.min(now + SHARED_WAKE);
        }
        if pool.must_watch() || (blocked && (shared.is_zero() || pool.few_out())) {
            pool.wait(Some(wake))?;
        } else {
            if let Some(left) = wake.checked_duration_since(Instant::now()) {
                std::thread::sleep(left);
            }
            pool.wait(None)?;
        }
    };
    let elapsed = start.elapsed();
    stopped();
    pool.drain(drain)?;
    Ok((reason, elapsed))
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
