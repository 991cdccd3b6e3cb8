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
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod clock;
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
mod reader;
mod record;
mod signal;
mod storage;
#[cfg(feature = "internals")]
pub mod testing;
mod topic;
mod transaction;
mod txn;

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::consumer::config::{ConsumerConfig, IsolationLevel, OffsetReset};
pub use crate::consumer::records::{
    ConsumerRecord, Headers, NullableHeaders, Records, RecordsIter,
};
pub use crate::consumer::state::Consumer;
pub use crate::consumer::state::RebalanceListener;
pub use crate::error::{CorruptionKind, Error, Result};
pub use crate::group::assignor::Assignor;
pub use crate::group::offsets::{ConsumerGroupMetadata, OffsetAndMetadata};
pub use crate::log::fetch::{StoredBatch, StoredBatches};
pub use crate::log::metrics::{Metrics, PartitionInfo};
pub use crate::log::options::LogOptions;
pub use crate::log::serving::{AbortedTransaction, GroupClaim, PartitionFetch};
pub use crate::log::state::Log;
pub use crate::maintain::thread::MaintenanceHandle;
pub use crate::maintain::MaintenanceReport;
pub use crate::producer::{PendingAppend, Producer};
pub use crate::reader::{Fetched, LogReader, PartitionReader, ReadRecord, WriterLock};
pub use crate::record::{Record, RecordMetadata, TopicPartition};
pub use crate::storage::policy::{RecoveryMode, SyncPolicy};
pub use crate::storage::recovery::report::{
    MissingOffsets, RecoveryReport, SkippedRecord, Truncation,
};
pub use crate::topic::config::{CleanupPolicy, Compression, TopicConfig};
pub use crate::topic::kafka_names::KAFKA_CONFIG_NAMES;
pub use crate::transaction::{Transaction, TransactionalProducer};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
