//! How many connections the target needs, by Little's law: the rate requests fall due times
//! the shortest service time seen lately, doubled for bursts. The shortest, not the recent
//! average, because a congested target's answers queue behind one another and more
//! connections only lengthen its queue: on one core the order server serves 20 % less at 512
//! connections than at 50, and a generator that opens a connection per held request after a
//! stall pushes it there. A target that is slow by nature (a 100 ms call at 10k/s) shows it in
//! its shortest answers too, and gets its thousand connections. Past the need, connections
//! open at most one a millisecond; before the first answer nothing is known and nothing is
//! held back. Both figures cover the last one to two windows, so a target whose answers
//! slow down for good is followed within two seconds.

use std::time::{Duration, Instant};

/// How long one window of due counts and shortest service time lasts.
const WINDOW: Duration = Duration::from_secs(1);
/// Past the need, one new connection at most this often.
pub(super) const RATION: Duration = Duration::from_millis(1);
/// Headroom over Little's law: arrivals bunch up, and answers are not all the shortest.
const HEADROOM: f64 = 2.0;

#[derive(Debug)]
pub(super) struct Budget {
    /// At least this many connections are allowed (those opened before the run).
    floor: usize,
    began: Instant,
    /// This window's and the previous one's requests due.
    due: [u64; 2],
    /// This window's and the previous one's shortest service time.
    shortest: [Option<Duration>; 2],
    last_open: Option<Instant>,
}

impl Budget {
    pub(super) fn new(floor: usize, now: Instant) -> Self {
        Budget {
            floor,
            began: now,
            due: [0; 2],
            shortest: [None; 2],
            last_open: None,
        }
    }

    /// A request fell due (counted once, however often it waits for a connection).
    pub(super) fn due(&mut self, now: Instant) {
        self.roll(now);
        self.due[0] += 1;
    }

    /// An answer came `service` after its request was sent.
    pub(super) fn answered(&mut self, service: Duration, now: Instant) {
        self.roll(now);
        let s = &mut self.shortest[0];
        *s = Some(s.map_or(service, |s| s.min(service)));
    }

    /// A connection was opened.
    pub(super) fn opened(&mut self, now: Instant) {
        self.last_open = Some(now);
    }

    /// Whether one more connection may open now, with `open` open: always up to the need
    /// (or while no answer has told it), then one a `RATION`.
    pub(super) fn allows(&self, open: usize, now: Instant) -> bool {
        match self.need(now) {
            Some(need) if open >= need => self
                .last_open
                .is_none_or(|t| now.saturating_duration_since(t) >= RATION),
            _ => true,
        }
    }

    /// The connections the target needs now; `None` before any answer.
    pub(super) fn need(&self, now: Instant) -> Option<usize> {
        let shortest = match self.shortest {
            [Some(a), Some(b)] => a.min(b),
            [Some(a), None] | [None, Some(a)] => a,
            [None, None] => return None,
        };
        let window = now.saturating_duration_since(self.began);
        // The previous window is a whole one; this one is only as long as it has run.
        let (due, over) = if self.due[1] > 0 {
            (self.due[0] + self.due[1], WINDOW + window)
        } else {
            (self.due[0], window)
        };
        let rate = due as f64 / over.as_secs_f64().max(RATION.as_secs_f64());
        let need = (rate * shortest.as_secs_f64() * HEADROOM).ceil();
        Some(self.floor.max(1).max(need.min(1e9) as usize))
    }

    /// Starts a new window once this one is over; a gap of more than a window forgets both.
    fn roll(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.began);
        if age < WINDOW {
            return;
        }
        if age < WINDOW * 2 {
            self.due = [0, self.due[0]];
            self.shortest = [None, self.shortest[0]];
        } else {
            self.due = [0; 2];
            self.shortest = [None; 2];
        }
        self.began = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_is_held_back_before_the_first_answer() {
        let t0 = Instant::now();
        let mut b = Budget::new(4, t0);
        for i in 0..1000 {
            b.due(t0 + Duration::from_micros(i * 25));
        }
        assert_eq!(b.need(t0 + ms(25)), None);
        assert!(b.allows(10_000, t0 + ms(25)));
    }

    #[test]
    fn the_need_is_the_rate_times_the_shortest_answer_doubled() {
        let t0 = Instant::now();
        let mut b = Budget::new(4, t0);
        // 40,000 due a second for 100 ms; the shortest answer 0.5 ms: 40k x 0.5 ms x 2 = 40.
        for i in 0..4000 {
            b.due(t0 + Duration::from_micros(i * 25));
        }
        b.answered(ms(3), t0 + ms(50));
        b.answered(Duration::from_micros(500), t0 + ms(60));
        assert_eq!(b.need(t0 + ms(100)), Some(40));
        // A slow target gets what its shortest answer asks: 10k/s x 100 ms x 2.
        let mut slow = Budget::new(1, t0);
        for i in 0..1000 {
            slow.due(t0 + Duration::from_micros(i * 100));
        }
        slow.answered(ms(100), t0 + ms(100));
        assert_eq!(slow.need(t0 + ms(100)), Some(2000));
        // Never below the connections opened ahead.
        let mut idle = Budget::new(8, t0);
        idle.due(t0);
        idle.answered(Duration::from_micros(100), t0 + ms(1));
        assert_eq!(idle.need(t0 + ms(500)), Some(8));
    }

    #[test]
    fn past_the_need_one_connection_a_millisecond() {
        let t0 = Instant::now();
        let mut b = Budget::new(2, t0);
        b.due(t0);
        b.answered(Duration::from_micros(100), t0 + ms(1));
        let need = b.need(t0 + ms(2)).expect("an answer came");
        assert!(b.allows(need - 1, t0 + ms(2)));
        assert!(b.allows(need, t0 + ms(2)), "no connection opened yet");
        b.opened(t0 + ms(2));
        assert!(!b.allows(need, t0 + ms(2)));
        assert!(!b.allows(need + 5, t0 + Duration::from_micros(2900)));
        assert!(b.allows(need + 5, t0 + ms(3)));
        assert!(b.allows(need - 1, t0 + ms(2)), "within the need: no ration");
    }

    #[test]
    fn a_target_that_slows_down_for_good_is_followed_within_two_windows() {
        let t0 = Instant::now();
        let mut b = Budget::new(1, t0);
        for i in 0..1000 {
            b.due(t0 + ms(i));
            b.answered(ms(1), t0 + ms(i));
        }
        // 1,000/s, shortest 1 ms: 2 connections (3 as 1,000 fell due in 999 ms).
        assert!(matches!(b.need(t0 + ms(999)), Some(2..=3)));
        // From the second window on every answer takes 200 ms.
        for i in 1000..3000 {
            b.due(t0 + ms(i));
            b.answered(ms(200), t0 + ms(i));
        }
        // 1,000/s x 200 ms x 2.
        assert_eq!(b.need(t0 + ms(3000)), Some(400));
    }

    #[test]
    fn a_quiet_spell_forgets_what_came_before() {
        let t0 = Instant::now();
        let mut b = Budget::new(1, t0);
        b.due(t0);
        b.answered(ms(1), t0);
        b.due(t0 + ms(5000));
        assert_eq!(b.need(t0 + ms(5000)), None);
    }
}
