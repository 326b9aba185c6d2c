//! The `latchkey` command-line tool: sign in with OpenID Connect through the browser and
//! keep one session fresh across every process that shares a state directory.
//!
//! ```text
//! latchkey [--state-dir DIR] [--holder NAME] [--account NAME] [--insecure-loopback] [--json] [-v] COMMAND
//!   discover --issuer URL
//!   register --issuer URL --redirect-uri URI [--redirect-uri URI …] [--client-name NAME]
//!   login [--issuer URL] [--client-id ID] [--scope S …] [--port P] [--prompt P] [--timeout S]
//!   token [--min-ttl SECONDS]
//!   watch --duration SECONDS [--tasks N] [--interval-ms MS] [--min-ttl SECONDS]
//!   refresh | status | userinfo | logout [--post-logout-redirect-uri URI]
//! ```
//!
//! Exit codes: 0 ok; 1 usage; 2 reauthentication required, no session or not registered;
//! 3 transient failure; 4 protocol or validation error (see `error.rs`). Errors are one
//! line on stderr (`latchkey: …`, or `{"error": {"code", "kind", "message"}}` with `--json`).
//! Only `token` prints a token value.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod end_session_handoff;
mod error;
mod login;
mod output;
mod state;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::error::{CliError, EXIT_USAGE};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and succeed; every usage error exits 1
            // (clap's own default would be 2, which here means "sign in again"). With
            // --json anywhere before `--`, a usage error is one JSON line like any other.
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if json_requested(std::env::args_os()) {
                output::error(&CliError::from_clap(&e), true);
            } else {
                let _ = e.print();
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    init_logging(cli.global.verbose);
    let json = cli.global.json;
    // One thread: a command does one thing at a time, and a short-lived process should not
    // pay for a worker thread per core (memory, start-up). SQLite and file calls still run
    // on Tokio's blocking threads.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            output::error(&CliError::io("cannot start the async runtime", &e), json);
            return ExitCode::from(error::EXIT_TRANSIENT);
        }
    };
    let result = runtime.block_on(commands::run(cli));
    // Background refreshes still running are abandoned with the runtime: their state is
    // journaled, so the next process knows what happened.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(&e, json);
            ExitCode::from(e.code)
        }
    }
}

/// Whether the raw arguments ask for JSON output (they did not parse, so look at them).
fn json_requested(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

/// Logs to stderr when asked: RUST_LOG, or -v (info), -vv (debug), -vvv (trace) for
/// Latchkey's own targets. Latchkey never logs token values.
fn init_logging(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::new(v),
        _ => match verbose {
            0 => return,
            1 => EnvFilter::new("latchkey=info"),
            2 => EnvFilter::new("latchkey=debug"),
            _ => EnvFilter::new("latchkey=trace"),
        },
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_is_found_in_arguments_that_did_not_parse() {
        let args = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(super::json_requested(args(&["latchkey", "--json", "frobnicate"]).into_iter()));
        assert!(super::json_requested(args(&["latchkey", "token", "--json", "-x"]).into_iter()));
        assert!(!super::json_requested(args(&["latchkey", "--", "--json"]).into_iter()));
        assert!(!super::json_requested(args(&["--json"]).into_iter()));
        assert!(!super::json_requested(args(&["latchkey", "--jsonx"]).into_iter()));
    }
}
