//! Processes the harness runs: programs found on PATH or in known folders, a watchdog that
//! cleans up after the test binary, free ports and unique names.

use super::*;

/// A unique name for a test's database or topic.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|error| panic!("no free TCP port: {error}"))
}

pub(crate) fn find_program(name: &str, extra_dirs: &[&str]) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let home_cargo = std::env::var("HOME")
        .map(|home| format!("{home}/.cargo/bin"))
        .unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .chain([PathBuf::from(home_cargo)])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed (looked in PATH and {extra_dirs:?}); \
                 run scripts/test, which installs what the tests need"
            )
        })
}

pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

pub(crate) fn run(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {what}: {error}"));
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts a process that waits for this test binary to exit, then runs `cleanup` (a shell
/// command), so services never outlive the tests.
pub(crate) fn watchdog(cleanup: &str) {
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 0.5; done; {cleanup}",
        std::process::id()
    );
    let spawned = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(error) = spawned {
        panic!("cannot start the cleanup watchdog: {error}");
    }
}

/// A child process that is killed when dropped, so a failing test leaves nothing running.
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// Sends SIGTERM and waits: an orderly stop must end with exit status 0.
    pub fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap_or_else(|error| panic!("cannot send SIGTERM: {error}"));
        assert!(status.success(), "kill -TERM failed with {status}");
        let exit = self
            .0
            .wait()
            .unwrap_or_else(|error| panic!("cannot wait for the process: {error}"));
        assert!(
            exit.success(),
            "the process exited with {exit} after SIGTERM"
        );
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A file a child process logs to, read back by the test.
pub struct LogFile {
    /// Where it is.
    pub path: PathBuf,
}

impl LogFile {
    /// A new empty log file, deleted when the test binary exits.
    pub fn new(prefix: &str) -> LogFile {
        let path = std::env::temp_dir().join(format!("{}.log", unique_name(prefix)));
        std::fs::File::create(&path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        watchdog(&format!("rm -f {}", path.display()));
        LogFile { path }
    }

    /// The file, opened for appending, as a child's stdout or stderr.
    pub fn stdio(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map(Stdio::from)
            .unwrap_or_else(|error| panic!("cannot open {}: {error}", self.path.display()))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}
