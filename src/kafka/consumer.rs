//! The readers of the topic: one task per reader (`KAFKA_READERS`), each given its share of
//! the partitions. Which of them are read, and from where, is the lease keeper's call: it
//! sends each partition's reader a [`PartitionCommand`] through the senders returned here.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{assign_partitions, run_reader, KafkaRecord, PartitionCommand, ReaderContext};
use crate::shutdown::{Component, ShutdownManager};

/// The running readers: where to send each partition's commands, and the tasks to join.
#[derive(Debug)]
pub struct Readers {
    /// The command channel of the reader that owns each partition.
    pub commands: HashMap<i32, mpsc::UnboundedSender<PartitionCommand>>,
    /// The reader tasks.
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts `n_readers` reader tasks over `partitions` (readers beyond the number of partitions
/// are not started). Each holds a clone of `sender`; once every reader has ended, the channel
/// closes and the batch writers drain it and stop.
pub fn start_readers(
    manager: &ShutdownManager,
    context: Arc<ReaderContext>,
    partitions: &[i32],
    n_readers: usize,
    sender: mpsc::Sender<KafkaRecord>,
) -> Readers {
    let mut commands = HashMap::new();
    let mut tasks = Vec::new();
    for (index, share) in assign_partitions(partitions, n_readers)
        .into_iter()
        .enumerate()
        .filter(|(_, share)| !share.is_empty())
    {
        let (reader_commands, received) = mpsc::unbounded_channel::<PartitionCommand>();
        commands.extend(
            share
                .iter()
                .map(|partition| (*partition, reader_commands.clone())),
        );
        tasks.push(manager.spawn(
            Component::Reader(index),
            run_reader(Arc::clone(&context), received, sender.clone()),
        ));
    }
    Readers { commands, tasks }
}
