//! The connections the engine's first requests go out on, opened before the run's clock
//! starts, as wrk and oha open theirs: opened as the first requests fall due, each would cost
//! a connect while no answer is back yet to free one, and at high rates the generator would
//! start behind with hundreds for the target to accept at once. Enough for the first
//! millisecond of requests are opened concurrently, and the target is given a moment to
//! accept them.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::Target;

/// How many requests' worth of connections are opened ahead: the first millisecond's.
const WARM_SPAN: Duration = Duration::from_millis(1);
/// The most opened ahead, whatever the rate and `--max-in-flight`: a burst of opening
/// handshakes past the target's accept backlog waits a second for SYN retransmits, and a
/// first millisecond rarely needs more; beyond these the pool grows as requests need.
const WARM_MAX: usize = 64;
/// How long the connects may take together (the run's start waits for them); what is not
/// open by then opens as needed.
const CONNECT_WAIT: Duration = Duration::from_millis(250);
/// The target's moment to accept what was opened.
const ACCEPT_GRACE: Duration = Duration::from_millis(10);

/// A target and the connections opened to it before the run.
#[derive(Debug)]
pub struct Ready {
    pub(super) target: Target,
    pub(super) warm: Vec<TcpStream>,
}

impl Ready {
    /// Opens connections for the first millisecond at `first_rate` requests a second (at
    /// least one, at most the target's connection cap), on the first of the target's
    /// addresses that takes them. A target that cannot be reached gets none: the run's
    /// requests then count their connect errors as usual.
    pub async fn open(target: Target, first_rate: f64) -> Ready {
        let want = (first_rate.max(0.0) * WARM_SPAN.as_secs_f64()).ceil() as usize;
        let want = want.min(WARM_MAX).min(target.max_conns).max(1);
        let mut warm = Vec::new();
        for addr in addresses(&target).await {
            warm = connect_all(addr, want).await;
            if !warm.is_empty() {
                break;
            }
        }
        if !warm.is_empty() {
            tokio::time::sleep(ACCEPT_GRACE).await;
        }
        Ready { target, warm }
    }
}

async fn addresses(target: &Target) -> Vec<SocketAddr> {
    match &target.host {
        url::Host::Ipv4(a) => vec![SocketAddr::from((*a, target.port))],
        url::Host::Ipv6(a) => vec![SocketAddr::from((*a, target.port))],
        url::Host::Domain(name) => tokio::net::lookup_host((name.as_str(), target.port))
            .await
            .map(Iterator::collect)
            .unwrap_or_default(),
    }
}

/// Up to `n` connections to `addr`, opened together within `CONNECT_WAIT`, non-blocking.
async fn connect_all(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        tasks.spawn(tokio::time::timeout(
            CONNECT_WAIT,
            tokio::net::TcpStream::connect(addr),
        ));
    }
    let mut open = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        // A std stream from tokio's stays non-blocking, as the engine needs.
        if let Ok(Ok(Ok(stream))) = done {
            if let Ok(s) = stream.into_std() {
                open.push(s);
            }
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientOptions;

    fn target(port: u16, max_conns: usize) -> Target {
        let url = |p: &str| reqwest::Url::parse(&format!("http://127.0.0.1:{port}/{p}"));
        let urls = [url("a").expect("url"), url("b").expect("url")];
        let opts = ClientOptions {
            timeout: Duration::from_secs(5),
            headers: Vec::new(),
            insecure: false,
            ca_certs: Vec::new(),
            http2: false,
            max_idle: 0,
        };
        Target::new(&urls, &opts, max_conns).expect("target")
    }

    #[tokio::test]
    async fn the_first_millisecond_gets_its_connections_within_the_cap() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        assert_eq!(
            Ready::open(target(port, 512), 20_000.0).await.warm.len(),
            20
        );
        assert_eq!(Ready::open(target(port, 512), 0.0).await.warm.len(), 1);
        assert_eq!(Ready::open(target(port, 5), 20_000.0).await.warm.len(), 5);
        assert_eq!(
            Ready::open(target(port, 100_000), 1e9).await.warm.len(),
            WARM_MAX
        );
        held.abort();
    }

    #[tokio::test]
    async fn a_target_that_refuses_gets_none_at_once() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let started = std::time::Instant::now();
        assert!(Ready::open(target(port, 512), 20_000.0)
            .await
            .warm
            .is_empty());
        assert!(started.elapsed() < CONNECT_WAIT);
    }
}
