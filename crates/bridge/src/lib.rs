//! # streamlog-bridge: outgrowing one machine
//!
//! Moves a streamlog [`Log`](streamlog::Log) into an Apache Kafka cluster,
//! and a Kafka cluster's topics into a Log, exactly once, and lets the same
//! application code run on either side.
//!
//! - [`MirrorToKafka`] (`streamlog mirror DIR --to BOOTSTRAP`): copies a
//!   Log's committed records into Kafka in Kafka transactions that carry
//!   the mirror's progress, so a mirror killed at any moment resumes with
//!   no duplicate and no gap; translates the Log's group offsets exactly;
//!   `cutover` waits for the Log's writers to go and finishes the move.
//! - [`MirrorFromKafka`] (`streamlog mirror --from BOOTSTRAP DIR`): reads
//!   `read_committed` from Kafka and appends each batch in a streamlog
//!   transaction together with the source offsets.
//! - [`clients`]: the traits [`Produce`] and [`Consume`], implemented by
//!   streamlog's `Producer` and `Consumer` and by [`KafkaProducer`] and
//!   [`KafkaConsumer`] (librdkafka), so an application is written once.
//!
//! The Kafka client is librdkafka (the `rdkafka` crate), built from its
//! bundled C source: building this crate needs a C compiler, `make` and
//! `perl`. The core `streamlog` crate never depends on it.

pub mod clients;
mod error;
pub mod from_kafka;
pub mod kafka;
pub mod progress;
pub mod to_kafka;

pub use clients::{
    Consume, ConsumerRecord, KafkaConsumer, KafkaProducer, Produce, ProducerRecord, RecordPosition,
};
pub use error::{Error, Result};
pub use from_kafka::{FromKafkaReport, MirrorFromKafka};
pub use to_kafka::{GroupTranslation, MirrorReport, MirrorToKafka};
