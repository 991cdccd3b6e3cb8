//! The transaction APIs (Kafka's transaction version 1): InitProducerId
//! with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit and EndTxn, on the log's transaction coordinator (see
//! `Log::init_producer_id` and its siblings). This server is the
//! coordinator of every transactional id (FindCoordinator with key type 1
//! names it).

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnResponse, AddPartitionsToTxnResponse, EndTxnResponse, TopicName,
    TxnOffsetCommitResponse,
};
use streamlog::{Error, OffsetAndMetadata, TopicPartition};

use super::errors::{self, code};
use super::{encode, sb, Ctx, Reply};
use crate::wire::txn::{AddOffsetsToTxn, AddPartitionsToTxn, EndTxn, TxnOffsetCommit};
use crate::wire::Header;

/// The error code of a transaction call's failure.
pub(super) fn txn_code(e: &Error) -> i16 {
    match e {
        Error::ProducerFenced { .. } | Error::TransactionTimedOut { .. } => {
            errors::INVALID_PRODUCER_EPOCH
        }
        Error::InvalidConfig { .. } => errors::INVALID_TRANSACTION_TIMEOUT,
        e => code(e),
    }
}

pub(super) fn add_partitions_to_txn(ctx: &Ctx, h: &Header<'_>, r: AddPartitionsToTxn<'_>) -> Reply {
    let p = r.producer;
    let mut tps = Vec::new();
    let mut bad = None;
    for (t, parts) in &r.topics {
        for &pi in parts {
            match u32::try_from(pi) {
                Ok(pi) => tps.push(TopicPartition::new(*t, pi)),
                Err(_) => bad = Some(errors::UNKNOWN_TOPIC_OR_PARTITION),
            }
        }
    }
    // All or nothing, as Kafka answers: one error for every partition.
    let c = match bad {
        Some(c) => c,
        None => match ctx.log.add_partitions_to_txn(
            p.transactional_id,
            p.producer_id,
            p.producer_epoch,
            &tps,
        ) {
            Ok(()) => errors::NONE,
            Err(e) => txn_code(&e),
        },
    };
    let results = r
        .topics
        .iter()
        .map(|(t, parts)| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(sb(*t)))
                .with_results_by_partition(
                    parts
                        .iter()
                        .map(|&pi| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(pi)
                                .with_partition_error_code(c)
                        })
                        .collect(),
                )
        })
        .collect();
    encode(
        h,
        &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
    )
}

pub(super) fn add_offsets_to_txn(ctx: &Ctx, h: &Header<'_>, r: AddOffsetsToTxn<'_>) -> Reply {
    let p = r.producer;
    let c = match ctx.log.add_offsets_to_txn(
        p.transactional_id,
        p.producer_id,
        p.producer_epoch,
        r.group_id,
    ) {
        Ok(()) => errors::NONE,
        Err(e) => txn_code(&e),
    };
    encode(h, &AddOffsetsToTxnResponse::default().with_error_code(c))
}

pub(super) fn txn_offset_commit(ctx: &Ctx, h: &Header<'_>, r: TxnOffsetCommit<'_>) -> Reply {
    let p = r.producer;
    let mut list = Vec::new();
    let mut c = errors::NONE;
    for (t, parts) in &r.topics {
        for &(pi, offset, meta) in parts {
            match (u32::try_from(pi), u64::try_from(offset)) {
                (Ok(pi), Ok(o)) => {
                    let mut om = OffsetAndMetadata::new(o);
                    if let Some(m) = meta {
                        om = om.metadata(m);
                    }
                    list.push((TopicPartition::new(*t, pi), om));
                }
                _ => c = errors::UNKNOWN_TOPIC_OR_PARTITION,
            }
        }
    }
    // A member's generation (v3+) is checked now, as Kafka checks it.
    if c == errors::NONE && (r.generation_id >= 0 || !r.member_id.is_empty()) {
        c = match ctx.groups.get(r.group_id) {
            Some(g) => g.validate(r.member_id, r.group_instance_id, r.generation_id),
            None => errors::UNKNOWN_MEMBER_ID,
        };
    }
    if c == errors::NONE {
        c = match ctx.log.txn_offset_commit(
            p.transactional_id,
            p.producer_id,
            p.producer_epoch,
            r.group_id,
            &list,
        ) {
            Ok(()) => errors::NONE,
            Err(e) => txn_code(&e),
        };
    }
    let topics = r
        .topics
        .iter()
        .map(|(t, parts)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(TopicName(sb(*t)))
                .with_partitions(
                    parts
                        .iter()
                        .map(|&(pi, _, _)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(pi)
                                .with_error_code(c)
                        })
                        .collect(),
                )
        })
        .collect();
    encode(h, &TxnOffsetCommitResponse::default().with_topics(topics))
}

pub(super) fn end_txn(ctx: &Ctx, h: &Header<'_>, r: EndTxn<'_>) -> Reply {
    let p = r.producer;
    let c = match ctx.log.end_txn(
        p.transactional_id,
        p.producer_id,
        p.producer_epoch,
        r.committed,
    ) {
        Ok(()) => errors::NONE,
        Err(e) => txn_code(&e),
    };
    encode(h, &EndTxnResponse::default().with_error_code(c))
}
