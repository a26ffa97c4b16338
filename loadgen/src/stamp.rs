//! The kernel's receive timestamps (`SO_TIMESTAMPNS`): reading a socket together with the
//! wall-clock time its bytes arrived, and moving that time onto the monotonic clock. An answer
//! read at the next wake-up is then timed by its arrival, not by when it was read. Used by the
//! paced engine and by the benchmark's floor clients.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;

/// Asks the kernel to stamp every read on `socket` with its arrival time.
pub fn enable(socket: &impl AsFd) -> nix::Result<()> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true)
}

/// Room for the control message of one stamped read.
pub fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(TimeSpec)
}

/// Reads what has arrived without blocking: the number of bytes (0 at end of stream) and the
/// kernel's receive time of them (wall clock, ns) when the socket stamps its reads.
/// `EAGAIN` means nothing has arrived.
// nix's `recvmsg` takes the control buffer as a `Vec`.
#[allow(clippy::ptr_arg)]
pub fn recv(
    socket: &impl AsRawFd,
    buf: &mut [u8],
    control: &mut Vec<u8>,
) -> nix::Result<(usize, Option<u64>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let m = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(control),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let stamp = m.cmsgs().ok().and_then(|mut it| {
        it.find_map(|c| match c {
            ControlMessageOwned::ScmTimestampns(t) => {
                Some(t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
            }
            _ => None,
        })
    });
    Ok((m.bytes, stamp))
}

/// Now on the wall clock, in ns since the epoch: the clock the kernel's stamps are on.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// When bytes stamped `stamp` arrived, on the monotonic clock: the stamp's age read off the
/// wall clock now, kept between `sent` and now (a wall clock stepped meanwhile cannot put it
/// outside). Now without a stamp.
pub fn received_at(stamp: Option<u64>, sent: Instant) -> Instant {
    let now = Instant::now();
    let Some(stamp) = stamp else { return now };
    let ago = Duration::from_nanos(wall_ns().saturating_sub(stamp));
    now.checked_sub(ago).unwrap_or(now).max(sent).min(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_read_carries_its_arrival_time() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        enable(&client).expect("SO_TIMESTAMPNS");
        let mut buf = [0u8; 16];
        let mut control = control_buffer();
        assert_eq!(
            recv(&client, &mut buf, &mut control),
            Err(nix::errno::Errno::EAGAIN)
        );
        // The kernel switches stamping on from a work queue after the first socket asks for
        // it: wait until a read comes stamped.
        let mut stamped = false;
        for _ in 0..200 {
            server.write_all(b".").expect("write");
            std::thread::sleep(Duration::from_millis(1));
            let (n, stamp) = recv(&client, &mut buf, &mut control).expect("read");
            assert!(n > 0);
            if stamp.is_some() {
                stamped = true;
                break;
            }
        }
        assert!(stamped, "no read was stamped");

        let before = wall_ns();
        server.write_all(b"hello").expect("write");
        let sent = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let (n, stamp) = recv(&client, &mut buf, &mut control).expect("read");
        assert_eq!(&buf[..n], b"hello");
        let stamp = stamp.expect("a stamp");
        assert!(stamp >= before && stamp <= wall_ns(), "{stamp}");
        // Read 30 ms after it arrived, timed by its arrival.
        let arrived = received_at(Some(stamp), sent);
        assert!(
            arrived.elapsed() >= Duration::from_millis(25),
            "{:?}",
            arrived.elapsed()
        );
        assert!(received_at(None, sent) >= sent);
    }
}
