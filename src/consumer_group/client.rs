//! The consumer group's two requests, sent to its coordinator: what the group has committed
//! (OffsetFetch) and a standalone commit (OffsetCommit with generation -1 and no member). The
//! coordinator is found with FindCoordinator through any of the bootstrap brokers and kept
//! until a request fails or a broker says it moved; each request has a time limit, so a broker
//! that stops answering is an error, not a hang.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::Mutex;

use super::connection::{BrokerConnection, ConnectionError};
use super::messages;
use super::wire;
use crate::kafka::security::KafkaSecurity;

/// How long one request, or opening a connection, may take.
const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// Why the group could not be read or committed to.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// Connecting, the TLS handshake, the login, or an unreadable answer.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// No answer within the time limit.
    #[error("{broker} did not answer {request} within {limit:?}")]
    TimedOut {
        /// The broker.
        broker: String,
        /// The request.
        request: &'static str,
        /// The limit.
        limit: Duration,
    },
    /// No bootstrap broker answered FindCoordinator.
    #[error("no broker named the coordinator of group {group:?}: {last}")]
    NoCoordinator {
        /// The group.
        group: String,
        /// The last broker's error.
        last: String,
    },
    /// The broker refused the request for the whole group.
    #[error("{request} for group {group:?} answered {code_name}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Refused {
        /// The request.
        request: &'static str,
        /// The group.
        group: String,
        /// The error code.
        code: i16,
        /// Its name.
        code_name: String,
        /// The broker's own words, when it gave any.
        message: Option<String>,
    },
}

impl GroupError {
    /// Whether the error says the group has members of its own.
    pub fn is_group_in_use(&self) -> bool {
        matches!(self, GroupError::Refused { code, .. } if wire::is_group_in_use(*code))
    }
}

/// How the broker answered a commit, per partition: `Ok` or the error code.
pub type CommitAnswers = BTreeMap<i32, Result<(), i16>>;

/// A client of one consumer group on one topic.
#[derive(Debug)]
pub struct GroupClient {
    brokers: Vec<String>,
    security: KafkaSecurity,
    group: String,
    topic: String,
    coordinator: Mutex<Option<BrokerConnection>>,
}

