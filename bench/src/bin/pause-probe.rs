//! How long the machine itself takes each CPU away during a benchmark run: one thread pinned
//! to each CPU sleeps 1 ms at a time, and a wake-up more than `--min-ms` late is a pause. Run
//! under `chrt -f 1` (SCHED_FIFO) the sleeper preempts the server and the load tool at once,
//! so what is left is time no task of this machine got: the hypervisor running another guest,
//! or interrupts. A send due in a pause longer than the late threshold is late whatever the
//! generator does. Every 100 ms the sleeper also times a fixed piece of arithmetic: a CPU
//! that is not taken away but runs slower (a busy sibling thread on the host's core) takes
//! longer, and so does every request the server answers on it. Costs a wake-up a
//! millisecond per CPU. Prints one JSON object: `{"cpus": [{"cpu": 0, "pauses": [[start_s,
//! ms], ...], "work_us": [[start_s, us], ...]}, ...]}`.
//!
//!     chrt -f 1 pause-probe SECONDS [--min-ms 3]

use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;

const STEP: Duration = Duration::from_millis(1);
/// Wake-ups between two timings of the fixed work.
const WORK_EVERY: u32 = 100;
/// Steps of the fixed work: about 20 µs on a 3 GHz core.
const WORK_STEPS: u64 = 20_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok((seconds, min)) => {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            let start = Instant::now();
            let threads: Vec<_> = (0..cpus)
                .map(|cpu| std::thread::spawn(move || watch(cpu, start, seconds, min)))
                .collect();
            let mut out = Vec::new();
            for (cpu, t) in threads.into_iter().enumerate() {
                match t.join() {
                    Ok(Ok((pauses, work))) => out.push(format!(
                        "{{\"cpu\": {cpu}, \"pauses\": [{}], \"work_us\": [{}]}}",
                        pairs(&pauses),
                        pairs(&work)
                    )),
                    Ok(Err(e)) => {
                        eprintln!("pause-probe: cannot pin a thread to CPU {cpu}: {e}");
                        return ExitCode::FAILURE;
                    }
                    Err(_) => return ExitCode::FAILURE,
                }
            }
            println!("{{\"cpus\": [{}]}}", out.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pause-probe: {e}\nusage: pause-probe SECONDS [--min-ms MS]");
            ExitCode::from(2)
        }
    }
}

fn pairs(v: &[(f64, f64)]) -> String {
    v.iter()
        .map(|(at, x)| format!("[{at:.4}, {x:.2}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse(args: &[String]) -> Result<(Duration, Duration), String> {
    let number = |s: &str, what: &str| {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0 && *v <= 3600.0)
            .ok_or_else(|| format!("{what} must be a number from 0 to 3600, got {s:?}"))
    };
    match args {
        [s] => Ok((
            Duration::from_secs_f64(number(s, "SECONDS")?),
            Duration::from_millis(3),
        )),
        [s, flag, m] if flag == "--min-ms" => Ok((
            Duration::from_secs_f64(number(s, "SECONDS")?),
            Duration::from_secs_f64(number(m, "--min-ms")? / 1e3),
        )),
        _ => Err("expected SECONDS and optionally --min-ms MS".into()),
    }
}

type Seen = (Vec<(f64, f64)>, Vec<(f64, f64)>);

/// What `cpu` showed for `seconds`: its pauses (seconds since `start`, milliseconds lost)
/// and the fixed work's times (seconds since `start`, microseconds).
fn watch(cpu: usize, start: Instant, seconds: Duration, min: Duration) -> nix::Result<Seen> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &set)?;
    let (mut pauses, mut work) = (Vec::new(), Vec::new());
    let mut before = Instant::now();
    let mut wakes = 0u32;
    while before.duration_since(start) < seconds {
        wakes += 1;
        if wakes.is_multiple_of(WORK_EVERY) {
            let t = Instant::now();
            std::hint::black_box(fixed_work(WORK_STEPS));
            let us = t.elapsed().as_secs_f64() * 1e6;
            work.push((t.duration_since(start).as_secs_f64(), us));
        }
        std::thread::sleep(STEP);
        let now = Instant::now();
        let lost = now.duration_since(before).saturating_sub(STEP);
        if lost >= min {
            let at = before.duration_since(start).as_secs_f64();
            pauses.push((at, lost.as_secs_f64() * 1e3));
        }
        before = now;
    }
    Ok((pauses, work))
}

/// A dependent chain of multiply-adds the compiler cannot fold away.
fn fixed_work(steps: u64) -> u64 {
    let mut x = std::hint::black_box(1u64);
    for _ in 0..steps {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    x
}
