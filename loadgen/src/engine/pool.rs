//! The engine's connections: opening them without blocking, writing requests, reading and
//! framing answers with the kernel's receive stamps, timeouts, one retry on a fresh
//! connection after a kept-alive one turned out closed, and waiting on the sockets (epoll
//! with a timerfd for the deadline) when the dispatch loop must.

use std::io::{IoSliceMut, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{
    self, recvmsg, setsockopt, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, SockaddrStorage,
};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use order_server::contract::OrderType;

use super::{Target, MAX_SLEEP};
use crate::answer::Answer;
use crate::client::OutcomeClass;
use crate::recorder::Recorder;

/// How long a resolved host name is used before it is looked up again, so a Service whose
/// address changes is followed without a lookup (which blocks) per new connection.
const RESOLVE_EVERY: Duration = Duration::from_secs(1);
const TIMER_TOKEN: u64 = u64::MAX;
const READ_CHUNK: usize = 16 * 1024;
/// Up to this many requests out, a wake reads their connections instead of asking epoll.
const DIRECT_READS: usize = 4;

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
enum State {
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
struct Conn {
    stream: TcpStream,
    state: State,
    req: Option<InFlight>,
    answer: Answer,
    /// Whether it has carried an answer before (only then is a retry safe).
    reused: bool,
    /// Request bytes the socket did not take yet (rare: the request is small).
    unsent: Vec<u8>,
    /// The kernel's receive time of the last bytes read (wall clock, ns).
    stamp: Option<u64>,
}

/// The engine's connections and their readiness.
pub(super) struct Pool<'a> {
    target: &'a Target,
    recorder: &'a Recorder,
    epoll: Epoll,
    timer: TimerFd,
    conns: Vec<Option<Conn>>,
    free_slots: Vec<usize>,
    idle: Vec<usize>,
    open: usize,
    /// Connections not yet connected or with unsent bytes: the loop must watch the sockets.
    watching: usize,
    addrs: Option<(Instant, Vec<SocketAddr>)>,
    buf: Vec<u8>,
    /// Room for the receive timestamp of one read.
    cmsg: Vec<u8>,
    events: Vec<EpollEvent>,
    /// Requests to send again on another connection, oldest first.
    retries: Vec<InFlight>,
}

impl<'a> Pool<'a> {
    /// Requests wait to be sent again (on a connection none is free for yet).
    pub(super) fn has_retries(&self) -> bool {
        !self.retries.is_empty()
    }

    /// Whether a connect or a partial write is under way: then the loop waits on the sockets.
    pub(super) fn must_watch(&self) -> bool {
        self.watching > 0
    }

    pub(super) fn new(target: &'a Target, recorder: &'a Recorder) -> std::io::Result<Self> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        epoll.add(&timer, EpollEvent::new(EpollFlags::EPOLLIN, TIMER_TOKEN))?;
        Ok(Pool {
            target,
            recorder,
            epoll,
            timer,
            conns: Vec::new(),
            free_slots: Vec::new(),
            idle: Vec::new(),
            open: 0,
            watching: 0,
            addrs: None,
            buf: vec![0; READ_CHUNK],
            cmsg: nix::cmsg_space!(TimeSpec),
            events: vec![EpollEvent::empty(); 256],
            retries: Vec::new(),
        })
    }

    /// Hands `req` to an idle connection or a new one; gives it back if every allowed
    /// connection is busy.
    pub(super) fn send(&mut self, mut req: InFlight, now: Instant) -> Result<(), InFlight> {
        // A request sent again goes on a new connection when it may: the idle ones may have
        // been closed by the server as the one it failed on was.
        let fresh = req.retried && self.open < self.target.max_conns;
        let reuse = if fresh { None } else { self.idle.pop() };
        let slot = match reuse {
            Some(slot) => slot,
            None if self.open < self.target.max_conns => match self.connect(now) {
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
            conn.state = State::Busy {
                until: req.sent + self.target.timeout,
            };
            self.write(slot, now);
        }
        Ok(())
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
        let _ = stream.set_nodelay(true);
        let _ = setsockopt(&stream, sockopt::ReceiveTimestampns, &true);
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        let interest = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP;
        if self
            .epoll
            .add(stream.as_fd(), EpollEvent::new(interest, slot as u64))
            .is_err()
        {
            self.free_slots.push(slot);
            return Err(());
        }
        self.conns[slot] = Some(Conn {
            stream,
            state: State::Connecting {
                until: now + self.target.connect_timeout,
            },
            req: None,
            answer: Answer::new(),
            reused: false,
            unsent: Vec::new(),
            stamp: None,
        });
        self.open += 1;
        self.watching += 1;
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

    /// Writes the request of a connected connection; what the socket does not take waits
    /// for it to be writable.
    fn write(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        let Some(req) = conn.req else { return };
        let bytes = if conn.unsent.is_empty() {
            &self.target.requests[req.t.index()][..]
        } else {
            &conn.unsent[..]
        };
        let result = match (&conn.stream).write(bytes) {
            // A full send buffer took nothing: the same as a partial write of no bytes.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            other => other,
        };
        match result {
            Ok(n) if n == bytes.len() => {
                if !conn.unsent.is_empty() {
                    conn.unsent.clear();
                    self.watching -= 1;
                    let _ = self.epoll.modify(
                        conn.stream.as_fd(),
                        &mut EpollEvent::new(
                            EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP,
                            slot as u64,
                        ),
                    );
                }
            }
            Ok(n) => {
                let rest = bytes[n..].to_vec();
                if conn.unsent.is_empty() {
                    self.watching += 1;
                    let _ = self.epoll.modify(
                        conn.stream.as_fd(),
                        &mut EpollEvent::new(
                            EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP,
                            slot as u64,
                        ),
                    );
                }
                conn.unsent = rest;
            }
            Err(_) => self.fail(slot, now),
        }
    }

    /// Sleeps until `until` or a socket needs attention (`None`: only looks), then handles
    /// every socket that is ready.
    pub(super) fn wait(&mut self, until: Option<Instant>) -> std::io::Result<()> {
        if until.is_none() && self.watching == 0 && self.look_directly() {
            return Ok(());
        }
        let timeout = match until {
            None => EpollTimeout::ZERO,
            Some(at) => match at.checked_duration_since(Instant::now()) {
                None => EpollTimeout::ZERO,
                Some(left) => {
                    self.timer.set(
                        Expiration::OneShot(TimeSpec::from_duration(
                            left.max(Duration::from_micros(1)),
                        )),
                        TimerSetTimeFlags::empty(),
                    )?;
                    EpollTimeout::NONE
                }
            },
        };
        let n = match self.epoll.wait(&mut self.events, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(());
        }
        let now = Instant::now();
        for i in 0..n {
            let ev = self.events[i];
            let token = ev.data();
            if token == TIMER_TOKEN {
                continue; // arming again clears it
            }
            self.ready(token as usize, ev.events(), now);
        }
        Ok(())
    }

    /// With few requests out, reading their connections directly is cheaper than asking
    /// epoll which are ready: at a steady rate a wake then costs one read instead of two
    /// system calls. The idle connection that goes out next is read too (unless one of
    /// those reads just freed a fresher one), so one the server closed is dropped before it
    /// is used; an older idle one found closed when used sends its request again on a new
    /// connection (see `fail`). Whether it handled the look.
    fn look_directly(&mut self) -> bool {
        let mut busy = [0usize; DIRECT_READS];
        let mut n = 0;
        for (slot, c) in self.conns.iter().enumerate() {
            if c.as_ref()
                .is_some_and(|c| matches!(c.state, State::Busy { .. }))
            {
                if n == DIRECT_READS {
                    return false;
                }
                busy[n] = slot;
                n += 1;
            }
        }
        let next_out = self.idle.last().copied();
        for &slot in &busy[..n] {
            self.read(slot);
        }
        if let Some(top) = next_out.filter(|t| self.idle.last() == Some(t)) {
            self.read(top);
        }
        true
    }

    fn ready(&mut self, slot: usize, events: EpollFlags, now: Instant) {
        let Some(conn) = self.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if matches!(conn.state, State::Connecting { .. }) {
            let settled = EpollFlags::EPOLLOUT | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP;
            if events.intersects(settled) {
                self.connected(slot, now);
            }
            return;
        }
        if events.contains(EpollFlags::EPOLLOUT) && !conn.unsent.is_empty() {
            self.write(slot, now);
        }
        let readable = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLHUP
            | EpollFlags::EPOLLERR;
        if events.intersects(readable) {
            self.read(slot);
        }
    }

    /// A non-blocking connect settled: on success the waiting request goes out.
    fn connected(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        if !matches!(
            socket::getsockopt(&conn.stream, sockopt::SocketError),
            Ok(0)
        ) {
            let req = conn.req.take();
            self.close(slot);
            if let Some(r) = req {
                self.finish(r, OutcomeClass::ConnectError, now);
            }
            return;
        }
        let _ = self.epoll.modify(
            conn.stream.as_fd(),
            &mut EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, slot as u64),
        );
        match conn.req {
            Some(r) => {
                conn.state = State::Busy {
                    until: r.sent + self.target.timeout,
                };
                self.watching -= 1;
                self.write(slot, now);
            }
            None => {
                conn.state = State::Idle;
                self.watching -= 1;
                self.idle.push(slot);
            }
        }
    }

    /// Reads what has arrived; on a complete answer records it, stamped with the kernel's
    /// receive time of its last bytes.
    fn read(&mut self, slot: usize) {
        loop {
            let Some(conn) = self.conns[slot].as_mut() else {
                return;
            };
            let mut iov = [IoSliceMut::new(&mut self.buf)];
            let got = recvmsg::<()>(
                conn.stream.as_raw_fd(),
                &mut iov,
                Some(&mut self.cmsg),
                MsgFlags::MSG_DONTWAIT,
            );
            let n = match got {
                Ok(m) => {
                    let stamp = m.cmsgs().ok().and_then(|mut it| {
                        it.find_map(|c| match c {
                            ControlMessageOwned::ScmTimestampns(t) => {
                                Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
                            }
                            _ => None,
                        })
                    });
                    if m.bytes > 0 {
                        conn.stamp = stamp;
                    }
                    m.bytes
                }
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    self.fail(slot, Instant::now());
                    return;
                }
            };
            let Some(req) = conn.req else {
                // An idle connection: the server closed it (or sent what nobody asked for).
                self.close(slot);
                return;
            };
            let framed = if n == 0 {
                conn.answer.eof().map(|()| true)
            } else {
                conn.answer.feed(&self.buf[..n])
            };
            match framed {
                Ok(false) if n == self.buf.len() => continue,
                Ok(false) => return,
                Ok(true) => {
                    let status = conn.answer.status();
                    let reusable = n > 0 && conn.answer.reusable();
                    let done = received_at(conn.stamp, req.sent);
                    conn.req = None;
                    conn.reused = true;
                    if reusable {
                        conn.answer.reset();
                        conn.state = State::Idle;
                        self.idle.push(slot);
                    } else {
                        self.close(slot);
                    }
                    self.finish(req, OutcomeClass::from_status(status), done);
                    return;
                }
                // Closed before anything of the answer came: maybe a kept-alive connection
                // the server had closed; `fail` decides whether the request goes again.
                Err(_) if n == 0 => {
                    self.fail(slot, Instant::now());
                    return;
                }
                Err(_) => {
                    let req = conn.req.take();
                    self.close(slot);
                    if let Some(r) = req {
                        self.finish(r, OutcomeClass::Other, Instant::now());
                    }
                    return;
                }
            }
        }
    }

    /// A connection broke. Its request goes again once on another connection if nothing of
    /// the answer had arrived and the connection had been kept alive from an earlier answer
    /// (the server closed it between requests, as servers may); otherwise it failed.
    fn fail(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        let req = conn.req.take();
        let retry = conn.reused && !conn.answer.started();
        self.close(slot);
        if let Some(mut r) = req {
            if retry && !r.retried {
                r.retried = true;
                self.retries.push(r);
            } else {
                self.finish(r, OutcomeClass::Other, now);
            }
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(conn) = self.conns[slot].take() {
            let _ = self.epoll.delete(conn.stream.as_fd());
            if matches!(conn.state, State::Connecting { .. }) || !conn.unsent.is_empty() {
                self.watching -= 1;
            }
            if conn.state == State::Idle {
                self.idle.retain(|&s| s != slot);
            }
            self.open -= 1;
            self.free_slots.push(slot);
        }
    }

    /// Records the outcome of a request that ended at `done`.
    fn finish(&self, req: InFlight, class: OutcomeClass, done: Instant) {
        self.recorder.completed(
            req.t,
            class,
            done.saturating_duration_since(req.at),
            done.saturating_duration_since(req.sent),
        );
    }

    /// Requests past their timeout fail as timeouts (connects past theirs as connect
    /// errors), and their connections close.
    pub(super) fn expire(&mut self, now: Instant) {
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
    }

    pub(super) fn earliest_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .flatten()
            .filter_map(|c| match c.state {
                State::Connecting { until } | State::Busy { until } => Some(until),
                State::Idle => None,
            })
            .min()
    }

    fn busy(&self) -> usize {
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
            self.expire(now);
            self.send_retries(now);
            if (self.busy() == 0 && self.retries.is_empty()) || now >= deadline {
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

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// When the last bytes of an answer arrived: the kernel's wall-clock stamp moved onto the
/// monotonic clock by reading both clocks now, kept between the send and now (a wall clock
/// stepped meanwhile cannot put it outside).
fn received_at(stamp: Option<u64>, sent: Instant) -> Instant {
    let now = Instant::now();
    let Some(stamp) = stamp else { return now };
    let ago = Duration::from_nanos(wall_ns().saturating_sub(stamp));
    now.checked_sub(ago).unwrap_or(now).max(sent).min(now)
}
