//! Wakes the tokio path at a request's intended send time, to within microseconds. tokio's
//! timer has whole-millisecond ticks, which would put up to 1 ms of lag and jitter into every
//! send. On Linux a one-shot timerfd on
//! CLOCK_MONOTONIC is armed for the next due time and awaited through the runtime's own epoll:
//! one readiness event per wake, no extra thread, no spinning. Elsewhere, or if the timerfd
//! cannot be made, it falls back to tokio's timer.

use tokio::time::Instant;

/// A precise sleep for one task at a time (the dispatcher).
#[derive(Debug)]
pub struct Pacer {
    #[cfg(target_os = "linux")]
    timer: Option<linux::Timer>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new()
    }
}

impl Pacer {
    /// Must be called inside a tokio runtime (the timerfd registers with its reactor).
    pub fn new() -> Self {
        Pacer {
            #[cfg(target_os = "linux")]
            timer: linux::Timer::new()
                .map_err(|e| {
                    tracing::warn!(error = %e, "no timerfd: send times follow tokio's 1 ms timer")
                })
                .ok(),
        }
    }

    /// Whether waits are microsecond-precise (false: tokio's millisecond timer).
    pub fn is_precise(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.timer.is_some();
        #[cfg(not(target_os = "linux"))]
        return false;
    }

    /// Completes at `at` or just after; at once if `at` has passed. Cancel-safe: dropping the
    /// future leaves nothing behind that could wake a later wait early.
    pub async fn until(&mut self, at: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(t) = &mut self.timer {
            if t.until(at).await.is_ok() {
                return;
            }
            tracing::warn!("timerfd failed: send times follow tokio's 1 ms timer from now on");
            self.timer = None;
        }
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::os::fd::{AsFd, AsRawFd, RawFd};

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;
    use tokio::time::Instant;

    /// `AsyncFd` wants `AsRawFd`; nix's `TimerFd` only offers `AsFd`.
    #[derive(Debug)]
    struct Fd(TimerFd);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    #[derive(Debug)]
    pub struct Timer(AsyncFd<Fd>);

    impl Timer {
        pub fn new() -> std::io::Result<Self> {
            let fd = TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            // The workspace's one `unsafe`: tokio cannot check that a raw descriptor stays
            // open while it is registered.
            #[allow(unsafe_code)]
            // SAFETY: `register_with_interest` needs the descriptor that `as_raw_fd` returns to
            // stay open, and to be the same one, for the whole life of the `AsyncFd`. `Fd` owns
            // the `TimerFd` (so the descriptor closes only when the `AsyncFd` and `Fd` are
            // dropped), nothing else can close or replace it (it is private to this module),
            // and `as_raw_fd` always returns the descriptor of that one `TimerFd`.
            let registered = unsafe { AsyncFd::register_with_interest(Fd(fd), Interest::READABLE) }
                .map_err(std::io::Error::from)?;
            Ok(Timer(registered))
        }

        pub async fn until(&mut self, at: Instant) -> std::io::Result<()> {
            loop {
                let now = Instant::now();
                if at <= now {
                    return Ok(());
                }
                // Arming again resets the expiry count, so an expiry left over from a
                // cancelled wait cannot end this one early; the clock check above and the
                // read below make sure of it.
                self.0.get_ref().0.set(
                    Expiration::OneShot(TimeSpec::from_duration(at - now)),
                    TimerSetTimeFlags::empty(),
                )?;
                let mut guard = self.0.readable().await?;
                let mut expirations = [0u8; 8];
                match guard.try_io(|fd| {
                    nix::unistd::read(fd.get_ref().0.as_fd(), &mut expirations)
                        .map_err(std::io::Error::from)
                }) {
                    // A one-shot timer fires once per arming: clearing the readiness now saves
                    // the next wait a stale wake-up, a failed read and a second arming, which
                    // would double the system calls per request.
                    Ok(Ok(_)) => guard.clear_ready(),
                    Err(_would_block) => {} // readiness was stale: check the clock, arm again
                    Ok(Err(e)) => return Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_never_early_and_at_once_for_a_time_past() {
        // How late it wakes is a benchmark figure (bench/run: schedule lag at 2,000/s), not
        // something a unit test on a shared machine can hold it to.
        let mut p = Pacer::new();
        assert_eq!(p.is_precise(), cfg!(target_os = "linux"));
        for _ in 0..50 {
            let at = Instant::now() + Duration::from_micros(700);
            p.until(at).await;
            let now = Instant::now();
            assert!(now >= at, "woke {:?} early", at - now);
        }
        let t = Instant::now();
        p.until(t - Duration::from_millis(5)).await;
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn an_expiry_left_by_a_cancelled_wait_does_not_end_the_next_one_early() {
        let mut p = Pacer::new();
        let cancel_at = Instant::now() + Duration::from_millis(1);
        tokio::select! {
            () = p.until(Instant::now() + Duration::from_millis(3)) => {}
            () = tokio::time::sleep_until(cancel_at) => {}
        }
        // Whatever was armed has fired by now, unread.
        tokio::time::sleep(Duration::from_millis(10)).await;
        let at = Instant::now() + Duration::from_millis(30);
        p.until(at).await;
        assert!(Instant::now() >= at);
    }
}
