//! Child processes that end with their owner. Each one leads a process group of its
//! own, so whatever it forks (nginx's workers) is stopped with it: first a graceful
//! signal to the child, then, after a grace period, SIGKILL to the whole group.
//!
//! The child is reaped only after its group was killed: until then its process ID, which
//! is the group's ID, cannot be given to another process, so the group signal can hit
//! nothing else.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use nix::sys::signal::{kill, killpg};
use nix::unistd::Pid;

use super::procfs;

/// How long a dropped child has to stop after its graceful signal before its group is
/// killed.
const DROP_GRACE: Duration = Duration::from_secs(5);

/// The process groups started through it (one per child, the child's process ID), so a
/// test can check that none of them outlives its owner.
#[derive(Debug, Clone, Default)]
pub struct Started(Arc<Mutex<Vec<u32>>>);

impl Started {
    fn record(&self, group: u32) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(group);
    }

    /// Every process group started so far, in order.
    pub fn groups(&self) -> Vec<u32> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A child process in its own process group, stopped (see [`Supervised::stop`]) when
/// dropped, panics included.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    child: Option<Child>,
    /// The signal that asks it to stop gracefully.
    quit: Signal,
}

impl Supervised {
    /// Spawns `command` as the leader of a new process group, with its output appended
    /// to `log`; `quit` is the signal that asks it to stop gracefully (SIGTERM; nginx:
    /// SIGQUIT). The group is recorded in `started`.
    pub fn spawn(
        name: impl Into<String>,
        mut command: Command,
        log: &Path,
        quit: Signal,
        started: &Started,
    ) -> std::io::Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        let name = name.into();
        let child = command.spawn().map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!("cannot start {name} ({:?}): {error}", command.get_program()),
            )
        })?;
        started.record(child.id());
        Ok(Self {
            name,
            child: Some(child),
            quit,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's process ID, which is also its process group's, until it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the child still runs (it is not reaped before it is stopped or killed).
    pub fn is_running(&self) -> bool {
        self.pid().is_some_and(procfs::is_alive)
    }

    /// SIGKILL to the whole group: no graceful shutdown, no flushing, exactly like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = killpg(pid(&child), Signal::SIGKILL);
            let _ = child.wait();
        }
    }

    /// The graceful signal to the child, up to `grace` for its whole group to end, then
    /// [`kill`](Self::kill) for whatever is left.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(child) = &self.child {
            let _ = kill(pid(child), self.quit);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline && !procfs::group_members(child.id()).is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
    }
}

fn pid(child: &Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).expect("a process ID fits in pid_t"))
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop(DROP_GRACE);
    }
}

/// Whether `program` can be found on `PATH` (or is a path that exists).
pub fn on_path(program: &str) -> bool {
    Path::new(program).is_file()
        || std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
        })
}
