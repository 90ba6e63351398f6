//! A probe of the disk under PostgreSQL: while the freshness stream runs, a thread writes
//! 8 KiB into a file beside the cluster and `fdatasync`s it every [`EVERY`], and keeps each
//! call that took longer than [`SLOW`]. Every order is durable in PostgreSQL before it is
//! served, so a commit cannot return before the disk does; the probe shows, from outside
//! PostgreSQL and orderstore, when the disk itself stalled.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the probe writes and syncs.
const EVERY: Duration = Duration::from_millis(20);

/// A sync slower than this is kept.
pub const SLOW: Duration = Duration::from_millis(50);

/// Bytes written per sync, as a small commit writes.
const WRITE: usize = 8 << 10;

/// The probe's file holds this many writes, written in turn.
const SLOTS: u64 = 128;

/// One slow `fdatasync`.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    /// From the stream's start to the call.
    pub at: Duration,
    /// How long it took.
    pub took: Duration,
}

/// The running probe.
pub struct FsyncProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<io::Result<(u64, Vec<Stall>)>>,
}

impl FsyncProbe {
    /// Starts probing in `dir`, timing from `started`. The file is written whole and synced
    /// first, so the probe's syncs write data only, as PostgreSQL's WAL syncs mostly do.
    pub fn start(dir: &Path, started: Instant) -> io::Result<Self> {
        let path = dir.join("fsync-probe");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        let block = vec![b'x'; WRITE];
        for slot in 0..SLOTS {
            file.write_all_at(&block, slot * WRITE as u64)?;
        }
        file.sync_all()?;
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&stop);
        let thread = std::thread::spawn(move || probe(&file, &block, started, &running));
        Ok(Self { stop, thread })
    }

    /// Stops the probe; returns how many syncs it made and the slow ones.
    pub fn stop(self) -> io::Result<(u64, Vec<Stall>)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| io::Error::other("the fsync probe panicked"))?
    }
}

fn probe(
    file: &File,
    block: &[u8],
    started: Instant,
    stop: &AtomicBool,
) -> io::Result<(u64, Vec<Stall>)> {
    let mut stalls = Vec::new();
    let mut n_syncs = 0;
    while !stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        file.write_all_at(block, (n_syncs % SLOTS) * WRITE as u64)?;
        file.sync_data()?;
        let took = began.elapsed();
        n_syncs += 1;
        if took > SLOW {
            stalls.push(Stall {
                at: began - started,
                took,
            });
        }
        std::thread::sleep(EVERY.saturating_sub(took));
    }
    Ok((n_syncs, stalls))
}
