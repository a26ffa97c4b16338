//! The engine's connections as a pool: opening them without blocking, handing requests to
//! idle ones (a request sent again goes on a fresh one), closing them, timeouts, the outcome of
//! each request, and the drain. What the sockets say (readiness, reads, writes, failures) is
//! in `events`.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage};
use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};

use super::conn::{BusySlots, Conn, DeadlineFloor, InFlight, State, Watched};
use super::{Target, MAX_SLEEP};
use crate::outcome::OutcomeClass;
use crate::recorder::Recorder;
use crate::stamp;

/// How long a resolved host name is used before it is looked up again, so a Service whose
/// address changes is followed without a lookup (which blocks) per new connection.
const RESOLVE_EVERY: Duration = Duration::from_secs(1);
pub(super) const TIMER_TOKEN: u64 = u64::MAX;
const READ_CHUNK: usize = 16 * 1024;
/// A request this late is behind: it opens a connection only if none was opened this wake.
const BEHIND: Duration = Duration::from_millis(1);
/// Up to this many requests out, a wake reads their connections instead of asking epoll.
pub(super) const DIRECT_READS: usize = 4;

/// The engine's connections and their readiness.
pub(super) struct Pool<'a> {
    pub(super) target: &'a Target,
    pub(super) recorder: &'a Recorder,
    pub(super) epoll: Epoll,
    pub(super) timer: TimerFd,
    pub(super) conns: Vec<Option<Conn>>,
    pub(super) free_slots: Vec<usize>,
    pub(super) idle: Vec<usize>,
    pub(super) open: usize,
    /// Whether this wake has opened a connection (see `may_open`).
    pub(super) opened_this_wake: bool,
    /// Whether the target kept the connection of the last answer open.
    pub(super) reusing: bool,
    /// Connections not yet connected or with unsent bytes: the loop must watch the sockets.
    pub(super) watched: Watched,
    /// Connections with a request on the wire (state `Busy`).
    pub(super) busy: BusySlots,
    /// No connect or request times out before this.
    pub(super) deadlines: DeadlineFloor,
    pub(super) addrs: Option<(Instant, Vec<SocketAddr>)>,
    pub(super) buf: Vec<u8>,
    /// Room for the receive timestamp of one read.
    pub(super) control: Vec<u8>,
    pub(super) events: Vec<EpollEvent>,
    /// Requests to send again on another connection, oldest first.
    pub(super) retries: Vec<InFlight>,
}

impl<'a> Pool<'a> {
    /// Requests wait to be sent again (on a connection none is free for yet).
    pub(super) fn has_retries(&self) -> bool {
        !self.retries.is_empty()
    }

    /// Whether a connect or a partial write is under way: then the loop waits on the sockets.
    pub(super) fn must_watch(&self) -> bool {
        self.watched.any()
    }

