//! `latchkey-browser [--user alice] [--deny] [--deliver] [--redirect-prefix P] URL`
//!
//! Plays the user's browser against the test provider: opens the authorization URL, logs in,
//! approves (or with `--deny` denies) consent and prints the final redirect to the app on
//! stdout. With `--deliver` it then GETs that URL (the app's loopback listener). Loopback URLs
//! only. Exit status: 0 on success, 1 on failure, 2 on bad usage.

use std::process::ExitCode;

use latchkey_e2e::{deliver, login, BrowserLogin};

const USAGE: &str = "usage: latchkey-browser [--user NAME] [--deny] [--deliver] \
[--redirect-prefix PREFIX] [--max-steps N] AUTHORIZATION_URL";

struct Args {
    url: String,
    opts: BrowserLogin,
    deliver: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut opts = BrowserLogin::default();
    let mut deliver = false;
    let mut url = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<String, String> {
            inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{what} needs a value"))
        };
        match name.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--user" => opts.user = value("--user")?,
            "--deny" => opts.approve = false,
            "--deliver" => deliver = true,
            "--redirect-prefix" => opts.redirect_prefix = value("--redirect-prefix")?,
            "--max-steps" => {
                opts.max_steps =
                    value("--max-steps")?.parse().map_err(|e| format!("--max-steps: {e}"))?
            }
            other if other.starts_with('-') => return Err(format!("unknown option {other}")),
            _ if url.is_none() => url = Some(arg),
            _ => return Err("more than one URL given".to_string()),
        }
    }
    let url = url.ok_or_else(|| "missing AUTHORIZATION_URL".to_string())?;
    Ok(Args { url, opts, deliver })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if msg.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("latchkey-browser: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("latchkey-browser: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let redirect = match login(&args.url, &args.opts).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("latchkey-browser: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("{redirect}");
        if args.deliver {
            match deliver(&redirect).await {
                Ok(d) if (200..400).contains(&d.status) => {}
                Ok(d) => {
                    eprintln!("latchkey-browser: the app answered {}: {}", d.status, d.body);
                    return ExitCode::FAILURE;
                }
                Err(e) => {
                    eprintln!("latchkey-browser: delivering the redirect failed: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        ExitCode::SUCCESS
    })
}
