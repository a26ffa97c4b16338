//! Orders accepted "today", per order type, where today starts at midnight of the configured
//! time zone. This replaces the guide's random gauge value: the count restarts at 0 when the
//! local date changes, whether or not an order arrives at that moment.

use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;

use crate::contract::OrderType;

#[derive(Debug)]
pub struct DailyCounter {
    tz: Tz,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
struct State {
    day: NaiveDate,
    counts: [u64; 2],
    /// `day` is certainly still today for any `now` in `[valid_from, valid_until)`: the
    /// time-zone conversion, expensive next to the rest of an order, runs once per day
    /// instead of once per order.
    valid_from: DateTime<Utc>,
    valid_until: DateTime<Utc>,
}

impl DailyCounter {
    pub fn new(tz: Tz, now: DateTime<Utc>) -> Self {
        DailyCounter {
            tz,
            state: Mutex::new(State::starting(tz, now, [0; 2])),
        }
    }

    /// Counts one accepted order and returns the new count of its type for today.
    pub fn record(&self, t: OrderType, now: DateTime<Utc>) -> u64 {
        let mut s = self.roll(now);
        s.counts[t.index()] += 1;
        s.counts[t.index()]
    }

    /// Today's counts, indexed by [`OrderType::index`]; rolls over to zeros after midnight.
    pub fn snapshot(&self, now: DateTime<Utc>) -> [u64; 2] {
        self.roll(now).counts
    }

    fn roll(&self, now: DateTime<Utc>) -> std::sync::MutexGuard<'_, State> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now < s.valid_from || now >= s.valid_until {
            let counts = s.counts;
            let next = State::starting(self.tz, now, counts);
            *s = if next.day == s.day {
                next
            } else {
                State {
                    counts: [0; 2],
                    ..next
                }
            };
        }
        s
    }
}

impl State {
    fn starting(tz: Tz, now: DateTime<Utc>, counts: [u64; 2]) -> Self {
        let day = now.with_timezone(&tz).date_naive();
        // The next local midnight in UTC; where a DST jump skips midnight, look again in a
        // minute rather than guess.
        let valid_until = day
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .and_then(|m| m.and_local_timezone(tz).earliest())
            .map(|m| m.with_timezone(&Utc))
            .filter(|m| *m > now)
            .unwrap_or(now + chrono::TimeDelta::minutes(1));
        State {
            day,
            counts,
            valid_from: now,
            valid_until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn resets_at_local_midnight_not_utc() {
        let tz = chrono_tz::Asia::Shanghai; // UTC+8: local midnight is 16:00 UTC
        let before = Utc
            .with_ymd_and_hms(2026, 11, 25, 15, 59, 59)
            .single()
            .expect("valid");
        let after = Utc
            .with_ymd_and_hms(2026, 11, 25, 16, 0, 0)
            .single()
            .expect("valid");
        let c = DailyCounter::new(tz, before);
        assert_eq!(c.record(OrderType::Food, before), 1);
        assert_eq!(c.record(OrderType::Food, before), 2);
        assert_eq!(c.record(OrderType::Clothing, before), 1);
        assert_eq!(c.snapshot(before), [2, 1]);
        assert_eq!(c.snapshot(after), [0, 0]);
        assert_eq!(c.record(OrderType::Clothing, after), 1);
        assert_eq!(c.snapshot(after), [0, 1]);
    }

    #[test]
    fn a_midnight_skipped_by_daylight_saving_still_starts_a_new_day() {
        // Cuba springs forward at midnight: 2026-03-08 00:00 local does not exist.
        let tz = chrono_tz::America::Havana;
        let before = Utc
            .with_ymd_and_hms(2026, 3, 8, 4, 59, 0) // 23:59 on the 7th, UTC-5
            .single()
            .expect("valid");
        let after = Utc
            .with_ymd_and_hms(2026, 3, 8, 5, 0, 30) // 01:00:30 on the 8th, UTC-4
            .single()
            .expect("valid");
        let c = DailyCounter::new(tz, before);
        assert_eq!(c.record(OrderType::Food, before), 1);
        assert_eq!(c.record(OrderType::Food, after), 1, "a new day began");
        assert_eq!(c.record(OrderType::Food, after), 2);
    }

    #[test]
    fn the_same_day_is_not_recomputed_but_a_clock_going_back_is_seen() {
        let tz = chrono_tz::UTC;
        let t = |h, m| {
            Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0)
                .single()
                .expect("valid")
        };
        let c = DailyCounter::new(tz, t(10, 0));
        for _ in 0..1000 {
            c.record(OrderType::Clothing, t(12, 0));
        }
        assert_eq!(c.snapshot(t(23, 59)), [0, 1000]);
        // The clock is set back into yesterday: that is another day.
        let yesterday = t(10, 0) - chrono::TimeDelta::days(1);
        assert_eq!(c.snapshot(yesterday), [0, 0]);
    }
}
