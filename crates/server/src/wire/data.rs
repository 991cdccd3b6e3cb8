//! Requests that move records and offsets: Produce, Fetch, ListOffsets,
//! Metadata, InitProducerId, OffsetForLeaderEpoch.

use super::reader::{Reader, Result};

/// Produce (key 0), v3–11.
#[derive(Debug, Clone, PartialEq)]
pub struct Produce<'a> {
    /// The transaction, for a transactional producer.
    pub transactional_id: Option<&'a str>,
    /// 0: no response; 1: the leader's write; −1: every replica's.
    pub acks: i16,
    /// How long the client waits.
    pub timeout_ms: i32,
    /// Record batches per partition.
    pub topics: Vec<ProduceTopic<'a>>,
}

/// One topic of a [`Produce`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceTopic<'a> {
    /// Its name.
    pub name: &'a str,
    /// `(partition, record batches)`.
    pub partitions: Vec<(i32, Option<&'a [u8]>)>,
}

impl<'a> Produce<'a> {
    /// Decodes the body of a v3–11 request.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let transactional_id = r.nullable_str("transactional_id")?;
        let acks = r.i16("acks")?;
        let timeout_ms = r.i32("timeout_ms")?;
        let topics = r.array("topic_data", |r| {
            let name = r.str("topic name")?;
            let partitions = r.array("partition_data", |r| {
                let p = r.i32("partition index")?;
                let records = r.nullable_bytes("records")?;
                r.skip_tags()?;
                Ok((p, records))
            })?;
            r.skip_tags()?;
            Ok(ProduceTopic { name, partitions })
        })?;
        r.skip_tags()?;
        Ok(Produce {
            transactional_id,
            acks,
            timeout_ms,
            topics,
        })
    }
}

/// Fetch (key 1), v4–12.
#[derive(Debug, Clone, PartialEq)]
pub struct Fetch<'a> {
    /// How long to wait for `min_bytes`.
    pub max_wait_ms: i32,
    /// The least data worth answering with before `max_wait_ms`.
    pub min_bytes: i32,
    /// A cap on the response's record bytes (at least one batch is sent).
    pub max_bytes: i32,
    /// 0: read uncommitted; 1: read committed.
    pub isolation_level: i8,
    /// Partitions to read.
    pub topics: Vec<FetchTopic<'a>>,
}

/// One topic of a [`Fetch`].
#[derive(Debug, Clone, PartialEq)]
pub struct FetchTopic<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its partitions.
    pub partitions: Vec<FetchPartition>,
}

/// One partition of a [`Fetch`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FetchPartition {
    /// The partition.
    pub partition: i32,
    /// Where to read from.
    pub fetch_offset: i64,
    /// A cap on this partition's bytes.
    pub partition_max_bytes: i32,
}

impl<'a> Fetch<'a> {
    /// Decodes the body of a v4–12 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let _replica_id = r.i32("replica_id")?;
        let max_wait_ms = r.i32("max_wait_ms")?;
        let min_bytes = r.i32("min_bytes")?;
        let max_bytes = if version >= 3 {
            r.i32("max_bytes")?
        } else {
            i32::MAX
        };
        let isolation_level = r.i8("isolation_level")?;
        if version >= 7 {
            let _session_id = r.i32("session_id")?;
            let _session_epoch = r.i32("session_epoch")?;
        }
        let topics = r.array("topics", |r| {
            let name = r.str("topic")?;
            let partitions = r.array("partitions", |r| {
                let partition = r.i32("partition")?;
                if version >= 9 {
                    r.i32("current_leader_epoch")?;
                }
                let fetch_offset = r.i64("fetch_offset")?;
                if version >= 12 {
                    r.i32("last_fetched_epoch")?;
                }
                if version >= 5 {
                    r.i64("log_start_offset")?;
                }
                let partition_max_bytes = r.i32("partition_max_bytes")?;
                r.skip_tags()?;
                Ok(FetchPartition {
                    partition,
                    fetch_offset,
                    partition_max_bytes,
                })
            })?;
            r.skip_tags()?;
            Ok(FetchTopic { name, partitions })
        })?;
        if version >= 7 {
            // Incremental fetch sessions are not offered (session id 0), so
            // a client has nothing to forget; read past them.
            r.array("forgotten_topics_data", |r| {
                r.str("topic")?;
                r.array("partitions", |r| r.i32("partition"))?;
                r.skip_tags()
            })?;
        }
        if version >= 11 {
            r.str("rack_id")?;
        }
        r.skip_tags()?;
        Ok(Fetch {
            max_wait_ms,
            min_bytes,
            max_bytes,
            isolation_level,
            topics,
        })
    }
}

