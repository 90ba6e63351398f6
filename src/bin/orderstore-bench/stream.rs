//! A steady stream of generated orders into the benchmark's topic, for the fleet benchmark's
//! handover: every partition has records to move on around a SIGKILL.

use std::sync::Arc;

use anyhow::bail;
use orderstore::events::Events;
use orderstore::fake_data::writer::{self, WriterOptions, WriterProgress};
use orderstore::shutdown::ShutdownManager;
use rskafka::client::partition::PartitionClient;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Orders per second the stream produces.
pub const STREAM_RATE: f64 = 1_000.0;

/// A steady stream of generated orders into the topic, until stopped or dropped.
pub struct Stream {
    manager: ShutdownManager,
    writers: Vec<tokio::task::JoinHandle<()>>,
    progress: Arc<WriterProgress>,
    _stop_on_drop: DropGuard,
}

impl Stream {
    /// Starts producing [`STREAM_RATE`] orders a second to `producers`.
    pub fn start(producers: Vec<Arc<PartitionClient>>) -> Stream {
        let token = CancellationToken::new();
        let manager = ShutdownManager::new(token.clone());
        let progress = Arc::new(WriterProgress::default());
        let options = WriterOptions {
            tasks: 1,
            rate: STREAM_RATE,
            invalid_ratio: 0.0,
            count: None,
        };
        let writers = writer::start_writers(
            &manager,
            producers,
            options,
            Arc::clone(&progress),
            Arc::new(Events::default()),
        );
        Stream {
            manager,
            writers,
            progress,
            _stop_on_drop: token.drop_guard(),
        }
    }

    /// Stops the stream and returns how many orders it produced.
    pub async fn stop(self) -> anyhow::Result<u64> {
        self.manager.token().cancel();
        for writer in self.writers {
            writer.await?;
        }
        if let Some(failure) = self.manager.take_failure() {
            bail!("the stream failed: {failure}");
        }
        Ok(self.progress.produced())
    }
}
