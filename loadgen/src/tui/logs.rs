//! Log lines kept in memory while the terminal view owns the screen: a line written to
//! standard error then would tear the view, so the logger writes here instead and the view
//! shows the last few. Once the terminal is restored, [`LogBuffer::release`] prints them all
//! to standard error and later lines go straight there. At most [`MAX_LINES`] are kept (the
//! oldest go first), so a chatty run stays bounded.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Lines kept.
pub const MAX_LINES: usize = 500;
/// The longest line kept, in bytes.
const MAX_LINE_BYTES: usize = 2048;

/// The shared buffer; clones share it.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer {
    lines: Arc<Mutex<(VecDeque<String>, u64)>>,
    /// Released: lines go to standard error as they come.
    direct: Arc<AtomicBool>,
}

impl LogBuffer {
    /// Prints the lines kept to standard error, and sends later ones there directly.
    pub fn release(&self) {
        self.direct.store(true, Ordering::Release);
        let (lines, dropped) = self.take();
        let mut err = io::stderr().lock();
        if dropped > 0 {
            let _ = writeln!(err, "({dropped} earlier log lines dropped)");
        }
        for l in lines {
            // Standard error may be closed: nothing here may panic.
            let _ = writeln!(err, "{l}");
        }
    }

    fn push(&self, text: &str) {
        let mut g = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if g.0.len() >= MAX_LINES {
                g.0.pop_front();
                g.1 += 1;
            }
            let mut l = line.to_string();
            if l.len() > MAX_LINE_BYTES {
                let mut cut = MAX_LINE_BYTES;
                while !l.is_char_boundary(cut) {
                    cut -= 1;
                }
                l.truncate(cut);
                l.push('…');
            }
            g.0.push_back(l);
        }
    }

    /// The last `n` lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let g = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        g.0.iter()
            .skip(g.0.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Every line kept, and how many older ones were dropped; the buffer is emptied.
    pub fn take(&self) -> (Vec<String>, u64) {
        let mut g = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = std::mem::take(&mut g.1);
        (g.0.drain(..).collect(), dropped)
    }
}

/// One log event's writer: whole lines go to the buffer, a partial one when it is dropped.
#[derive(Debug)]
pub struct LineWriter(LogBuffer, Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.direct.load(Ordering::Acquire) {
            let _ = io::stderr().write_all(buf);
            return Ok(buf.len());
        }
        self.1.extend_from_slice(buf);
        if let Some(end) = self.1.iter().rposition(|&b| b == b'\n') {
            let whole: Vec<u8> = self.1.drain(..=end).collect();
            self.0.push(&String::from_utf8_lossy(&whole));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.1.is_empty() {
            self.0.push(&String::from_utf8_lossy(&self.1));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self.clone(), Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_bounded() {
        let b = LogBuffer::default();
        for i in 0..(MAX_LINES + 10) {
            let mut w = LineWriter(b.clone(), Vec::new());
            writeln!(w, "line {i}").expect("write");
        }
        let mut w = LineWriter(b.clone(), Vec::new());
        write!(w, "{}", "x".repeat(10_000)).expect("write");
        drop(w);
        assert_eq!(b.last(2)[0], format!("line {}", MAX_LINES + 9));
        assert!(b.last(1)[0].len() <= MAX_LINE_BYTES + 3);
        let (lines, dropped) = b.take();
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(dropped, 11);
        assert!(b.last(5).is_empty());
    }
}
