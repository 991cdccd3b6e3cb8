//! OffsetCommit and OffsetFetch: a group's offsets live in the log's
//! `__consumer_offsets`, shared with in-process consumers. A member's
//! commit is checked against its generation under the group's lock; a
//! commit from outside a group (generation −1, no member id) is accepted
//! while the group has no members.

use std::collections::{HashMap, HashSet};

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetCommitResponse, OffsetFetchResponse, TopicName};
use streamlog::{Error, OffsetAndMetadata, TopicPartition};

use super::errors::{self, code};
use super::{encode, sb, Ctx, Reply};
use crate::wire::group::{OffsetCommit, OffsetFetch, TopicPartitions};
use crate::wire::Header;

pub(super) fn offset_commit(ctx: &Ctx, h: &Header<'_>, r: OffsetCommit<'_>) -> Reply {
    let mut list = Vec::new();
    let mut bad_partition = HashSet::new();
    for (topic, parts) in &r.topics {
        for &(p, offset, meta) in parts {
            match (u32::try_from(p), u64::try_from(offset)) {
                (Ok(p), Ok(o)) => {
                    let mut om = OffsetAndMetadata::new(o);
                    if let Some(m) = meta {
                        om = om.metadata(m);
                    }
                    list.push((TopicPartition::new(*topic, p), om));
                }
                _ => {
                    bad_partition.insert((*topic, p));
                }
            }
        }
    }
    let outcome: Result<(), i16> = if r.group_id.is_empty() {
        Err(errors::INVALID_GROUP_ID)
    } else {
        let group = ctx.groups.group(r.group_id);
        group
            .commit(r.member_id, r.group_instance_id, r.generation_id, || {
                ctx.log.commit_offsets(r.group_id, &list)
            })
            .and_then(|res| {
                res.map_err(|e| match e {
                    // In-process members hold the group.
                    Error::CommitFailed { .. } => errors::UNKNOWN_MEMBER_ID,
                    e => code(&e),
                })
            })
    };
    let topics = r
        .topics
        .iter()
        .map(|(topic, parts)| {
            let parts = parts
                .iter()
                .map(|&(p, _, _)| {
                    let c = if bad_partition.contains(&(*topic, p)) {
                        errors::UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        outcome.err().unwrap_or(errors::NONE)
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(c)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(TopicName(sb(*topic)))
                .with_partitions(parts)
        })
        .collect();
    encode(h, &OffsetCommitResponse::default().with_topics(topics))
}

/// `(topic, [(partition, offset, metadata)])` for a group: the partitions
/// asked for (−1 where nothing is committed), or every committed one.
type GroupOffsets = Vec<(String, Vec<(i32, i64, String)>)>;

fn group_offsets(
    ctx: &Ctx,
    group: &str,
    topics: &Option<Vec<TopicPartitions<'_>>>,
) -> GroupOffsets {
    let committed = ctx.log.committed_offsets(group);
    let by_tp: HashMap<(&str, i64), &OffsetAndMetadata> = committed
        .iter()
        .map(|(tp, o)| ((&*tp.topic, i64::from(tp.partition)), o))
        .collect();
    let find = |t: &str, p: i32| {
        by_tp
            .get(&(t, i64::from(p)))
            .map(|o| (o.offset() as i64, o.metadata_str().to_owned()))
    };
    match topics {
        Some(list) => list
            .iter()
            .map(|(t, parts)| {
                let v = parts
                    .iter()
                    .map(|&p| {
                        let (o, m) = find(t, p).unwrap_or((-1, String::new()));
                        (p, o, m)
                    })
                    .collect();
                (t.to_string(), v)
            })
            .collect(),
        None => {
            let mut out: GroupOffsets = Vec::new();
            for (tp, o) in &committed {
                let entry = (
                    tp.partition as i32,
                    o.offset() as i64,
                    o.metadata_str().to_owned(),
                );
                match out.last_mut() {
                    Some((t, v)) if *t == tp.topic => v.push(entry),
                    _ => out.push((tp.topic.to_string(), vec![entry])),
                }
            }
            out
        }
    }
}

pub(super) fn offset_fetch(ctx: &Ctx, h: &Header<'_>, r: OffsetFetch<'_>) -> Reply {
    let mut resp = OffsetFetchResponse::default();
    if r.batched {
        let groups = r
            .groups
            .iter()
            .map(|(g, topics)| {
                let topics = group_offsets(ctx, g, topics)
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetFetchResponseTopics::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, o, m)| {
                                        OffsetFetchResponsePartitions::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(o)
                                            .with_committed_leader_epoch(-1)
                                            .with_metadata(Some(sb(m)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(sb(*g)))
                    .with_topics(topics)
            })
            .collect();
        resp = resp.with_groups(groups);
    } else if let Some((g, topics)) = r.groups.first() {
        let topics = group_offsets(ctx, g, topics)
            .into_iter()
            .map(|(t, parts)| {
                OffsetFetchResponseTopic::default()
                    .with_name(TopicName(sb(t)))
                    .with_partitions(
                        parts
                            .into_iter()
                            .map(|(p, o, m)| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(o)
                                    .with_committed_leader_epoch(-1)
                                    .with_metadata(Some(sb(m)))
                            })
                            .collect(),
                    )
            })
            .collect();
        resp = resp.with_topics(topics);
    }
    encode(h, &resp)
}
