//! # streamlog
//!
//! An embeddable, single-process streaming log: Kafka's storage and client
//! model as a Rust library. A program opens a directory and gets topics,
//! partitions, producers and consumers, through synchronous calls from its
//! own threads, with no broker and no background threads.
//!
//! ```
//! use streamlog::{Log, TopicConfig, Record, ConsumerConfig, OffsetReset, TopicPartition};
//! use std::time::Duration;
//!
//! let log = Log::temporary()?;
//! log.create_topic("orders", TopicConfig::new().partitions(2))?;
//! let producer = log.producer();
//! let md = producer.send("orders", Record::new(b"v1").key(b"k1").header("h", b"x"))?;
//!
//! let mut reader = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
//! reader.assign(&[TopicPartition::new("orders", md.partition())])?;
//! let records = reader.poll(Duration::from_millis(100))?;
//! let r = records.get(0).expect("one record");
//! assert_eq!((r.key(), r.value(), r.offset()), (Some(&b"k1"[..]), Some(&b"v1"[..]), 0));
//! assert_eq!(r.headers().collect::<Vec<_>>(), vec![("h", &b"x"[..])]);
//! # Ok::<(), streamlog::Error>(())
//! ```
//!
//! See README.md for the durability contract and ARCHITECTURE.md for the
//! design; FORMAT.md specifies every byte on disk.

#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod consumer;
mod error;
mod format;
mod group;
#[cfg(feature = "inspect")]
pub mod inspect;
#[cfg(feature = "internals")]
pub mod internals;
mod io;
mod log;
mod maintain;
mod partitioner;
mod producer;
mod record;
mod storage;
mod topic;

#[cfg(test)]
mod power_cut_tests;
#[cfg(test)]
mod tests;

pub use crate::config::{
    Assignor, CleanupPolicy, Clock, Compression, ConsumerConfig, LogOptions, ManualClock,
    OffsetReset, RecoveryMode, SyncPolicy, SystemClock, TopicConfig, DEFAULT_MAX_MAPPED_SEGMENTS,
};
pub use crate::consumer::{Consumer, RebalanceListener};
pub use crate::error::{CorruptionKind, Error, Result};
pub use crate::group::offsets::OffsetAndMetadata;
pub use crate::log::{Log, Metrics, PartitionInfo};
pub use crate::maintain::{MaintenanceHandle, MaintenanceReport};
pub use crate::producer::Producer;
pub use crate::record::{
    ConsumerRecord, Headers, Record, RecordMetadata, Records, RecordsIter, TopicPartition,
};
pub use crate::storage::recovery::{RecoveryReport, Truncation};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