    /// The pool, with `warm` (connections opened before the run) idle in it.
    pub(super) fn new(
        target: &'a Target,
        recorder: &'a Recorder,
        warm: Vec<TcpStream>,
    ) -> std::io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        epoll.add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, TIMER_TOKEN))?;
        let mut pool = Pool {
            target,
            recorder,
            epoll,
            timer,
            conns: Vec::new(),
            free_slots: Vec::new(),
            idle: Vec::new(),
            open: 0,
            opened_this_wake: false,
            reusing: true,
            watched: Watched::default(),
            busy: BusySlots::default(),
            deadlines: DeadlineFloor::default(),
            addrs: None,
            buf: vec![0; READ_CHUNK],
            control: stamp::control_buffer(),
            events: vec![EpollEvent::empty(); 256],
            retries: Vec::new(),
        };
        // The idle list is used from its end: the first opened goes out first, as a server
        // that accepts one connection at a time took it first.
        for stream in warm.into_iter().rev() {
            pool.add_idle(stream);
        }
        Ok(pool)
    }

    /// Takes a connected stream in as an idle connection (dropped if epoll refuses it).
    fn add_idle(&mut self, stream: TcpStream) {
        let interest = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        if let Ok(slot) = self.adopt(Conn::opened_ahead(stream), interest) {
            self.idle.push(slot);
        }
    }

    /// Takes `conn` into a free slot, its socket set up and watched for `interest`; its slot.
    fn adopt(&mut self, conn: Conn, interest: EpollFlags) -> Result<usize, ()> {
        let _ = conn.stream.set_nodelay(true);
        let _ = stamp::enable(&conn.stream);
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        if self
            .epoll
            .add(conn.stream.as_fd(), EpollEvent::new(interest, slot as u64))
            .is_err()
        {
            self.free_slots.push(slot);
            return Err(());
        }
        self.watched.changed(false, conn.watched());
        self.conns[slot] = Some(conn);
        self.open += 1;
        Ok(slot)
    }

    /// Hands `req` to an idle connection or a new one; gives it back if there is none for it
    /// now (every allowed connection busy, or none may open yet: see `may_open`).
    pub(super) fn send(&mut self, mut req: InFlight, now: Instant) -> Result<(), InFlight> {
        // A request sent again goes on a new connection when it may: the idle ones may have
        // been closed by the server as the one it failed on was.
        let fresh = req.retried && self.may_open(&req, now);
        if !fresh && self.idle.is_empty() && self.open > 0 && self.reusing {
            // An answer that has already arrived frees a connection for a fraction of what
            // opening one costs (and of what the server pays to accept it); without this
            // look, a generator that fell behind opens a connection per due request.
            self.look();
        }
        let reuse = if fresh { None } else { self.idle.pop() };
        let slot = match reuse {
            Some(slot) => slot,
            None if self.may_open(&req, now) => match self.connect(now) {
                Ok(slot) => slot,
                Err(()) => {
                    if !req.retried {
                        self.recorder
                            .sent(req.t, now.saturating_duration_since(req.at));
                    }
                    self.finish(req, OutcomeClass::ConnectError, now);
                    return Ok(());
                }
            },
            None => return Err(req),
        };
        let Some(conn) = self.conns[slot].as_mut() else {
            return Err(req);
        };
        if !req.retried {
            req.sent = now;
            self.recorder
                .sent(req.t, now.saturating_duration_since(req.at));
        }
        conn.req = Some(req);
        if conn.state == State::Idle {
            let until = req.sent + self.target.timeout;
            conn.state = State::Busy { until };
            self.busy.set(slot, true);
            self.deadlines.lower(until);
            self.write(slot, now);
        }
        Ok(())
    }

    /// Whether a connection may be opened for `req`: within `--max-in-flight`, and, once
    /// the request is more than `BEHIND` late and the target keeps its connections, only one
    /// a wake. A generator that fell behind (a stall of its own or of the target) would
    /// otherwise open a connection for nearly every request due meanwhile, each costing it
    /// several sends and the target an accept before it can answer again; the held requests
    /// go as answers free connections. A target that needs more connections still gets one
    /// a wake; one that closes each connection after its answer frees none, so it is not
    /// rationed.
    fn may_open(&self, req: &InFlight, now: Instant) -> bool {
        let on_time = now.saturating_duration_since(req.at) <= BEHIND;
        self.open < self.target.max_conns && (on_time || !self.reusing || !self.opened_this_wake)
    }

    /// Whether the requests out are few enough that waiting on their sockets costs little.
    pub(super) fn few_out(&self) -> bool {
        self.busy.len() <= DIRECT_READS
    }

    /// A new wake of the engine: a request that is behind may open a connection again.
    pub(super) fn wake_began(&mut self) {
        self.opened_this_wake = false;
    }

    pub(super) fn send_retries(&mut self, now: Instant) {
        while let Some(r) = self.retries.pop() {
            if let Err(r) = self.send(r, now) {
                self.retries.push(r);
                break;
            }
        }
    }

    /// Opens a connection without blocking; its slot.
    fn connect(&mut self, now: Instant) -> Result<usize, ()> {
        let addrs = self.resolve(now)?;
        let mut last = None;
        for addr in addrs {
            let family = match addr {
                SocketAddr::V4(_) => AddressFamily::Inet,
                SocketAddr::V6(_) => AddressFamily::Inet6,
            };
            let Ok(fd) = socket::socket(
                family,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                None,
            ) else {
                continue;
            };
            match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
                Ok(()) | Err(Errno::EINPROGRESS) => {
                    last = Some(TcpStream::from(fd));
                    break;
                }
                Err(_) => continue,
            }
        }
        let stream = last.ok_or(())?;
        let until = now + self.target.connect_timeout;
        let interest = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP;
        let slot = self.adopt(Conn::connecting(stream, until), interest)?;
        self.deadlines.lower(until);
        self.opened_this_wake = true;
        Ok(slot)
    }

    /// The target's addresses: an IP at once, a name from a lookup at most `RESOLVE_EVERY` old.
    fn resolve(&mut self, now: Instant) -> Result<Vec<SocketAddr>, ()> {
        let port = self.target.port;
        match &self.target.host {
            url::Host::Ipv4(a) => Ok(vec![SocketAddr::from((*a, port))]),
            url::Host::Ipv6(a) => Ok(vec![SocketAddr::from((*a, port))]),
            url::Host::Domain(name) => {
                if let Some((at, addrs)) = &self.addrs {
                    if now.duration_since(*at) < RESOLVE_EVERY && !addrs.is_empty() {
                        return Ok(addrs.clone());
                    }
                }
                let addrs: Vec<SocketAddr> = (name.as_str(), port)
                    .to_socket_addrs()
                    .map_err(|_| ())?
                    .collect();
                self.addrs = Some((now, addrs.clone()));
                if addrs.is_empty() {
                    Err(())
                } else {
                    Ok(addrs)
                }
            }
        }
    }

    pub(super) fn close(&mut self, slot: usize) {
        if let Some(conn) = self.conns[slot].take() {
            let _ = self.epoll.delete(conn.stream.as_fd());
            self.watched.changed(conn.watched(), false);
            self.busy.set(slot, false);
            if conn.state == State::Idle {
                self.idle.retain(|&s| s != slot);
            }
            self.open -= 1;
            self.free_slots.push(slot);
        }
    }

    /// Records the outcome of a request that ended at `done`.
    pub(super) fn finish(&self, req: InFlight, class: OutcomeClass, done: Instant) {
        self.recorder.completed(
            req.t,
            class,
            done.saturating_duration_since(req.at),
            done.saturating_duration_since(req.sent),
        );
    }

    /// Requests past their timeout fail as timeouts (connects past theirs as connect
    /// errors), and their connections close. Looks at the connections only once the
    /// deadline floor is reached.
    pub(super) fn expire(&mut self, now: Instant) {
        if !self.deadlines.reached(now) {
            return;
        }
        for slot in 0..self.conns.len() {
            let Some(conn) = self.conns[slot].as_mut() else {
                continue;
            };
            let class = match conn.state {
                State::Connecting { until } if now >= until => OutcomeClass::ConnectError,
                State::Busy { until } if now >= until => OutcomeClass::Timeout,
                _ => continue,
            };
            let req = conn.req.take();
            self.close(slot);
            if let Some(r) = req {
                self.finish(r, class, now);
            }
        }
        let earliest = self.conns.iter().flatten().filter_map(Conn::deadline).min();
        self.deadlines.reset(earliest);
    }

    /// When the next connect or request may time out (possibly earlier: a floor).
    pub(super) fn earliest_deadline(&self) -> Option<Instant> {
        self.deadlines.get()
    }

    /// Connections with a request on them, connecting ones included.
    fn with_request(&self) -> usize {
        self.conns
            .iter()
            .flatten()
            .filter(|c| c.req.is_some())
            .count()
    }

    /// Waits for the answers still out, at most `limit`; what is left stays in flight.
    pub(super) fn drain(&mut self, limit: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let now = Instant::now();
            self.wake_began();
            self.expire(now);
            self.send_retries(now);
            if (self.with_request() == 0 && self.retries.is_empty()) || now >= deadline {
                break;
            }
            let mut wake = deadline.min(now + MAX_SLEEP);
            if let Some(d) = self.earliest_deadline() {
                wake = wake.min(d);
            }
            self.wait(Some(wake))?;
        }
        // Unsent retries never left: they count as failed, not as in flight forever.
        let now = Instant::now();
        for r in std::mem::take(&mut self.retries) {
            self.finish(r, OutcomeClass::Other, now);
        }
        Ok(())
    }
}
