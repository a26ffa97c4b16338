//! Binary edge of the load generator: parses the command line (usage errors exit 2), wires
//! Ctrl-C (first: stop and report; second: exit at once), runs, prints the report, and maps the
//! result to the documented exit code. Every error it prints is bounded (`redact::bounded`),
//! and a usage error echoes each value capped. A report that cannot be written (a closed pipe
//! on standard output, a report file) exits `exit::UNWRITTEN`; nothing written to standard
//! error can panic, even when it is closed.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::Parser;
use loadgen::cli::MergeCli;
use loadgen::cli::OutputFormat;
use loadgen::report::Kind;
use loadgen::report_file::{FileFormat, ReportFile};
use loadgen::{exit, Cli};

mod capacity_main;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "merge") {
        return merge();
    }
    if std::env::args_os().nth(1).is_some_and(|a| a == "capacity") {
        return capacity_main::capacity();
    }
    let cli = match parsed(Cli::try_parse()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // The full-screen view when both outputs are terminals; its log lines wait in memory
    // while it owns the screen.
    let view = (!cli.no_tui
        && !cli.no_progress
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal())
    .then(loadgen::tui::LogBuffer::default);
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&cli.log).map(|filter| {
        let logger = tracing_subscriber::fmt()
            .with_env_filter(filter)
            // Its own complaint about a closed standard error would be an `eprintln!`: a panic.
            .log_internal_errors(false);
        match &view {
            Some(logs) => logger.with_writer(logs.clone()).with_ansi(false).init(),
            None => logger
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init(),
        }
    }) {
        error(format!(
            "invalid --log filter {}: {e}",
            loadgen::redact::quoted(&cli.log)
        ));
        return ExitCode::from(exit::ERROR);
    }
    // Whatever happens to the run, the lines the view kept reach standard error.
    let kept_logs = view.clone();
    let config = match cli.into_config() {
        Ok(c) => loadgen::RunConfig {
            command_line: loadgen::redact::redacted(std::env::args_os()),
            // The view replaces the one-line progress.
            progress: c.progress && view.is_none(),
            terminal: view,
            ..c
        },
        Err(e) => {
            error(e);
            return ExitCode::from(exit::ERROR);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            error(format!("cannot start the async runtime: {e}"));
            return ExitCode::from(exit::ERROR);
        }
    };
    let output = config.output;
    // Checked now, so a path that cannot take the report fails before the run (ten minutes
    // in the Job), not after it.
    let files = match open_files(config.report_file.as_deref(), config.report_html.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            error(e);
            return ExitCode::from(exit::ERROR);
        }
    };
    let stop = {
        let _in_runtime = runtime.enter();
        match interrupted(config.terminal.is_some()) {
            Ok(stop) => stop,
            Err(e) => {
                error(format!("cannot install the Ctrl-C/SIGTERM handlers: {e}"));
                return ExitCode::from(exit::ERROR);
            }
        }
    };
    // The report is printed and written as soon as it is built (before --metrics-linger).
    // Shared with `publish`, which takes them: if the run fails before publishing, they are
    // still here, and a file the check created is removed.
    let files = Arc::new(Mutex::new(files));
    let unpublished = Arc::clone(&files);
    let (written_tx, written_rx) = std::sync::mpsc::channel::<String>();
    let publish = move |report: &loadgen::Report| {
        if let Err(e) = print(report, output) {
            let _ = written_tx.send(format!("writing the report to standard output: {e}"));
        }
        let taken = files.lock().map(|mut f| std::mem::take(&mut *f));
        for e in write_files(taken.unwrap_or_default(), report) {
            let _ = written_tx.send(e);
        }
    };
    // On a worker thread, not in `block_on` on the main thread: the dispatcher then spawns
    // each request onto its own thread instead of waking another one, which would be a
    // context switch per request.
    let result = runtime
        .block_on(async { tokio::spawn(loadgen::run_publishing(config, stop, publish)).await });
    if let Some(logs) = &kept_logs {
        logs.release();
    }
    let failed = match result {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("the run failed: {e}")),
    };
    let report = match failed {
        Ok(report) => report,
        Err(why) => {
            error(why);
            if let Ok(mut files) = unpublished.lock() {
                for (_, file, _) in files.drain(..) {
                    file.discard();
                }
            }
            return ExitCode::from(exit::ERROR);
        }
    };
    let failed: Vec<String> = written_rx.try_iter().collect();
    for e in &failed {
        error(e);
    }
    if !failed.is_empty() {
        return ExitCode::from(exit::UNWRITTEN);
    }
    judged(&report)
}

/// `loadgen merge REPORT.json...`: the shards' reports as one.
fn merge() -> ExitCode {
    let cli = match parsed(MergeCli::try_parse_from(std::env::args_os().skip(1))) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let merged = cli
        .thresholds()
        .map_err(|e| e.to_string())
        .and_then(|t| loadgen::merge::merge(&cli.reports, &t).map_err(|e| e.to_string()));
    let report = match merged {
        Ok(r) => r,
        Err(why) => {
            error(why);
            return ExitCode::from(exit::ERROR);
        }
    };
    let files = match open_files(cli.report_file.as_deref(), cli.report_html.as_deref()) {
        Ok(files) => files,
        Err(e) => {
            error(e);
            return ExitCode::from(exit::ERROR);
        }
    };
    let mut failed = write_files(files, &report);
    if let Err(e) = print(&report, cli.output) {
        failed.push(format!("writing the report to standard output: {e}"));
    }
    for e in &failed {
        error(e);
    }
    if !failed.is_empty() {
        return ExitCode::from(exit::UNWRITTEN);
    }
    judged(&report)
}

