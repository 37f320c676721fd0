//! Fault injection: stop a multi-object operation dead after step k.
//!
//! Every multi-object operation runs as numbered steps (see `docs/OPERATIONS.md`). A
//! [`FaultPlan`] names an operation and a step; after that step completes the client
//! either exits the process at once (the CLI, via `RBD_CG_FAULT=<op>:<step>`, as a crash
//! would) or returns an error (the library, for in-process tests). Either way nothing
//! after the step runs, which is how the tests prove that a rerun or `repair` recovers
//! from a crash at every point.

use crate::error::{Error, Result};

/// Environment variable read by [`FaultPlan::from_env`]: `<operation>:<step>`.
pub const FAULT_ENV: &str = "RBD_CG_FAULT";

/// Exit status of a process stopped by fault injection.
pub const FAULT_EXIT_CODE: i32 = 86;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Exit the process at once (a crash).
    Exit,
    /// Return an injected error (library tests).
    Fail,
    /// Sleep this many seconds, then go on: a wedged client whose librados threads live
    /// on (a test can also SIGSTOP the process meanwhile: a frozen client).
    Sleep(u64),
}

/// Where to stop, if anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    target: Option<(String, u32, Action)>,
}

impl FaultPlan {
    /// No faults.
    pub fn none() -> FaultPlan {
        FaultPlan::default()
    }

    /// Reads [`FAULT_ENV`] = `<operation>:<step>[:<action>]`. Actions: `exit` (default:
    /// the process exits with [`FAULT_EXIT_CODE`]) and `sleep=<seconds>` (the main thread
    /// sleeps, then goes on).
    pub fn from_env() -> Result<FaultPlan> {
        let Ok(value) = std::env::var(FAULT_ENV) else {
            return Ok(FaultPlan::none());
        };
        Self::parse(&value).ok_or_else(|| {
            Error::new(format!("{FAULT_ENV}={value:?} is not <operation>:<step>[:exit|:sleep=<seconds>]"), libc::EINVAL)
        })
    }

    fn parse(value: &str) -> Option<FaultPlan> {
        let mut parts = value.splitn(3, ':');
        let op = parts.next()?.to_owned();
        let step = parts.next()?.parse::<u32>().ok()?;
        let action = match parts.next() {
            None | Some("exit") => Action::Exit,
            Some(other) => Action::Sleep(other.strip_prefix("sleep=")?.parse().ok()?),
        };
        Some(FaultPlan { target: Some((op, step, action)) })
    }

    /// Makes `operation` fail with `EINTR` right after `step` (for in-process tests).
    pub fn fail_after(operation: &str, step: u32) -> FaultPlan {
        FaultPlan { target: Some((operation.to_owned(), step, Action::Fail)) }
    }

    pub(crate) fn after_step(&self, operation: &str, step: u32) -> Result<()> {
        match &self.target {
            Some((op, at, action)) if op == operation && *at == step => match action {
                Action::Exit => {
                    eprintln!("rbd-cg: fault injection: stopping dead after step {step} of {operation}");
                    // Stop dead, as a crash would: nothing of the operation's own runs after
                    // the step (no undo, no unlock: no destructor of ours runs), and no static
                    // destructor of librados races its still running threads (`exit_now`).
                    rbd_cg_rados::exit_now(FAULT_EXIT_CODE)
                }
                Action::Fail => {
                    Err(Error::injected(format!("fault injection: stopped after step {step} of {operation}")))
                }
                Action::Sleep(secs) => {
                    eprintln!("rbd-cg: fault injection: sleeping {secs} s after step {step} of {operation}");
                    std::thread::sleep(std::time::Duration::from_secs(*secs));
                    Ok(())
                }
            },
            _ => Ok(()),
        }
    }
}

/// Runs the numbered steps of one operation, checking the plan after each.
pub(crate) struct Steps<'a> {
    operation: &'static str,
    done: u32,
    plan: &'a FaultPlan,
}

impl<'a> Steps<'a> {
    pub(crate) fn new(operation: &'static str, plan: &'a FaultPlan) -> Steps<'a> {
        Steps { operation, done: 0, plan }
    }

    /// Counts `count` steps as done without running them: a resumed sequence that starts
    /// in the middle keeps the step numbers of the full one.
    pub(crate) fn skip(&mut self, count: u32) {
        self.done += count;
    }

    /// Runs the next step; `what` names it in errors.
    pub(crate) fn run<T, E: Into<Error>>(&mut self, what: &str, step: impl FnOnce() -> Result<T, E>) -> Result<T> {
        let started = std::time::Instant::now();
        let value =
            step().map_err(|e| e.into().context(format!("{} step {} ({what})", self.operation, self.done + 1)))?;
        self.done += 1;
        log::debug!(
            "{} step {} ({what}) done in {:.1} ms",
            self.operation,
            self.done,
            started.elapsed().as_secs_f64() * 1e3
        );
        self.plan.after_step(self.operation, self.done)?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operation_step_and_action() {
        let plan = |v: &str| FaultPlan::parse(v).and_then(|p| p.target);
        assert_eq!(plan("snap-create:3"), Some(("snap-create".into(), 3, Action::Exit)));
        assert_eq!(plan("snap-create:3:exit"), Some(("snap-create".into(), 3, Action::Exit)));
        assert_eq!(plan("snap-create:3:sleep=25"), Some(("snap-create".into(), 3, Action::Sleep(25))));
        assert_eq!(plan("snap-create"), None);
        assert_eq!(plan("snap-create:x"), None);
        assert_eq!(plan("snap-create:3:nap"), None);
    }
}
