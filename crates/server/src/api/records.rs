//! Produce, ListOffsets and InitProducerId.
//!
//! A produced batch goes through the log's validate-and-append path as the
//! client encoded it (no re-encoding); idempotent producers' sequence
//! numbers are checked there, so a client's retry is stored once. The
//! acknowledgement follows the log's sync policy whatever `acks` says: a
//! single-copy log has no replicas to wait for, and it never acknowledges
//! more than its policy guarantees.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    InitProducerIdResponse, ListOffsetsResponse, ProduceResponse, ProducerId, TopicName,
};
use std::time::Duration;

use streamlog::{Error, IsolationLevel, TopicPartition};

use super::errors::{self, code};
use super::{encode, sb, Ctx, Reply};
use crate::wire::data::{InitProducerId, ListOffsets, Produce};
use crate::wire::Header;

/// The producer id and epoch in a record batch's header (v2: bytes 43–52).
fn batch_producer(batches: &[u8]) -> Option<(i64, i16)> {
    let pid = i64::from_be_bytes(batches.get(43..51)?.try_into().ok()?);
    let epoch = i16::from_be_bytes(batches.get(51..53)?.try_into().ok()?);
    Some((pid, epoch))
}

fn append(
    ctx: &Ctx,
    transactional_id: Option<&str>,
    topic: &str,
    p: i32,
    records: Option<&[u8]>,
) -> Result<(i64, i64), Error> {
    let partition = u32::try_from(p).map_err(|_| Error::UnknownPartition {
        topic: topic.to_owned(),
        partition: 0,
        partitions: 0,
    })?;
    let records = records.unwrap_or(&[]);
    let offsets = match transactional_id {
        None => ctx
            .log
            .producer()
            .append_kafka_batches(topic, partition, records)?,
        Some(id) => {
            // A short input gets the validator's precise error below.
            let (pid, epoch) = batch_producer(records).unwrap_or((-1, -1));
            ctx.log
                .append_transactional_batches(id, pid, epoch, topic, partition, records)?
        }
    };
    let start = ctx
        .log
        .partition_info(&TopicPartition::new(topic, partition))
        .map_or(-1, |i| i.start_offset as i64);
    Ok((offsets.first().map_or(-1, |&o| o as i64), start))
}

pub(super) fn produce(ctx: &Ctx, h: &Header<'_>, r: Produce<'_>) -> Reply {
    let acks_ok = (-1..=1).contains(&r.acks);
    let mut failed = false;
    let responses = r
        .topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|&(p, records)| {
                    let resp = PartitionProduceResponse::default()
                        .with_index(p)
                        .with_log_append_time_ms(-1);
                    let result = if !acks_ok {
                        Err(errors::INVALID_REQUIRED_ACKS)
                    } else {
                        append(ctx, r.transactional_id, t.name, p, records).map_err(|e| {
                            match r.transactional_id {
                                Some(_) => super::txn::txn_code(&e),
                                None => code(&e),
                            }
                        })
                    };
                    match result {
                        Ok((base, start)) => resp
                            .with_base_offset(base)
                            .with_log_start_offset(if h.api_version >= 5 { start } else { -1 }),
                        Err(c) => {
                            failed = true;
                            resp.with_error_code(c)
                                .with_base_offset(-1)
                                .with_log_start_offset(-1)
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(TopicName(sb(t.name)))
                .with_partition_responses(parts)
        })
        .collect();
    if r.acks == 0 {
        // Kafka sends nothing to an acks=0 producer, and closes the
        // connection when a write failed so that the client notices.
        return if failed { Reply::Close } else { Reply::Silent };
    }
    encode(h, &ProduceResponse::default().with_responses(responses))
}

/// `timestamp`: −2 earliest, −1 latest (the last stable offset for
/// read_committed), −3 the record with the largest timestamp, otherwise the
/// first record at or after that time.
fn list_one(
    ctx: &Ctx,
    tp: &TopicPartition,
    timestamp: i64,
    iso: IsolationLevel,
) -> Result<(i64, i64), Error> {
    let info = ctx.log.partition_info(tp)?;
    match timestamp {
        -2 => Ok((-1, info.start_offset as i64)),
        -1 => {
            let end = match iso {
                IsolationLevel::ReadCommitted => ctx
                    .log
                    .fetch_partition(tp, info.end_offset, 1, iso)
                    .map_or(info.end_offset, |f| f.last_stable_offset),
                _ => info.end_offset,
            };
            Ok((-1, end as i64))
        }
        -3 => match ctx.log.max_timestamp_offset(tp)? {
            Some((offset, ts)) => Ok((ts, offset as i64)),
            None => Ok((-1, -1)),
        },
        t if t < 0 => Err(Error::InvalidConfig {
            what: format!("timestamp {t}"),
        }),
        t => match ctx.log.offset_for_timestamp(tp, t)? {
            Some(o) => Ok((ctx.log.timestamp_at(tp, o)?.unwrap_or(t), o as i64)),
            None => Ok((-1, -1)),
        },
    }
}

pub(super) fn list_offsets(ctx: &Ctx, h: &Header<'_>, r: ListOffsets<'_>) -> Reply {
    let iso = if r.isolation_level == 1 {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let topics =
        r.topics
            .iter()
            .map(|(name, parts)| {
                let parts = parts
                    .iter()
                    .map(|&(p, ts)| {
                        let resp = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p)
                            .with_leader_epoch(if h.api_version >= 4 { 0 } else { -1 });
                        let result = match u32::try_from(p) {
                            Err(_) => Err(errors::UNKNOWN_TOPIC_OR_PARTITION),
                            Ok(p) => list_one(ctx, &TopicPartition::new(*name, p), ts, iso)
                                .map_err(|e| match e {
                                    Error::InvalidConfig { .. } => errors::INVALID_REQUEST,
                                    e => code(&e),
                                }),
                        };
                        match result {
                            Ok((t, o)) => resp.with_timestamp(t).with_offset(o),
                            Err(c) => resp.with_error_code(c).with_timestamp(-1).with_offset(-1),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(TopicName(sb(*name)))
                    .with_partitions(parts)
            })
            .collect();
    encode(h, &ListOffsetsResponse::default().with_topics(topics))
}

pub(super) fn init_producer_id(ctx: &Ctx, h: &Header<'_>, r: InitProducerId<'_>) -> Reply {
    let resp = InitProducerIdResponse::default();
    let resp = if let Some(id) = r.transactional_id {
        let timeout = Duration::from_millis(r.transaction_timeout_ms.max(0) as u64);
        let current = (r.producer_id >= 0).then_some((r.producer_id, r.producer_epoch));
        match ctx.log.init_producer_id(id, timeout, current) {
            Ok((pid, epoch)) => resp
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(e) => resp
                .with_error_code(super::txn::txn_code(&e))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        }
    } else {
        match ctx.log.allocate_producer_id() {
            Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
            Err(e) => resp
                .with_error_code(code(&e))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        }
    };
    encode(h, &resp)
}
