//! Orders accepted "today", per order type, where today starts at midnight of the configured
//! time zone. This replaces the seed's random gauge value: the count restarts at 0 when the
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
}

impl DailyCounter {
    pub fn new(tz: Tz, now: DateTime<Utc>) -> Self {
        DailyCounter {
            tz,
            state: Mutex::new(State {
                day: now.with_timezone(&tz).date_naive(),
                counts: [0; 2],
            }),
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
        let today = now.with_timezone(&self.tz).date_naive();
        if today != s.day {
            *s = State {
                day: today,
                counts: [0; 2],
            };
        }
        s
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
}
