//! Named fault points on the protocol paths (refresh, commit, adoption, login commit,
//! logout), for tests that drive real processes into every step.
//!
//! Behind the `failpoints` feature, which release builds leave out: without it every point
//! is an empty inline function. With it, each point is a [`fail`] point configured from the
//! `FAILPOINTS` environment variable of the process (`fail::FailScenario::setup()`), e.g.
//! `FAILPOINTS='refresh::after_answered=1*return(abort)'`. The `return` argument picks the
//! fault:
//!
//! - `abort`: the process aborts at once (like a crash or an OS kill);
//! - `stop`: the process sends itself SIGSTOP (suspension; the test sends SIGCONT);
//! - `error` (or nothing): the step fails with a retryable error of its kind.
//!
//! Before acting, the point prints one JSON line on stdout
//! (`{"event":"fault","point":…,"action":…}`) so a harness knows it was reached.

#[cfg(feature = "failpoints")]
use crate::error::Error;
use crate::error::Result;

/// The kind of error a failing step reports.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub(crate) enum Step {
    /// A network exchange.
    Network,
    /// A call of the app's store.
    Store,
    /// A write of the coordination database.
    Database,
}

/// Every fault point, in path order (the test matrix iterates over this list).
pub const POINTS: &[&str] = &[
    "refresh::before_send",
    "refresh::response_read",
    "refresh::after_answered",
    "refresh::after_save",
    "refresh::after_commit",
    "refresh::after_validate",
    "adopt::after_load",
    "rollforward::before_commit",
    "login::after_exchange",
    "login::after_save",
    "logout::after_end",
];

/// Reaches the fault point `name`.
#[cfg(feature = "failpoints")]
pub(crate) fn hit(name: &'static str, step: Step) -> Result<()> {
    match fail::eval(name, |arg| arg.unwrap_or_default()) {
        None => Ok(()),
        Some(action) => act(name, &action, step),
    }
}

/// Reaches the fault point `name` (no-op: the `failpoints` feature is off).
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_name: &'static str, _step: Step) -> Result<()> {
    Ok(())
}

#[cfg(feature = "failpoints")]
fn act(name: &str, action: &str, step: Step) -> Result<()> {
    use std::io::Write as _;
    let pid = std::process::id();
    {
        let mut out = std::io::stdout().lock();
        let line =
            serde_json::json!({"event": "fault", "point": name, "action": action, "pid": pid});
        // A harness that stopped reading does not stop the fault.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    match action {
        "abort" => std::process::abort(),
        "stop" => {
            stop_self(pid);
            Ok(())
        }
        _ => {
            let message = format!("injected fault at {name}");
            Err(match step {
                Step::Network => Error::Network { message },
                Step::Store => Error::Store { operation: "save".into(), message, retryable: true },
                Step::Database => Error::Database { message },
            })
        }
    }
}

/// Sends SIGSTOP to this process and returns once it is continued. A direct `kill(2)`
/// (rustix, safe): the stop takes effect before the call returns, so a harness that saw the
/// `fault` line and waits a while before SIGCONT never continues a process that has not
/// stopped yet (as it could when a `kill` child process was slow to start).
#[cfg(all(
    feature = "failpoints",
    any(target_os = "linux", target_os = "android", target_vendor = "apple")
))]
fn stop_self(_pid: u32) {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
}

/// Elsewhere: the system's `kill` command.
#[cfg(all(
    feature = "failpoints",
    not(any(target_os = "linux", target_os = "android", target_vendor = "apple"))
))]
fn stop_self(pid: u32) {
    let _ = std::process::Command::new("kill").args(["-STOP", &pid.to_string()]).status();
}
