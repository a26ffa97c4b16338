//! What the two floor clients (`paced-floor`, `paced-deferred`) share: their command line, the
//! request they send, their pacing, and where an answer with a Content-Length body ends.

use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The GET every floor client sends.
pub const REQUEST: &[u8] = b"GET /makeFoodOrder HTTP/1.1\r\nHost: bench\r\n\r\n";

/// Runs `run(addr, rate, seconds)` from the command line `NAME ADDR RATE SECONDS`; prints
/// what it returns, or the error (exit 1), or the usage (exit 2).
pub fn main(name: &str, run: impl FnOnce(&str, f64, f64) -> Result<String, String>) -> ExitCode {
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
        eprintln!("usage: {name} ADDR RATE SECONDS (RATE and SECONDS above 0)");
        return ExitCode::from(2);
    };
    match run(&addr, rate, secs) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sleeps until request `i` of a run at `rate` per second that began at `start` is due.
pub fn sleep_until_due(start: Instant, i: u64, rate: f64) {
    let due = start + Duration::from_secs_f64(i as f64 / rate);
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

/// Whether `buf` holds a whole answer with a Content-Length body.
pub fn answer_complete(buf: &[u8]) -> Result<bool, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(false);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .ok_or("answer without content-length")?;
    Ok(buf.len() >= end + 4 + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_end_after_their_length() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(answer_complete(whole), Ok(true));
        assert_eq!(answer_complete(&whole[..whole.len() - 1]), Ok(false));
        assert_eq!(answer_complete(b"HTTP/1.1 200 OK\r\n"), Ok(false));
        assert!(answer_complete(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
