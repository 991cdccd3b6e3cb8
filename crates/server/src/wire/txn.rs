//! Requests of transactions (Kafka's transaction version 1):
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit.

use super::group::CommittedOffset;
use super::reader::{Reader, Result};

/// Who a transactional request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnProducer<'a> {
    /// The transactional id.
    pub transactional_id: &'a str,
    /// Its producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
}

fn producer<'a>(r: &mut Reader<'a>) -> Result<TxnProducer<'a>> {
    Ok(TxnProducer {
        transactional_id: r.str("transactional_id")?,
        producer_id: r.i64("producer_id")?,
        producer_epoch: r.i16("producer_epoch")?,
    })
}

/// AddPartitionsToTxn (key 24), v0–3 (v4+ is the brokers' batched form).
#[derive(Debug, Clone, PartialEq)]
pub struct AddPartitionsToTxn<'a> {
    /// The producer.
    pub producer: TxnProducer<'a>,
    /// `(topic, partitions)`.
    pub topics: Vec<(&'a str, Vec<i32>)>,
}

impl<'a> AddPartitionsToTxn<'a> {
    /// Decodes the body of a v0–3 request.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let producer = producer(r)?;
        let topics = r.array("topics", |r| {
            let name = r.str("topic")?;
            let parts = r.array("partitions", |r| r.i32("partition"))?;
            r.skip_tags()?;
            Ok((name, parts))
        })?;
        r.skip_tags()?;
        Ok(AddPartitionsToTxn { producer, topics })
    }
}

/// AddOffsetsToTxn (key 25), v0–3.
#[derive(Debug, Clone, PartialEq)]
pub struct AddOffsetsToTxn<'a> {
    /// The producer.
    pub producer: TxnProducer<'a>,
    /// The consumer group whose offsets the transaction will commit.
    pub group_id: &'a str,
}

impl<'a> AddOffsetsToTxn<'a> {
    /// Decodes the body of a v0–3 request.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let producer = producer(r)?;
        let group_id = r.str("group_id")?;
        r.skip_tags()?;
        Ok(AddOffsetsToTxn { producer, group_id })
    }
}

/// EndTxn (key 26), v0–3.
#[derive(Debug, Clone, PartialEq)]
pub struct EndTxn<'a> {
    /// The producer.
    pub producer: TxnProducer<'a>,
    /// Commit (true) or abort.
    pub committed: bool,
}

impl<'a> EndTxn<'a> {
    /// Decodes the body of a v0–3 request.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self> {
        let producer = producer(r)?;
        let committed = r.bool("committed")?;
        r.skip_tags()?;
        Ok(EndTxn {
            producer,
            committed,
        })
    }
}

/// TxnOffsetCommit (key 28), v0–3.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnOffsetCommit<'a> {
    /// The producer.
    pub producer: TxnProducer<'a>,
    /// The group.
    pub group_id: &'a str,
    /// v3+: the member's generation (−1 when not given).
    pub generation_id: i32,
    /// v3+: the member (empty when not given).
    pub member_id: &'a str,
    /// v3+: a static member's instance id.
    pub group_instance_id: Option<&'a str>,
    /// `(topic, [(partition, offset, metadata)])`.
    pub topics: Vec<(&'a str, Vec<CommittedOffset<'a>>)>,
}

impl<'a> TxnOffsetCommit<'a> {
    /// Decodes the body of a v0–3 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let transactional_id = r.str("transactional_id")?;
        let group_id = r.str("group_id")?;
        let producer_id = r.i64("producer_id")?;
        let producer_epoch = r.i16("producer_epoch")?;
        let (generation_id, member_id, group_instance_id) = if version >= 3 {
            (
                r.i32("generation_id")?,
                r.str("member_id")?,
                r.nullable_str("group_instance_id")?,
            )
        } else {
            (-1, "", None)
        };
        let topics = r.array("topics", |r| {
            let name = r.str("topic")?;
            let parts = r.array("partitions", |r| {
                let p = r.i32("partition")?;
                let offset = r.i64("committed_offset")?;
                if version >= 2 {
                    r.i32("committed_leader_epoch")?;
                }
                let meta = r.nullable_str("committed_metadata")?;
                r.skip_tags()?;
                Ok((p, offset, meta))
            })?;
            r.skip_tags()?;
            Ok((name, parts))
        })?;
        r.skip_tags()?;
        Ok(TxnOffsetCommit {
            producer: TxnProducer {
                transactional_id,
                producer_id,
                producer_epoch,
            },
            group_id,
            generation_id,
            member_id,
            group_instance_id,
            topics,
        })
    }
}
