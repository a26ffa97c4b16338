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
        Conn {
            stream,
            state: State::Connecting { until },
            req: None,
            answer: Answer::new(),
            reused: false,
            unsent: Vec::new(),
            stamp: None,
        }
    }

    /// Whether the dispatch loop must wait on this socket rather than only look at it: a
    /// connect or a partial write is under way.
    pub(super) fn watched(&self) -> bool {
        matches!(self.state, State::Connecting { .. }) || !self.unsent.is_empty()
    }

    pub(super) fn is_busy(&self) -> bool {
        matches!(self.state, State::Busy { .. })
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
