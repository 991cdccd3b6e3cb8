//! Topics: the in-memory topic (its partitions and the keyless
//! round-robin); its settings live in `config`, its name rules in `name`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::batch::foreign::{validate, Checked, Limits};
use crate::partitioner::partition_for_key;
use crate::storage::partition::Partition;

pub(crate) mod config;
pub(crate) mod kafka_names;
pub(crate) mod name;

use config::TopicConfig;
use name::INTERNAL_PREFIX;

pub(crate) struct Topic {
    pub name: Arc<str>,
    pub config: Arc<TopicConfig>,
    pub partitions: Vec<Arc<Partition>>,
    /// Round-robin counter for records without a key.
    next_keyless: AtomicU32,
    /// Set once the log's topic map no longer holds this object: the topic
    /// was deleted, or replaced by one with more partitions.
    retired: AtomicBool,
}

impl Topic {
    pub fn new(name: Arc<str>, config: Arc<TopicConfig>, partitions: Vec<Arc<Partition>>) -> Self {
        Topic {
            name,
            config,
            partitions,
            next_keyless: AtomicU32::new(0),
            retired: AtomicBool::new(false),
        }
    }

    /// Marks this object as no longer the log's current one for its name.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Whether the log's topic map still holds this object. A plain load:
    /// it lets a producer keep using a topic it looked up before without
    /// looking it up again.
    #[inline]
    pub fn is_current(&self) -> bool {
        !self.retired.load(Ordering::Acquire)
    }

    pub fn is_internal(&self) -> bool {
        self.name.starts_with(INTERNAL_PREFIX)
    }

    /// Validates record batches written by an outside client (Kafka's
    /// bytes) for partition `p` of this topic: refused for an internal
    /// topic (its records are the log's own: group offsets, transaction
    /// decisions), and checked batch by batch against the topic's limits.
    /// `transactional`: whether transactional batches are accepted (only
    /// through a transaction's own path).
    pub fn validate_foreign(
        &self,
        p: u32,
        batches: &[u8],
        transactional: bool,
    ) -> Result<Vec<Checked>> {
        self.partition(p)?;
        if self.is_internal() {
            return Err(Error::InvalidTopicName {
                name: self.name.to_string(),
                reason: "internal topics are written by the log only",
            });
        }
        let limits = Limits {
            max_record_bytes: self.config.max_record_bytes,
            transactional,
        };
        validate(batches, limits).map_err(|r| match r.too_large {
            Some(size) => Error::RecordTooLarge {
                size,
                max: limits.max_record_bytes,
            },
            None => Error::InvalidKafkaBatch {
                topic: self.name.to_string(),
                partition: p,
                position: r.position as u64,
                kind: r.kind,
            },
        })
    }

    pub fn partition(&self, p: u32) -> Result<&Arc<Partition>> {
        self.partitions
            .get(p as usize)
            .ok_or_else(|| Error::UnknownPartition {
                topic: self.name.to_string(),
                partition: p,
                partitions: self.partitions.len() as u32,
            })
    }

    /// The partition for a record: murmur2 of the key, or round-robin.
    pub fn choose(&self, key: Option<&[u8]>) -> u32 {
        let n = self.partitions.len() as u32;
        match key {
            Some(k) => partition_for_key(k, n),
            None => self.next_keyless.fetch_add(1, Ordering::Relaxed) % n,
        }
    }
}
