//! Spawning and steering `latchkey-worker` processes: their JSON lines are collected by a
//! reader thread; they can be killed, stopped and continued by PID.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One worker process.
pub struct Worker {
    /// Its holder name.
    pub holder: String,
    /// Its PID.
    pub pid: u32,
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, Value)>>>,
    /// Set by the reader thread at the end of the process's stdout.
    eof: Arc<std::sync::atomic::AtomicBool>,
}

/// Where to find the worker binary and how to start it.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Path of the `latchkey-worker` binary.
    pub bin: PathBuf,
    /// Issuer of the test provider.
    pub issuer: String,
    /// Shared state directory (lock.db, registration.json, session.json).
    pub state_dir: PathBuf,
    /// Further arguments (`--tasks`, `--duration-ms`, ...).
    pub args: Vec<String>,
}

impl WorkerSpec {
    /// A spec for the worker binary `bin` (an integration test passes
    /// `env!("CARGO_BIN_EXE_latchkey-worker")`), against `issuer`, sharing `state_dir`.
    pub fn new(bin: &str, issuer: &str, state_dir: &Path, args: &[&str]) -> Self {
        WorkerSpec {
            bin: bin.into(),
            issuer: issuer.to_string(),
            state_dir: state_dir.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Starts a worker named `holder`.
    pub fn spawn(&self, holder: &str) -> Worker {
        self.spawn_with(holder, &[], &[])
    }

    /// Starts a worker named `holder` with extra arguments and environment variables (e.g.
    /// `FAILPOINTS` for the fault points of `latchkey::faults`).
    pub fn spawn_with(&self, holder: &str, args: &[String], env: &[(&str, String)]) -> Worker {
        let mut child = Command::new(&self.bin)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .arg("--issuer")
            .arg(&self.issuer)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .arg("--holder")
            .arg(holder)
            .args(&self.args)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn latchkey-worker");
        let pid = child.id();
        let lines: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = lines.clone();
        let eof: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let at_end = eof.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push((Instant::now(), v));
                }
            }
            at_end.store(true, std::sync::atomic::Ordering::Release);
        });
        Worker { holder: holder.to_string(), pid, child, lines, eof }
    }
}

impl Worker {
    /// Every line received so far, with the time it arrived.
    pub fn lines(&self) -> Vec<(Instant, Value)> {
        self.lines.lock().unwrap().clone()
    }

    /// Lines whose `event` is `name`.
    pub fn events(&self, name: &str) -> Vec<(Instant, Value)> {
        self.lines().into_iter().filter(|(_, v)| v["event"] == name).collect()
    }

    /// Waits (bounded) for the first line after `since` that satisfies `pred`.
    pub fn wait_for(
        &self,
        since: Instant,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<(Instant, Value)> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(hit) = self.lines().into_iter().find(|(t, v)| *t >= since && pred(v)) {
                return Some(hit);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The summary line, waiting up to `timeout` for the process to finish.
    pub fn summary(&mut self, timeout: Duration) -> Option<Value> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                // The process has exited: wait (bounded) for the reader to reach the end of
                // its output, so a summary still in the pipe on a loaded machine counts.
                let drained = Instant::now() + Duration::from_secs(5);
                while !self.eof.load(std::sync::atomic::Ordering::Acquire)
                    && Instant::now() < drained
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.events("summary").pop().map(|(_, v)| v)
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP (freezes the process as iOS does a suspended app).
    pub fn stop(&self) {
        signal("-STOP", self.pid);
    }

    /// Waits (bounded by `timeout`) until the process is stopped by a signal (state `T` in
    /// `/proc/PID/stat`). Returns whether it is.
    pub fn wait_stopped(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let stat =
                std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
            // "PID (comm) STATE ...": the state follows the last ')'.
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
            if state == Some("T") {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGCONT.
    pub fn cont(&self) {
        signal("-CONT", self.pid);
    }
}

fn signal(sig: &str, pid: u32) {
    let ok = Command::new("kill").arg(sig).arg(pid.to_string()).status().map(|s| s.success());
    assert!(matches!(ok, Ok(true)), "kill {sig} {pid} failed");
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal_quiet("-CONT", self.pid);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn signal_quiet(sig: &str, pid: u32) {
    let _ = Command::new("kill").arg(sig).arg(pid.to_string()).status();
}

/// Releases workers started with `--settle-file path`: waits (bounded by `timeout`) until
/// each has stopped its callers (`callers_done`) or exited, then creates `path`, so that no
/// process is still inside a refresh while the others settle on the committed generation.
/// Returns whether every worker got there in time.
pub fn release_settle(workers: &mut [Worker], path: &Path, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    let all = loop {
        let done = workers.iter_mut().all(|w| w.exited() || !w.events("callers_done").is_empty());
        if done || Instant::now() >= end {
            break done;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::fs::write(path, b"settle").unwrap();
    all
}

/// Writes `registration.json` into `dir` for the workers.
pub fn write_registration(dir: &Path, reg: &latchkey::ClientRegistration) {
    std::fs::write(dir.join("registration.json"), serde_json::to_vec_pretty(reg).unwrap()).unwrap();
}
