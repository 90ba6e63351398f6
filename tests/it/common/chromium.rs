//! Debian's headless Chromium as the page tests run it: a fresh profile per run, output to
//! files (a large DOM cannot fill a pipe), a time limit, and a failure, never a skip, when the
//! browser is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::{unique_name, KillOnDrop};

/// Where Debian's `chromium` package puts the browser; `scripts/test` installs it.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Flags that make Chromium a quiet, self-contained renderer: no sandbox (the tests may run as
/// root), no GPU, no network traffic of its own, and a virtual-time budget that lets the
/// page's fetch finish before the DOM is dumped.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=5000",
];

/// How long one Chromium run may take; a cold start on a busy 2-core machine takes seconds.
pub const CHROMIUM_TIME_LIMIT: Duration = Duration::from_secs(120);

/// Fails, never skips, when the browser is missing: the page would go untested.
pub fn require_chromium() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "chromium is missing ({CHROMIUM} does not exist): the page tests render pages in \
         Debian's headless Chromium; scripts/test installs it (apt-get install chromium)"
    );
}

/// Runs blocking work (a browser run) off the runtime's two worker threads, which serve the
/// application under test; a panic in it becomes the test's panic, with its message.
pub async fn in_blocking_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("the browser task was cancelled: {error}"),
    }
}

/// A folder that is deleted when dropped, so a failing run leaves no browser profile behind.
struct ScratchFolder(PathBuf);

impl Drop for ScratchFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs headless Chromium on `url` with a fresh profile and the `action` flags, and returns
/// what it wrote to standard output. Output goes to files, not pipes, so a large DOM cannot
/// fill a pipe and stall the browser while this thread waits for it to exit.
pub fn run_chromium(action: &[String], url: &str) -> Vec<u8> {
    let scratch = ScratchFolder(std::env::temp_dir().join(unique_name("orderstore-chromium")));
    let profile = scratch.0.join("profile");
    std::fs::create_dir_all(&profile)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", profile.display()));
    let stdout_path = scratch.0.join("stdout");
    let stderr_path = scratch.0.join("stderr");
    let create = |path: &Path| {
        std::fs::File::create(path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()))
    };
    let child = Command::new(CHROMIUM)
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(action)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(create(&stdout_path))
        .stderr(create(&stderr_path))
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {CHROMIUM}: {error}"));
    let mut browser = KillOnDrop(child);
    let status = wait_with_limit(&mut browser, CHROMIUM_TIME_LIMIT, url);
    let read = |path: &Path| {
        std::fs::read(path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
    };
    let stdout = read(&stdout_path);
    assert!(
        status.success(),
        "Chromium failed ({status}) on {url}:\n{}",
        String::from_utf8_lossy(&read(&stderr_path))
    );
    stdout
}

/// Waits for the browser to exit; fails (and the drop kills it) after `limit`.
fn wait_with_limit(browser: &mut KillOnDrop, limit: Duration, url: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        match browser.0.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => {
                assert!(
                    Instant::now() < deadline,
                    "Chromium did not finish {url} within {limit:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => panic!("cannot wait for Chromium: {error}"),
        }
    }
}
