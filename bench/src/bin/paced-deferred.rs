//! The cheapest paced client that still sends on time, as a second floor beside
//! `paced-floor`: it wakes once per request instead of twice. The thread sleeps to each due
//! time, reads whatever answers have arrived since the last wake (without blocking), then
//! writes the next GET. An answer is timed by the kernel's receive timestamp
//! (`SO_TIMESTAMPNS`), so reading it late does not make it look slow. No runtime, no
//! histogram, a few keep-alive connections so an answer still on its way does not hold up
//! the next send. Prints the number of answers and their mean latency.
//!
//!     paced-deferred 127.0.0.1:5101 RATE SECONDS

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use loadgen::stamp::{self, wall_ns};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use order_metrics_bench::paced::{self, REQUEST};

const CONNECTIONS: usize = 4;

type Result<T> = std::result::Result<T, String>;

struct Conn {
    s: TcpStream,
    /// When the request in flight left (wall clock, ns), if one is in flight.
    sent_ns: Option<u64>,
    buf: Vec<u8>,
    got: usize,
}

fn main() -> ExitCode {
    paced::main("paced-deferred", |addr, rate, secs| {
        run(addr, rate, secs).map(|(n, mean_us)| format!("{n} {mean_us:.1}"))
    })
}

fn run(addr: &str, rate: f64, secs: f64) -> Result<(u64, f64)> {
    let mut conns = (0..CONNECTIONS)
        .map(|_| {
            let s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            s.set_nodelay(true).map_err(|e| e.to_string())?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            stamp::enable(&s).map_err(|e| e.to_string())?;
            Ok(Conn {
                s,
                sent_ns: None,
                buf: vec![0; 16 * 1024],
                got: 0,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let n = (rate * secs) as u64;
    let (mut answers, mut latency_ns) = (0u64, 0u64);
    let start = Instant::now();
    for i in 0..n {
        paced::sleep_until_due(start, i, rate);
        for c in conns.iter_mut().filter(|c| c.sent_ns.is_some()) {
            if let Some(ns) = try_answer(c)? {
                answers += 1;
                latency_ns += ns;
            }
        }
        let free = match conns.iter().position(|c| c.sent_ns.is_none()) {
            Some(k) => k,
            None => {
                // Every connection still waits for its answer: block on the oldest.
                let k = (0..conns.len())
                    .min_by_key(|&k| conns[k].sent_ns)
                    .unwrap_or(0);
                answers += 1;
                latency_ns += wait_answer(&mut conns[k])?;
                k
            }
        };
        let c = &mut conns[free];
        // The kernel's receive stamps are wall-clock time, so send times are too.
        c.sent_ns = Some(wall_ns());
        c.s.write_all(REQUEST).map_err(|e| e.to_string())?;
    }
    for c in conns.iter_mut().filter(|c| c.sent_ns.is_some()) {
        answers += 1;
        latency_ns += wait_answer(c)?;
    }
    Ok((answers, latency_ns as f64 / answers.max(1) as f64 / 1e3))
}

/// Blocks (at most 10 s) until the connection's answer is complete; its latency in ns.
fn wait_answer(c: &mut Conn) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(ns) = try_answer(c)? {
            return Ok(ns);
        }
        if Instant::now() >= deadline {
            return Err("no answer within 10 s".into());
        }
        let mut fds = [PollFd::new(c.s.as_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(100u16)).map_err(|e| e.to_string())?;
    }
}

/// Reads what has arrived without blocking; once the whole answer is in, frees the
/// connection and returns the latency from the send to the kernel's receive time.
fn try_answer(c: &mut Conn) -> Result<Option<u64>> {
    let mut control = stamp::control_buffer();
    loop {
        let got = c.got;
        let (bytes, stamp) = match stamp::recv(&c.s, &mut c.buf[got..], &mut control) {
            Ok(read) => read,
            Err(Errno::EAGAIN) => return Ok(None),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.to_string()),
        };
        if bytes == 0 {
            return Err("the server closed the connection".into());
        }
        c.got += bytes;
        if paced::answer_complete(&c.buf[..c.got])? {
            c.got = 0;
            let sent = c.sent_ns.take().unwrap_or(0);
            return Ok(Some(stamp.unwrap_or_else(wall_ns).saturating_sub(sent)));
        }
        if c.got == c.buf.len() {
            return Err("answer larger than 16 KiB".into());
        }
    }
}
