//! Printing: one JSON object per line with `--json`, aligned text otherwise. Nothing here
//! ever receives a token value except `token`'s own output.

use std::io::Write;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::error::CliError;

/// Prints `value` as one JSON line, or `human` as text.
pub fn emit(json: bool, value: &Value, human: impl FnOnce() -> String) {
    let text = if json { value.to_string() } else { human() };
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `| head`) is not worth a panic.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Prints a line on stdout and flushes it.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// Prints the error as one line on stderr.
pub fn error(e: &CliError, json: bool) {
    let text = if json {
        json!({"error": {"code": e.code, "kind": e.kind, "message": e.message}}).to_string()
    } else {
        format!("latchkey: {}", e.message)
    };
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Aligned `key  value` lines.
pub fn table(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter().map(|(k, v)| format!("{k:<width$}  {v}")).collect::<Vec<_>>().join("\n")
}

/// Seconds left until `expires_at_ms` (negative when expired), in millisecond steps.
pub fn expires_in(expires_at_ms: Option<i64>) -> Option<f64> {
    expires_at_ms.map(|exp| (exp - now_ms()) as f64 / 1000.0)
}

/// `expires_in` for people.
pub fn human_expiry(secs: Option<f64>) -> String {
    match secs {
        None => "unknown".into(),
        Some(s) if s <= 0.0 => format!("expired {:.1} s ago", -s),
        Some(s) if s < 120.0 => format!("in {s:.1} s"),
        Some(s) if s < 7200.0 => format!("in {:.0} min", s / 60.0),
        Some(s) => format!("in {:.1} h", s / 3600.0),
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}