impl GroupClient {
    /// A client of `group` for `topic`, through `brokers`; it connects on first use.
    pub fn new(
        brokers: Vec<String>,
        security: KafkaSecurity,
        group: String,
        topic: String,
    ) -> Self {
        Self {
            brokers,
            security,
            group,
            topic,
            coordinator: Mutex::new(None),
        }
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The group's committed offsets for `partitions`; a partition without one is left out.
    pub async fn committed(&self, partitions: &[i32]) -> Result<BTreeMap<i32, i64>, GroupError> {
        let (version, answer) = self
            .send(wire::OFFSET_FETCH, "OffsetFetch", |_| {
                messages::offset_fetch(&self.group, &self.topic, partitions)
            })
            .await?;
        let answer = messages::read_offset_fetch(version, &self.topic, &answer)
            .map_err(|error| self.unreadable(error))?;
        if answer.error_code != 0 {
            return Err(self.refused("OffsetFetch", answer.error_code, None).await);
        }
        let mut committed = BTreeMap::new();
        for (partition, (offset, error_code)) in answer.partitions {
            if error_code != 0 {
                return Err(self.refused("OffsetFetch", error_code, None).await);
            }
            if offset >= 0 {
                committed.insert(partition, offset);
            }
        }
        Ok(committed)
    }

    /// Commits `offsets` (partition, the offset of the next record to read) as a standalone
    /// commit, with `metadata` on each; the answer per partition.
    pub async fn commit(
        &self,
        offsets: &[(i32, i64)],
        metadata: &str,
    ) -> Result<CommitAnswers, GroupError> {
        let (version, answer) = self
            .send(wire::OFFSET_COMMIT, "OffsetCommit", |version| {
                messages::offset_commit(version, &self.group, &self.topic, offsets, metadata)
            })
            .await?;
        let answers = messages::read_offset_commit(version, &self.topic, &answer)
            .map_err(|error| self.unreadable(error))?;
        let mut result = BTreeMap::new();
        for (partition, error_code) in answers {
            if wire::is_coordinator_moved(error_code) {
                return Err(self.refused("OffsetCommit", error_code, None).await);
            }
            result.insert(
                partition,
                if error_code == 0 {
                    Ok(())
                } else {
                    Err(error_code)
                },
            );
        }
        Ok(result)
    }

    /// Sends one request to the coordinator, its body built for the version both sides speak,
    /// and returns that version and the answer. A failed request drops the connection, so the
    /// next one starts with FindCoordinator again.
    async fn send(
        &self,
        api_key: i16,
        request: &'static str,
        body: impl FnOnce(i16) -> Vec<u8>,
    ) -> Result<(i16, Vec<u8>), GroupError> {
        let mut coordinator = self.coordinator.lock().await;
        let connection = self.coordinator_connection(&mut coordinator).await?;
        let version = connection.version(api_key)?;
        let body = body(version);
        let broker = connection.broker().to_string();
        let answer =
            match tokio::time::timeout(REQUEST_LIMIT, connection.request(api_key, version, &body))
                .await
            {
                Ok(Ok(answer)) => answer,
                Ok(Err(error)) => {
                    *coordinator = None;
                    return Err(error.into());
                }
                Err(_) => {
                    *coordinator = None;
                    return Err(GroupError::TimedOut {
                        broker,
                        request,
                        limit: REQUEST_LIMIT,
                    });
                }
            };
        Ok((version, answer))
    }

    /// The coordinator's connection, found and opened when there is none.
    async fn coordinator_connection<'a>(
        &self,
        coordinator: &'a mut Option<BrokerConnection>,
    ) -> Result<&'a mut BrokerConnection, GroupError> {
        if coordinator.is_none() {
            *coordinator = Some(self.find_coordinator().await?);
        }
        coordinator
            .as_mut()
            .ok_or_else(|| GroupError::NoCoordinator {
                group: self.group.clone(),
                last: "no connection".to_string(),
            })
    }

    /// Asks the bootstrap brokers, in turn, for the group's coordinator, and connects to it
    /// (reusing the connection when the broker asked is the coordinator).
    async fn find_coordinator(&self) -> Result<BrokerConnection, GroupError> {
        let mut last = String::from("no brokers are configured");
        for broker in &self.brokers {
            match self.ask_for_coordinator(broker).await {
                Ok(connection) => return Ok(connection),
                Err(error) => last = error.to_string(),
            }
        }
        Err(GroupError::NoCoordinator {
            group: self.group.clone(),
            last,
        })
    }

    async fn ask_for_coordinator(&self, broker: &str) -> Result<BrokerConnection, GroupError> {
        let mut connection = self.open(broker).await?;
        let version = connection.version(wire::FIND_COORDINATOR)?;
        let body = messages::find_coordinator(&self.group);
        let answer = tokio::time::timeout(
            REQUEST_LIMIT,
            connection.request(wire::FIND_COORDINATOR, version, &body),
        )
        .await
        .map_err(|_| GroupError::TimedOut {
            broker: broker.to_string(),
            request: "FindCoordinator",
            limit: REQUEST_LIMIT,
        })??;
        let found = messages::read_find_coordinator(&answer)
            .map_err(|error| connection.unreadable(error))?;
        if found.error_code != 0 {
            return Err(GroupError::Refused {
                request: "FindCoordinator",
                group: self.group.clone(),
                code: found.error_code,
                code_name: wire::error_name(found.error_code),
                message: found.error_message,
            });
        }
        let address = if found.host.contains(':') {
            format!("[{}]:{}", found.host, found.port)
        } else {
            format!("{}:{}", found.host, found.port)
        };
        if address == broker {
            return Ok(connection);
        }
        self.open(&address).await
    }

    async fn open(&self, broker: &str) -> Result<BrokerConnection, GroupError> {
        tokio::time::timeout(
            REQUEST_LIMIT,
            BrokerConnection::open(broker, &self.security),
        )
        .await
        .map_err(|_| GroupError::TimedOut {
            broker: broker.to_string(),
            request: "connecting",
            limit: REQUEST_LIMIT,
        })?
        .map_err(GroupError::from)
    }

    fn unreadable(&self, error: wire::WireError) -> GroupError {
        GroupError::Connection(ConnectionError::BadAnswer {
            broker: "the coordinator".to_string(),
            reason: error.to_string(),
        })
    }

    /// The error for a refused request; a coordinator that moved is forgotten, so the next
    /// request looks it up again.
    async fn refused(
        &self,
        request: &'static str,
        code: i16,
        message: Option<String>,
    ) -> GroupError {
        if wire::is_coordinator_moved(code) {
            *self.coordinator.lock().await = None;
        }
        GroupError::Refused {
            request,
            group: self.group.clone(),
            code,
            code_name: wire::error_name(code),
            message,
        }
    }
}
