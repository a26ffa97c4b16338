//! Incremental framing of HTTP/1.1 answers for the paced engine: where an answer ends
//! (Content-Length, chunked, or the connection closing; none for 1xx, 204 and 304), its
//! status, and whether the connection may carry the next request. Bodies are counted and
//! dropped, never kept: a load generator needs their end, not their bytes.

/// Longest answer head accepted; a longer one is a broken or hostile target.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Head,
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailer,
    UntilClose,
    Done,
}

/// Why an answer could not be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("answer head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("the connection closed before the answer was complete")]
    Truncated,
}

/// One answer being read. `feed` takes bytes as they arrive and says when the answer is
/// complete; `eof` says whether a close completes it.
#[derive(Debug)]
pub struct Answer {
    phase: Phase,
    buf: Vec<u8>,
    status: u16,
    keep_alive: bool,
    /// Bytes of this answer seen so far (a retry is only safe before the first one).
    seen: u64,
}

impl Default for Answer {
    fn default() -> Self {
        Self::new()
    }
}

impl Answer {
    pub fn new() -> Self {
        Answer {
            phase: Phase::Head,
            buf: Vec::new(),
            status: 0,
            keep_alive: true,
            seen: 0,
        }
    }

    /// Ready for the next answer on the same connection.
    pub fn reset(&mut self) {
        self.phase = Phase::Head;
        self.buf.clear();
        self.status = 0;
        self.keep_alive = true;
        self.seen = 0;
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether any byte of the answer has arrived.
    pub fn started(&self) -> bool {
        self.seen > 0
    }

    /// Whether the connection can carry another request after this (complete) answer:
    /// keep-alive, and nothing arrived beyond the answer's end.
    pub fn reusable(&self) -> bool {
        self.keep_alive && self.buf.is_empty()
    }

    /// Takes newly arrived bytes; `Ok(true)` once the answer is complete.
    pub fn feed(&mut self, data: &[u8]) -> Result<bool, FrameError> {
        self.seen += data.len() as u64;
        self.buf.extend_from_slice(data);
        let mut at = 0;
        let done = self.advance(&mut at);
        self.buf.drain(..at);
        done
    }

    /// The peer closed the connection: whether that ends the answer.
    pub fn eof(&mut self) -> Result<(), FrameError> {
        match self.phase {
            Phase::UntilClose => {
                self.phase = Phase::Done;
                self.keep_alive = false;
                Ok(())
            }
            Phase::Done => Ok(()),
            _ => Err(FrameError::Truncated),
        }
    }

    fn advance(&mut self, at: &mut usize) -> Result<bool, FrameError> {
        loop {
            let rest = &self.buf[*at..];
            match self.phase {
                Phase::Done => return Ok(true),
                Phase::Head => {
                    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                    let mut resp = httparse::Response::new(&mut headers);
                    match resp.parse(rest) {
                        Ok(httparse::Status::Complete(n)) => {
                            *at += n;
                            let status = resp.code.unwrap_or(0);
                            let version = resp.version.unwrap_or(1);
                            let (phase, keep_alive) = framing(status, version, resp.headers)?;
                            self.phase = phase;
                            self.keep_alive = keep_alive;
                            self.status = status;
                        }
                        Ok(httparse::Status::Partial) if rest.len() > MAX_HEAD => {
                            return Err(FrameError::HeadTooLong);
                        }
                        Ok(httparse::Status::Partial) => return Ok(false),
                        Err(e) => return Err(FrameError::Malformed(e.to_string())),
                    }
                }
                Phase::Length(left) => {
                    let Some(more) = take(left, rest, at) else {
                        return Ok(false);
                    };
                    self.phase = match more {
                        0 => Phase::Done,
                        more => Phase::Length(more),
                    };
                }
                Phase::ChunkSize => match httparse::parse_chunk_size(rest) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        *at += n;
                        self.phase = match size {
                            0 => Phase::Trailer,
                            s => Phase::ChunkData(s),
                        };
                    }
                    Ok(httparse::Status::Partial) => return Ok(false),
                    Err(_) => return Err(FrameError::Malformed("bad chunk size".into())),
                },
                Phase::ChunkData(left) => {
                    let Some(more) = take(left, rest, at) else {
                        return Ok(false);
                    };
                    self.phase = match more {
                        0 => Phase::ChunkEnd,
                        more => Phase::ChunkData(more),
                    };
                }
                Phase::ChunkEnd => {
                    if rest.len() < 2 {
                        return Ok(false);
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(FrameError::Malformed("chunk without CRLF".into()));
                    }
                    *at += 2;
                    self.phase = Phase::ChunkSize;
                }
                Phase::Trailer => {
                    let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
                        if rest.len() > MAX_HEAD {
                            return Err(FrameError::HeadTooLong);
                        }
                        return Ok(false);
                    };
                    *at += end + 2;
                    if end == 0 {
                        self.phase = Phase::Done;
                    }
                }
                Phase::UntilClose => {
                    *at += rest.len();
                    return Ok(false);
                }
            }
        }
    }
}

