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
use std::time::Instant;

use order_metrics_bench::paced::{self, REQUEST};

fn main() -> ExitCode {
    paced::main("paced-floor", |addr, rate, secs| {
        run(addr, rate, secs)
            .map(|n| n.to_string())
            .map_err(|e| e.to_string())
    })
}

fn run(addr: &str, rate: f64, secs: f64) -> std::io::Result<u64> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 16 * 1024];
    let n = (rate * secs) as u64;
    let start = Instant::now();
    for i in 0..n {
        paced::sleep_until_due(start, i, rate);
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
        if paced::answer_complete(&buf[..got]).map_err(std::io::Error::other)? {
            return Ok(());
        }
    }
}
