//! One connection of the paced engine: its state (connecting, idle, busy with a deadline), the
//! request on it, the answer being framed, request bytes the socket has not taken yet, and the
//! kernel's receive stamp of the last bytes read. Whether the dispatch loop must watch its
//! socket (a connect or a partial write under way) is a question it answers itself.

use std::net::TcpStream;
use std::time::Instant;

use order_server::contract::OrderType;

use crate::answer::Answer;

/// One request on a connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    pub(super) t: OrderType,
    /// Its intended send time.
    pub(super) at: Instant,
    /// When it was handed to a connection (service time counts from here).
    pub(super) sent: Instant,
    /// Sent again once already, after a kept-alive connection turned out closed.
    pub(super) retried: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Non-blocking connect under way; the request goes out once it completes.
    Connecting {
        until: Instant,
    },
    Idle,
    Busy {
        until: Instant,
    },
}

#[derive(Debug)]
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    pub(super) state: State,
    pub(super) req: Option<InFlight>,
    pub(super) answer: Answer,
    /// Whether it has carried an answer before (only then is a retry safe).
    pub(super) reused: bool,
    /// Request bytes the socket did not take yet (rare: the request is small).
    pub(super) unsent: Vec<u8>,
    /// The kernel's receive time of the last bytes read (wall clock, ns).
    pub(super) stamp: Option<u64>,
}

impl Conn {
    /// A connection whose non-blocking connect has started.
    pub(super) fn connecting(stream: TcpStream, until: Instant) -> Self {
        Self::new(stream, State::Connecting { until }, false)
    }

    /// A connection opened before the run, idle. A close found when it is first used is the
    /// target's close of an idle connection, as on a kept-alive one, so it counts as reused:
    /// its request may go again.
    pub(super) fn opened_ahead(stream: TcpStream) -> Self {
        Self::new(stream, State::Idle, true)
    }

    fn new(stream: TcpStream, state: State, reused: bool) -> Self {
        Conn {
            stream,
            state,
            req: None,
            answer: Answer::new(),
            reused,
            unsent: Vec::new(),
            stamp: None,
        }
    }

    /// Whether the dispatch loop must wait on this socket rather than only look at it: a
    /// connect or a partial write is under way.
    pub(super) fn watched(&self) -> bool {
        matches!(self.state, State::Connecting { .. }) || !self.unsent.is_empty()
    }

    /// When its connect or its request times out, if one is under way.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.state {
            State::Connecting { until } | State::Busy { until } => Some(until),
            State::Idle => None,
        }
    }
}

/// How many connections the dispatch loop must watch, kept by comparing a connection's
/// [`Conn::watched`] before and after each change.
#[derive(Debug, Default)]
pub(super) struct Watched(usize);

impl Watched {
    pub(super) fn changed(&mut self, was: bool, is: bool) {
        match (was, is) {
            (false, true) => self.0 += 1,
            (true, false) => self.0 -= 1,
            _ => {}
        }
    }

    pub(super) fn any(&self) -> bool {
        self.0 > 0
    }
}

/// The slots of the connections with a request on the wire, as bits: a wake finds the few
/// it reads directly in a word or two instead of looking at every connection.
#[derive(Debug, Default)]
pub(super) struct BusySlots {
    words: Vec<u64>,
    len: usize,
}

impl BusySlots {
    pub(super) fn set(&mut self, slot: usize, busy: bool) {
        let (word, bit) = (slot / 64, 1u64 << (slot % 64));
        if word >= self.words.len() {
            if !busy {
                return;
            }
            self.words.resize(word + 1, 0);
        }
        let was = self.words[word] & bit != 0;
        if busy && !was {
            self.words[word] |= bit;
            self.len += 1;
        } else if !busy && was {
            self.words[word] &= !bit;
            self.len -= 1;
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The busy slots, lowest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut rest = w;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros() as usize;
                rest &= rest - 1;
                Some(i * 64 + bit)
            })
        })
    }
}

/// A time no connect or request times out before. Request deadlines only grow (each is its
/// send time plus the same timeout), so the earliest one changes only when it ends; keeping
/// this floor instead of the exact minimum spares every wake a look at every connection. A
/// wake at the floor looks at them all and sets it to the exact minimum again.
#[derive(Debug, Default)]
pub(super) struct DeadlineFloor(Option<Instant>);

impl DeadlineFloor {
    /// A connect or a request that times out at `until` started.
    pub(super) fn lower(&mut self, until: Instant) {
        self.0 = Some(self.0.map_or(until, |f| f.min(until)));
    }

    /// Whether something may have timed out by `now`.
    pub(super) fn reached(&self, now: Instant) -> bool {
        self.0.is_some_and(|f| now >= f)
    }

    pub(super) fn get(&self) -> Option<Instant> {
        self.0
    }

    /// The exact earliest deadline, after a look at every connection.
    pub(super) fn reset(&mut self, earliest: Option<Instant>) {
        self.0 = earliest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn busy_slots_count_and_list_what_is_set() {
        let mut b = BusySlots::default();
        b.set(3, false);
        assert_eq!((b.len(), b.iter().count()), (0, 0));
        for s in [130, 3, 64, 3] {
            b.set(s, true);
        }
        assert_eq!(b.len(), 3);
        assert_eq!(b.iter().collect::<Vec<_>>(), [3, 64, 130]);
        b.set(64, false);
        b.set(64, false);
        b.set(1_000, false);
        assert_eq!(b.len(), 2);
        assert_eq!(b.iter().collect::<Vec<_>>(), [3, 130]);
    }

    #[test]
    fn the_deadline_floor_is_never_later_than_a_deadline() {
        let t = Instant::now();
        let mut f = DeadlineFloor::default();
        assert!(!f.reached(t + Duration::from_secs(3600)));
        f.lower(t + Duration::from_secs(10));
        f.lower(t + Duration::from_secs(5));
        f.lower(t + Duration::from_secs(7));
        assert_eq!(f.get(), Some(t + Duration::from_secs(5)));
        assert!(!f.reached(t + Duration::from_secs(4)));
        assert!(f.reached(t + Duration::from_secs(5)));
        f.reset(None);
        assert!(!f.reached(t + Duration::from_secs(3600)));
    }
}
