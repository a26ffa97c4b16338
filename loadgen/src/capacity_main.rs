//! The binary's `loadgen capacity`: parses its command line (usage errors exit 2), checks the
//! report files before the search, runs the search with progress on standard error and
//! Ctrl-C as its stop, prints the answer (text or JSON), writes the files, and exits 0 when a
//! rate passed, 1 when not even the start rate did, 2 for usage errors or an unreachable
//! target, 3 when the result could not be written.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use loadgen::capacity::cli::CapacityCli;
use loadgen::capacity::report::CapacityReport;
use loadgen::cli::OutputFormat;
use loadgen::exit;
use loadgen::report_file::FileFormat;

use crate::{error, interrupted, open_files, parsed, say};

pub fn capacity() -> ExitCode {
    let cli = match parsed(CapacityCli::try_parse_from(std::env::args_os().skip(1))) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match tracing_subscriber::EnvFilter::try_new(&cli.run.log) {
        Ok(filter) => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
            .init(),
        Err(e) => {
            error(format!(
                "invalid --log filter {}: {e}",
                loadgen::redact::quoted(&cli.run.log)
            ));
            return ExitCode::from(exit::ERROR);
        }
    }
    let (run, search) = match cli.into_configs() {
        Ok(c) => c,
        Err(e) => {
            error(e);
            return ExitCode::from(exit::ERROR);
        }
    };
    // Checked now, so a path that cannot take the result fails before the search.
    let files = match open_files(run.report_file.as_deref(), run.report_html.as_deref()) {
        Ok(f) => f,
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
    let output = run.output;
    let found = runtime.block_on(async {
        let stop = match interrupted(false) {
            Ok(s) => s,
            Err(e) => return Err(format!("cannot install the Ctrl-C/SIGTERM handlers: {e}")),
        };
        tokio::spawn(loadgen::capacity::search(run, search, stop, |line| {
            say(line)
        }))
        .await
        .map_err(|e| format!("the search failed: {e}"))?
        .map_err(|e| e.to_string())
    });
    let report = match found {
        Ok(r) => r,
        Err(why) => {
            error(why);
            for (_, f, _) in files {
                f.discard();
            }
            return ExitCode::from(exit::ERROR);
        }
    };
    let mut failed = Vec::new();
    if let Err(e) = print(&report, output) {
        failed.push(format!("writing the result to standard output: {e}"));
    }
    for (flag, file, format) in files {
        let path = file.path().display().to_string();
        let written = file.write_with(|w| match format {
            FileFormat::Html => loadgen::capacity::html::write(&report, w),
            FileFormat::Json => report.write_json(w),
        });
        if let Err(e) = written {
            failed.push(format!("{flag} {path}: {e}"));
        }
    }
    for e in &failed {
        error(e);
    }
    if !failed.is_empty() {
        return ExitCode::from(exit::UNWRITTEN);
    }
    ExitCode::from(report.exit_code())
}

fn print(report: &CapacityReport, format: OutputFormat) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Json => report.write_json(&mut out),
        _ => report.write_text(&mut out),
    }?;
    out.flush()
}
