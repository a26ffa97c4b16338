//! The cheapest honest way to send requests at a fixed rate, as a floor to compare the load
//! generator's CPU per request with (beside wrk2, which is not packaged): one
//! blocking keep-alive connection, the thread sleeps to each due time, writes a GET and
//! blocks until the whole answer is in. No runtime, no timer wheel, no histogram: only the
//! two wake-ups per request that any paced client pays. Prints the number of answers.
//!
//!     paced-floor 127.0.0.1:5101 RATE SECONDS

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const REQUEST: &[u8] = b"GET /makeFoodOrder HTTP/1.1\r\nHost: bench\r\n\r\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = match args.as_slice() {
        [_, addr, rate, secs] => rate
            .parse::<f64>()
            .ok()
            .zip(secs.parse::<f64>().ok())
            .filter(|(r, s)| *r > 0.0 && *s > 0.0)
            .map(|(r, s)| (addr.clone(), r, s)),
        _ => None,
    };
    let Some((addr, rate, secs)) = parsed else {
        eprintln!("usage: paced-floor ADDR RATE SECONDS (RATE and SECONDS above 0)");
        return ExitCode::from(2);
    };
    match run(&addr, rate, secs) {
        Ok(n) => {
            println!("{n}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(addr: &str, rate: f64, secs: f64) -> std::io::Result<u64> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 16 * 1024];
    let n = (rate * secs) as u64;
    let start = Instant::now();
    for i in 0..n {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        s.write_all(REQUEST)?;
        read_answer(&mut s, &mut buf)?;
    }
    Ok(n)
}

/// Reads one answer with a Content-Length body.
fn read_answer(s: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<()> {
    let mut got = 0;
    loop {
        let k = s.read(&mut buf[got..])?;
        if k == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        got += k;
        let Some(end) = buf[..got].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or_else(|| std::io::Error::other("answer without content-length"))?;
        if got >= end + 4 + len {
            return Ok(());
        }
    }
}
