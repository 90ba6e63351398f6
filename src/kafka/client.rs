//! Connecting to the brokers (with `KAFKA_SECURITY_PROTOCOL`'s TLS and SASL) and making sure
//! the topic exists.

use std::time::Duration;

use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::{Client, ClientBuilder};
use rskafka::BackoffConfig;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::Settings;
use crate::events::{Events, KafkaConnectFailed};
use crate::state::ServiceState;

/// rskafka's own retries inside one call: short steps, and a deadline so that a refused login
/// or an unreachable broker at connection time comes back to our loop, which logs it
/// (rskafka's own retries are silent at the default log level), tells readiness, and keeps
/// retrying. The deadline counts only rskafka's sleeps, and a call can nest several retry
/// loops, so it does not bound a call's time: the readers put a time limit of their own on
/// each fetch (`reader.rs`, `FETCH_GRACE`).
fn client_backoff() -> BackoffConfig {
    BackoffConfig {
        init_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        base: 2.0,
        deadline: Some(Duration::from_secs(8)),
    }
}

/// Connects to the brokers, waiting out an outage or a refused login (each failure is one
/// [`KafkaConnectFailed`] event: what failed, against which brokers); `None` if shutdown came
/// first. Each failure also tells `state` why Kafka is unreachable, for readiness.
pub async fn connect(
    settings: &Settings,
    events: &Events,
    state: &ServiceState,
    shutdown: &CancellationToken,
) -> Option<Client> {
    let mut backoff = Backoff::for_outages();
    loop {
        let builder = ClientBuilder::new(settings.kafka.brokers.clone())
            .client_id("orderstore")
            .backoff_config(client_backoff());
        let attempt = settings.kafka.security.apply(builder).build();
        let error = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return None,
            result = attempt => match result {
                Ok(client) => return Some(client),
                Err(error) => error.to_string(),
            },
        };
        let what = settings.kafka.security.failure_kind(&error);
        state.kafka_failed(format!(
            "{what} at {}: {error}",
            settings.kafka.brokers.join(",")
        ));
        events.emit(KafkaConnectFailed {
            brokers: &settings.kafka.brokers,
            what: &what,
            error: &error,
        });
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return None,
            _ = backoff.wait() => {}
        }
    }
}

/// Makes sure `topic` exists, creating it with the configured partitions when it does not,
/// and returns its partitions.
pub async fn ensure_topic(
    client: &Client,
    topic: &str,
    settings: &Settings,
) -> Result<Vec<i32>, KafkaError> {
    for attempt in 0.. {
        let topics = client.list_topics().await?;
        if let Some(found) = topics.into_iter().find(|found| found.name == topic) {
            if !found.partitions.is_empty() {
                return Ok(found.partitions.into_iter().collect());
            }
        } else if attempt == 0 {
            tracing::info!(
                topic,
                partitions = settings.kafka.partitions,
                "creating the missing topic"
            );
            let controller = client.controller_client()?;
            let created = controller.create_topic(
                topic,
                settings.kafka.partitions,
                settings.kafka.replication_factor,
                10_000,
            );
            match created.await {
                Ok(()) => {}
                Err(KafkaError::ServerError {
                    protocol_error: ProtocolError::TopicAlreadyExists,
                    ..
                }) => {}
                Err(error) => return Err(error),
            }
        }
        // A new topic takes a moment to show in the metadata.
        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1).min(10))).await;
    }
    unreachable!("the loop above only ends by returning")
}
