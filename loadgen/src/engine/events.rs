//! What the engine's sockets say, for the pool: waiting on them (epoll, with a timerfd for the
//! deadline) or, with few requests out, reading them directly; a connect that settled; request
//! bytes written as the socket takes them; answers read and framed, timed by the kernel's
//! receive stamps; and a broken connection, whose request goes again once when that is safe.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::socket::{self, sockopt};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};

use super::conn::State;
use super::pool::{Pool, DIRECT_READS, TIMER_TOKEN};
use crate::outcome::OutcomeClass;
use crate::stamp;

impl Pool<'_> {
    /// Writes the request of a connected connection; what the socket does not take waits
    /// for it to be writable.
    pub(super) fn write(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.conns[slot].as_mut() else {
            return;
        };
        let Some(req) = conn.req else { return };
        let was = conn.watched();
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
            Err(_) => return self.fail(slot, now),
        }
        self.watched.changed(was, conn.watched());
    }

    /// Handles every socket that is ready now, without waiting; a failed look is left to
    /// the next wait, which reports it.
    pub(super) fn look(&mut self) {
        let _ = self.wait(None);
    }

    /// Sleeps until `until` or a socket needs attention (`None`: only looks), then handles
    /// every socket that is ready.
    pub(super) fn wait(&mut self, until: Option<Instant>) -> std::io::Result<()> {
        if until.is_none() && !self.watched.any() && self.look_directly() {
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
        if self.busy.len() > DIRECT_READS {
            return false;
        }
        let mut busy = [0usize; DIRECT_READS];
        let mut n = 0;
        for (b, slot) in busy.iter_mut().zip(self.busy.iter()) {
            *b = slot;
            n += 1;
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
        let was = conn.watched();
        conn.state = match conn.req {
            Some(r) => {
                let until = r.sent + self.target.timeout;
                self.busy.set(slot, true);
                self.deadlines.lower(until);
                State::Busy { until }
            }
            None => State::Idle,
        };
        self.watched.changed(was, conn.watched());
        match conn.req {
            Some(_) => self.write(slot, now),
            None => self.idle.push(slot),
        }
    }

    /// Reads what has arrived; on a complete answer records it, stamped with the kernel's
    /// receive time of its last bytes.
    fn read(&mut self, slot: usize) {
        loop {
            let Some(conn) = self.conns[slot].as_mut() else {
                return;
            };
            let n = match stamp::recv(&conn.stream, &mut self.buf, &mut self.control) {
                Ok((bytes, stamp)) => {
                    if bytes > 0 {
                        conn.stamp = stamp;
                    }
                    bytes
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
                    self.reusing = reusable;
                    let done = stamp::received_at(conn.stamp, req.sent);
                    conn.req = None;
                    conn.reused = true;
                    if reusable {
                        conn.answer.reset();
                        conn.state = State::Idle;
                        self.busy.set(slot, false);
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
}
