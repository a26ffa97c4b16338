//! Closes a connection whose next request head has not arrived within `--header-timeout` of
//! the connection opening or of its previous answer (slowloris, idle keep-alive), and never
//! one with a request in progress; also one whose large answer could not be handed over
//! within that time. One timer per connection, moved only when it fires, so a request costs
//! two atomic updates; hyper's own header-read timeout registers and removes a timer for every
//! request, a noticeable share of a request's work (BENCHMARKS.md).

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's Instant (the same clock as std's outside tests) so paused-time tests can drive it.
use tokio::time::Instant;

/// What the requests of one connection report to its watchdog.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_progress: AtomicU32,
    /// Nanoseconds from `opened` to the end of the last answer (0: none yet).
    last_answer: AtomicU64,
    /// Large answers not yet handed to hyper whole (see [`Unsent`]), and since when some
    /// have been waiting: one lock, taken only for `/metrics` answers and when the timer fires.
    unsent: Mutex<(u32, Instant)>,
}

impl Activity {
    pub fn new(opened: Instant) -> Self {
        Activity {
            opened,
            in_progress: AtomicU32::new(0),
            last_answer: AtomicU64::new(0),
            unsent: Mutex::new((0, opened)),
        }
    }

    /// A large answer (a `/metrics` text) is handed over for sending; the connection is
    /// closed if some such answer has waited the whole timeout to be sent (a peer that opens
    /// no flow-control window or stops reading), so no peer can pin it. Held by the body.
    pub fn unsent(self: &Arc<Self>) -> Unsent {
        let mut u = self.lock_unsent();
        if u.0 == 0 {
            u.1 = Instant::now();
        }
        u.0 += 1;
        Unsent(Arc::clone(self))
    }

    /// Whether an answer has been waiting to be sent since before `limit`.
    fn stuck(&self, limit: Instant) -> bool {
        let u = self.lock_unsent();
        u.0 > 0 && u.1 <= limit
    }

    fn lock_unsent(&self) -> std::sync::MutexGuard<'_, (u32, Instant)> {
        // Two plain numbers: a panic elsewhere cannot leave them half-written.
        self.unsent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request head arrived; its handler runs until the guard is ended or dropped (a
    /// handler cancelled half-way, as on an HTTP/2 stream reset, must not leave the connection
    /// counted busy forever).
    pub fn begin(&self) -> Busy<'_> {
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        Busy {
            activity: self,
            ended: false,
        }
    }

    fn answered(&self, at: Instant) {
        let since = at.saturating_duration_since(self.opened).as_nanos() as u64;
        self.last_answer.fetch_max(since, Ordering::Relaxed);
        self.in_progress.fetch_sub(1, Ordering::Relaxed);
    }

    /// When the connection last started waiting for a request head.
    fn idle_since(&self) -> Instant {
        self.opened + Duration::from_nanos(self.last_answer.load(Ordering::Relaxed))
    }
}

/// A large answer not yet sent whole; dropped with its body.
#[derive(Debug)]
pub struct Unsent(Arc<Activity>);

impl Drop for Unsent {
    fn drop(&mut self) {
        let mut u = self.0.lock_unsent();
        u.0 = u.0.saturating_sub(1);
    }
}

/// One request in progress on a connection.
#[derive(Debug)]
pub struct Busy<'a> {
    activity: &'a Activity,
    ended: bool,
}

impl Busy<'_> {
    /// The answer is ready at `at` (a time the caller has read anyway).
    pub fn end(mut self, at: Instant) {
        self.ended = true;
        self.activity.answered(at);
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.activity.answered(Instant::now());
        }
    }
}

/// Runs `conn` until it ends, or until it has waited `timeout` for a request head; `None`
/// then, and the connection is dropped (closed) without an answer, as hyper did.
pub async fn guard<F: Future>(
    conn: F,
    activity: &Activity,
    timeout: Duration,
) -> Option<F::Output> {
    tokio::pin!(conn);
    let sleep = tokio::time::sleep_until(activity.opened + timeout);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            out = &mut conn => return Some(out),
            () = &mut sleep => {
                let now = Instant::now();
                if activity.stuck(now - timeout) {
                    tracing::debug!("an answer waited the header timeout to be sent: closing");
                    return None;
                }
                let next = if activity.in_progress.load(Ordering::Relaxed) > 0 {
                    // A request is being served (its body has its own timeout): the head
                    // came in. The clock for the next head starts when it is answered.
                    now + timeout
                } else {
                    let due = activity.idle_since() + timeout;
                    if now >= due {
                        tracing::debug!("no request head within the header timeout: closing");
                        return None;
                    }
                    due
                };
                sleep.as_mut().reset(next);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards a connection that never ends by itself while `requests` run on it; returns when
    /// the watchdog closed it, counted from the start.
    async fn closed_after(
        timeout: Duration,
        a: &Activity,
        requests: impl Future<Output = ()>,
    ) -> Duration {
        let started = Instant::now();
        let (out, ()) = tokio::join!(guard(std::future::pending::<()>(), a, timeout), requests);
        assert!(out.is_none());
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_after_the_timeout_from_its_last_answer() {
        let t = Duration::from_secs(10);
        let a = Activity::new(Instant::now());
        // Requests come at 2 s and 9 s.
        let started = Instant::now();
        let requests = async {
            for at in [2u64, 9] {
                tokio::time::sleep_until(started + Duration::from_secs(at)).await;
                a.begin().end(Instant::now());
            }
        };
        let closed = closed_after(t, &a, requests).await;
        assert!(
            closed >= Duration::from_secs(19) && closed < Duration::from_millis(19_100),
            "closed at {closed:?}, expected 10 s after the answer at 9 s"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_request_is_never_cut_and_the_clock_restarts_at_its_answer() {
        let t = Duration::from_secs(1);
        let a = Activity::new(Instant::now());
        let request = async {
            let busy = a.begin();
            tokio::time::sleep(Duration::from_secs(5)).await; // a slow order
            drop(busy); // as when the handler is cancelled: still counts as answered
        };
        let closed = closed_after(t, &a, request).await;
        assert!(
            closed >= Duration::from_secs(6) && closed < Duration::from_millis(6_100),
            "closed at {closed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_cannot_be_sent_closes_the_connection_despite_new_requests() {
        let t = Duration::from_secs(1);
        let a = Arc::new(Activity::new(Instant::now()));
        let started = Instant::now();
        let requests = async {
            let _stuck = a.unsent(); // a /metrics body the peer never reads
                                     // Meanwhile a request every 300 ms keeps the connection from looking idle.
            loop {
                a.begin().end(Instant::now());
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        };
        let closed = tokio::select! {
            out = guard(std::future::pending::<()>(), &a, t) => { assert!(out.is_none()); started.elapsed() }
            () = requests => unreachable!(),
        };
        assert!(
            closed <= Duration::from_millis(2_100),
            "closed at {closed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_ends_by_itself_is_returned() {
        let a = Activity::new(Instant::now());
        let conn = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            7
        };
        assert_eq!(guard(conn, &a, Duration::from_secs(1)).await, Some(7));
    }
}