/// ListOffsets (key 2), v1–7.
#[derive(Debug, Clone, PartialEq)]
pub struct ListOffsets<'a> {
    /// 0: read uncommitted; 1: read committed (latest is then the LSO).
    pub isolation_level: i8,
    /// `(topic, [(partition, timestamp)])`: −1 latest, −2 earliest, −3
    /// the record with the largest timestamp, else a time in ms.
    pub topics: Vec<(&'a str, Vec<(i32, i64)>)>,
}

impl<'a> ListOffsets<'a> {
    /// Decodes the body of a v1–7 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let _replica_id = r.i32("replica_id")?;
        let isolation_level = if version >= 2 {
            r.i8("isolation_level")?
        } else {
            0
        };
        let topics = r.array("topics", |r| {
            let name = r.str("topic")?;
            let parts = r.array("partitions", |r| {
                let p = r.i32("partition")?;
                if version >= 4 {
                    r.i32("current_leader_epoch")?;
                }
                let ts = r.i64("timestamp")?;
                r.skip_tags()?;
                Ok((p, ts))
            })?;
            r.skip_tags()?;
            Ok((name, parts))
        })?;
        r.skip_tags()?;
        Ok(ListOffsets {
            isolation_level,
            topics,
        })
    }
}

/// Metadata (key 3), v0–12.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata<'a> {
    /// The topics asked about; `None` for all of them.
    pub topics: Option<Vec<&'a str>>,
    /// Whether the client allows unknown topics to be created.
    pub allow_auto_topic_creation: bool,
}

impl<'a> Metadata<'a> {
    /// Decodes the body of a v0–12 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let topics = r.nullable_array("topics", |r| {
            if version >= 10 {
                r.uuid("topic_id")?;
            }
            let name = r.str("topic name")?;
            r.skip_tags()?;
            Ok(name)
        })?;
        // v0 has no null: an empty list means every topic.
        let topics = match topics {
            Some(t) if t.is_empty() && version == 0 => None,
            t => t,
        };
        let allow_auto_topic_creation = if version >= 4 {
            r.bool("allow_auto_topic_creation")?
        } else {
            true
        };
        if (8..=10).contains(&version) {
            r.bool("include_cluster_authorized_operations")?;
        }
        if version >= 8 {
            r.bool("include_topic_authorized_operations")?;
        }
        r.skip_tags()?;
        Ok(Metadata {
            topics,
            allow_auto_topic_creation,
        })
    }
}

/// InitProducerId (key 22), v0–4.
#[derive(Debug, Clone, PartialEq)]
pub struct InitProducerId<'a> {
    /// The transaction id; `None` for an idempotent producer.
    pub transactional_id: Option<&'a str>,
    /// The transaction timeout.
    pub transaction_timeout_ms: i32,
    /// v3+: the id the client had (−1 for none).
    pub producer_id: i64,
    /// v3+: its epoch.
    pub producer_epoch: i16,
}

impl<'a> InitProducerId<'a> {
    /// Decodes the body of a v0–4 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let transactional_id = r.nullable_str("transactional_id")?;
        let transaction_timeout_ms = r.i32("transaction_timeout_ms")?;
        let (producer_id, producer_epoch) = if version >= 3 {
            (r.i64("producer_id")?, r.i16("producer_epoch")?)
        } else {
            (-1, -1)
        };
        r.skip_tags()?;
        Ok(InitProducerId {
            transactional_id,
            transaction_timeout_ms,
            producer_id,
            producer_epoch,
        })
    }
}

/// OffsetForLeaderEpoch (key 23), v2–4: `(topic, [(partition, epoch)])`.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetForLeaderEpoch<'a> {
    /// The partitions and the leader epoch asked about in each.
    pub topics: Vec<(&'a str, Vec<(i32, i32)>)>,
}

impl<'a> OffsetForLeaderEpoch<'a> {
    /// Decodes the body of a v2–4 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        if version >= 3 {
            r.i32("replica_id")?;
        }
        let topics = r.array("topics", |r| {
            let name = r.str("topic")?;
            let parts = r.array("partitions", |r| {
                let p = r.i32("partition")?;
                r.i32("current_leader_epoch")?;
                let epoch = r.i32("leader_epoch")?;
                r.skip_tags()?;
                Ok((p, epoch))
            })?;
            r.skip_tags()?;
            Ok((name, parts))
        })?;
        r.skip_tags()?;
        Ok(OffsetForLeaderEpoch { topics })
    }
}