/// A report file: the flag that named it, the file, what it holds.
pub(crate) type Output = (&'static str, ReportFile, FileFormat);

/// The files `--report-file` and `--report-html` name, each proved writable now; on an error,
/// the files already opened are discarded and the message names the flag.
pub(crate) fn open_files(json: Option<&Path>, html: Option<&Path>) -> Result<Vec<Output>, String> {
    let mut files: Vec<Output> = Vec::new();
    let wanted = [
        ("--report-file", json, FileFormat::Json),
        ("--report-html", html, FileFormat::Html),
    ];
    for (flag, path, format) in wanted {
        let Some(path) = path else { continue };
        match ReportFile::open(path) {
            Ok(f) => files.push((flag, f, format)),
            Err(e) => {
                for (_, f, _) in files {
                    f.discard();
                }
                return Err(format!("{flag} {}: {e}", path.display()));
            }
        }
    }
    Ok(files)
}

/// Writes the report to each file; the errors, each naming its flag and path.
fn write_files(files: Vec<Output>, report: &loadgen::Report) -> Vec<String> {
    let mut errors = Vec::new();
    for (flag, file, format) in files {
        let path = file.path().display().to_string();
        if let Err(e) = file.write(report, format) {
            errors.push(format!("{flag} {path}: {e}"));
        }
    }
    errors
}

/// Prints `error: WHY`, bounded.
pub(crate) fn error(why: impl std::fmt::Display) {
    say(&format!(
        "error: {}",
        loadgen::redact::bounded(&why.to_string())
    ));
}

/// A line on standard error. Unlike `eprintln!`, a closed standard error (`2>&1 | true`) is
/// no panic: the line is lost, the exit code still says what happened.
pub(crate) fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// A parsed command line, or its usage error (exit 2) or help (exit 0) printed. A usage
/// error's echoed values (clap's context) are capped, and the message bounded.
pub(crate) fn parsed<T>(parse: Result<T, clap::Error>) -> Result<T, ExitCode> {
    use clap::error::ContextValue;
    use loadgen::redact::capped;
    parse.map_err(|mut e| {
        if !e.use_stderr() {
            let _ = e.print();
            return ExitCode::from(exit::OK);
        }
        let long: Vec<_> = e
            .context()
            .filter_map(|(kind, value)| match value {
                ContextValue::String(s) => Some((kind, ContextValue::String(capped(s)))),
                ContextValue::Strings(v) => Some((
                    kind,
                    ContextValue::Strings(v.iter().map(|s| capped(s)).collect()),
                )),
                _ => None,
            })
            .collect();
        for (kind, value) in long {
            e.insert(kind, value);
        }
        let _ = write!(
            std::io::stderr().lock(),
            "{}",
            loadgen::redact::bounded(&e.render().to_string())
        );
        ExitCode::from(exit::ERROR)
    })
}

/// The report on standard output in `format`.
fn print(report: &loadgen::Report, format: OutputFormat) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match format {
        OutputFormat::Text => report.write_text(&mut stdout),
        OutputFormat::Json => report.write_json(&mut stdout),
        OutputFormat::Hgrm => hgrm(report, &mut stdout, Kind::Corrected),
        OutputFormat::HgrmService => hgrm(report, &mut stdout, Kind::Service),
    }?;
    stdout.flush()
}

/// The exit code a finished run or merge earns, saying why when it is not 0.
fn judged(report: &loadgen::Report) -> ExitCode {
    let code = loadgen::exit_code(report);
    if let Some(why) = report.unreached() {
        error(why);
    } else if code == exit::THRESHOLD {
        say("threshold missed");
    }
    ExitCode::from(code)
}

/// The distribution on standard output; the thresholds' verdicts, which the format has no
/// place for, on standard error.
fn hgrm(report: &loadgen::Report, out: &mut impl Write, kind: Kind) -> std::io::Result<()> {
    report.write_hgrm(out, kind)?;
    report.write_verdicts(&mut std::io::stderr().lock())
}

/// Completes on the first Ctrl-C or SIGTERM; a second Ctrl-C exits at once.
///
/// The handlers are installed before the run starts (not when the future is first polled), so
/// a signal sent right after start-up stops the run with a report instead of killing it.
/// Must be called inside the runtime.
pub(crate) fn interrupted(view: bool) -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    #[cfg(unix)]
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        // The terminal view says so itself; a line would tear it.
        if !view {
            say("\nstopping: draining requests in flight, then the report (Ctrl-C again to quit at once)");
        }
        #[cfg(unix)]
        tokio::spawn(async move {
            if int.recv().await.is_some() {
                if view {
                    ratatui::restore();
                }
                say("aborted");
                std::process::exit(i32::from(exit::ABORTED));
            }
        });
        #[cfg(not(unix))]
        tokio::spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                say("aborted");
                std::process::exit(i32::from(exit::ABORTED));
            }
        });
    })
}