/// Consumes up to `left` body bytes of `rest` (moving `at` past them); how many are still to
/// come, or `None` when nothing had arrived to consume.
fn take(left: u64, rest: &[u8], at: &mut usize) -> Option<u64> {
    let k = left.min(rest.len() as u64);
    if k == 0 {
        return None;
    }
    *at += k as usize;
    Some(left - k)
}

/// Where the body ends (RFC 9112, section 6.3) and whether the connection stays open.
fn framing(
    status: u16,
    version: u8,
    headers: &[httparse::Header<'_>],
) -> Result<(Phase, bool), FrameError> {
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut close = version == 0;
    for h in headers {
        let text = || {
            std::str::from_utf8(h.value)
                .map_err(|_| FrameError::Malformed(format!("{} is not text", h.name)))
        };
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = text()?;
            let n = v.trim().parse::<u64>().map_err(|_| {
                FrameError::Malformed(format!("content-length {v:?} is not a number"))
            })?;
            if length.is_some_and(|l| l != n) {
                return Err(FrameError::Malformed("two content-lengths".into()));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = text()?.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in text()?.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && version == 0 {
                    close = false;
                }
            }
        }
    }
    let keep_alive = !close;
    Ok(match (status, chunked, length) {
        // An interim answer: the real one follows on the same connection.
        (100..=199, _, _) if status != 101 => (Phase::Head, keep_alive),
        (101, _, _) => return Err(FrameError::Malformed("unexpected 101".into())),
        (204 | 304, _, _) => (Phase::Done, keep_alive),
        (_, Some(true), _) => (Phase::ChunkSize, keep_alive),
        // Not chunked, or no length: the body ends when the connection does.
        (_, Some(false), _) | (_, None, None) => (Phase::UntilClose, false),
        (_, None, Some(0)) => (Phase::Done, keep_alive),
        (_, None, Some(n)) => (Phase::Length(n), keep_alive),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `raw` in pieces of `step` bytes; the status once complete.
    fn frame(raw: &[u8], step: usize) -> Result<(bool, u16, bool), FrameError> {
        let mut a = Answer::new();
        for piece in raw.chunks(step) {
            if a.feed(piece)? {
                return Ok((true, a.status(), a.reusable()));
            }
        }
        Ok((false, a.status(), a.reusable()))
    }

    #[test]
    fn content_length_in_any_pieces() {
        let raw = b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello";
        for step in [1, 2, 7, raw.len()] {
            assert_eq!(frame(raw, step), Ok((true, 201, true)), "step {step}");
        }
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nhello";
        assert_eq!(frame(short, 3), Ok((false, 200, true)));
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                    5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: y\r\n\r\n";
        for step in [1, 3, raw.len()] {
            assert_eq!(frame(raw, step), Ok((true, 200, true)), "step {step}");
        }
        let mut bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX".to_vec();
        bad.extend_from_slice(b"\r\n");
        assert!(matches!(frame(&bad, 4), Err(FrameError::Malformed(_))));
    }

    #[test]
    fn bodiless_interim_and_close_delimited() {
        assert_eq!(
            frame(b"HTTP/1.1 204 No Content\r\n\r\n", 4),
            Ok((true, 204, true))
        );
        assert_eq!(
            frame(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
                5
            ),
            Ok((true, 503, true))
        );
        let mut a = Answer::new();
        assert_eq!(a.feed(b"HTTP/1.1 200 OK\r\n\r\nuntil the end"), Ok(false));
        assert_eq!(a.eof(), Ok(()));
        assert!(
            !a.reusable(),
            "a close-delimited answer ends its connection"
        );
    }

    #[test]
    fn connection_close_and_http_1_0() {
        let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(frame(close, 64), Ok((true, 200, false)));
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(frame(old, 64), Ok((true, 200, false)));
        let kept = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(frame(kept, 64), Ok((true, 200, true)));
        let extra = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1";
        assert_eq!(
            frame(extra, 64),
            Ok((true, 200, false)),
            "bytes past the end"
        );
    }

    #[test]
    fn broken_answers_are_errors() {
        let mut a = Answer::new();
        assert_eq!(
            a.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort"),
            Ok(false)
        );
        assert!(a.started());
        assert_eq!(a.eof(), Err(FrameError::Truncated));
        assert!(matches!(
            frame(b"NOT HTTP\r\n\r\n", 64),
            Err(FrameError::Malformed(_))
        ));
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(frame(two, 64), Err(FrameError::Malformed(_))));
        let huge = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; MAX_HEAD + 10]].concat();
        assert_eq!(frame(&huge, 4096), Err(FrameError::HeadTooLong));
        let mut fresh = Answer::new();
        assert!(!fresh.started());
        assert_eq!(fresh.eof(), Err(FrameError::Truncated));
    }
}
