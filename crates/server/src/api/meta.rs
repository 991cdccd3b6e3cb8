//! ApiVersions, Metadata, FindCoordinator, DescribeCluster and
//! OffsetForLeaderEpoch: what a client asks before anything else. One
//! broker (node 0, at the advertised address) leads every partition, at
//! leader epoch 0.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, DescribeClusterResponse, FindCoordinatorResponse,
    MetadataResponse, OffsetForLeaderEpochResponse, TopicName,
};
use streamlog::{Error, TopicConfig, TopicPartition};

use super::errors::{self, code};
use super::{encode, sb, Ctx, Reply};
use crate::wire::admin::DescribeCluster;
use crate::wire::data::{Metadata, OffsetForLeaderEpoch};
use crate::wire::group::FindCoordinator;
use crate::wire::{Header, APIS};

/// The cluster id every response names (Kafka's is a random base64 UUID;
/// clients only compare it).
pub(crate) const CLUSTER_ID: &str = "streamlog";

const NODE: BrokerId = BrokerId(0);

pub(super) fn api_versions(h: &Header<'_>) -> Reply {
    let keys = APIS
        .iter()
        .map(|a| {
            ApiVersion::default()
                .with_api_key(a.key)
                .with_min_version(a.min)
                .with_max_version(a.max)
        })
        .collect();
    encode(h, &ApiVersionsResponse::default().with_api_keys(keys))
}

/// Creates `name` with the server's default partition count if the server
/// creates topics on first use; `Ok(false)` if it does not.
pub(super) fn auto_create(ctx: &Ctx, name: &str) -> Result<bool, Error> {
    if !ctx.config.auto_create_topics {
        return Ok(false);
    }
    let cfg = TopicConfig::new().partitions(ctx.config.default_partitions);
    match ctx.log.create_topic(name, cfg) {
        Ok(()) | Err(Error::TopicExists { .. }) => Ok(true),
        Err(e) => Err(e),
    }
}

fn topic_metadata(ctx: &Ctx, version: i16, name: &str) -> MetadataResponseTopic {
    let t = MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(name))))
        .with_is_internal(version >= 1 && name.starts_with("__"));
    match ctx.log.topic_config(name) {
        Ok(cfg) => {
            let parts = (0..cfg.partition_count() as i32)
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(NODE)
                        .with_leader_epoch(if version >= 7 { 0 } else { -1 })
                        .with_replica_nodes(vec![NODE])
                        .with_isr_nodes(vec![NODE])
                })
                .collect();
            t.with_partitions(parts)
        }
        Err(e) => t.with_error_code(code(&e)),
    }
}

pub(super) fn metadata(ctx: &Ctx, h: &Header<'_>, r: Metadata<'_>) -> Reply {
    let names: Vec<String> = match &r.topics {
        None => ctx.log.topics(),
        Some(list) => list.iter().map(|s| s.to_string()).collect(),
    };
    let mut topics = Vec::with_capacity(names.len());
    for name in &names {
        if r.topics.is_some() && ctx.log.topic_config(name).is_err() && r.allow_auto_topic_creation
        {
            if let Err(e) = auto_create(ctx, name) {
                topics.push(
                    MetadataResponseTopic::default()
                        .with_name(Some(TopicName(sb(name.as_str()))))
                        .with_error_code(code(&e)),
                );
                continue;
            }
        }
        topics.push(topic_metadata(ctx, h.api_version, name));
    }
    let a = ctx.advertised;
    let broker = MetadataResponseBroker::default()
        .with_node_id(NODE)
        .with_host(sb(a.ip().to_string()))
        .with_port(i32::from(a.port()));
    encode(
        h,
        &MetadataResponse::default()
            .with_brokers(vec![broker])
            .with_cluster_id(Some(sb(CLUSTER_ID)))
            .with_controller_id(NODE)
            .with_topics(topics),
    )
}

pub(super) fn find_coordinator(ctx: &Ctx, h: &Header<'_>, r: FindCoordinator<'_>) -> Reply {
    let a = ctx.advertised;
    let host = sb(a.ip().to_string());
    let port = i32::from(a.port());
    let mut resp = FindCoordinatorResponse::default();
    let known_type = r.key_type == 0 || r.key_type == 1;
    if r.batched {
        // v4+: errors go in each coordinator entry (the top-level field is
        // not in these versions).
        resp = resp.with_coordinators(
            r.keys
                .iter()
                .map(|k| {
                    let c = Coordinator::default().with_key(sb(*k));
                    if known_type {
                        c.with_node_id(NODE).with_host(host.clone()).with_port(port)
                    } else {
                        c.with_error_code(errors::INVALID_REQUEST)
                            .with_node_id(BrokerId(-1))
                            .with_port(-1)
                    }
                })
                .collect(),
        );
    } else if !known_type {
        resp = resp.with_error_code(errors::INVALID_REQUEST);
    } else {
        resp = resp.with_node_id(NODE).with_host(host).with_port(port);
    }
    encode(h, &resp)
}

pub(super) fn describe_cluster(ctx: &Ctx, h: &Header<'_>, r: DescribeCluster) -> Reply {
    let a = ctx.advertised;
    let mut resp = DescribeClusterResponse::default()
        .with_endpoint_type(r.endpoint_type)
        .with_cluster_id(sb(CLUSTER_ID))
        .with_controller_id(NODE);
    if r.endpoint_type == 1 {
        resp = resp.with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(NODE)
            .with_host(sb(a.ip().to_string()))
            .with_port(i32::from(a.port()))]);
    } else {
        resp = resp.with_error_code(errors::UNSUPPORTED_VERSION);
    }
    encode(h, &resp)
}

/// Every record is at leader epoch 0, so the end of epoch 0 is the log's
/// end; an epoch above it is not known yet.
pub(super) fn offset_for_leader_epoch(
    ctx: &Ctx,
    h: &Header<'_>,
    r: OffsetForLeaderEpoch<'_>,
) -> Reply {
    let topics = r
        .topics
        .iter()
        .map(|(name, parts)| {
            let parts = parts
                .iter()
                .map(|&(p, epoch)| {
                    let e = EpochEndOffset::default().with_partition(p);
                    let tp = TopicPartition::new(*name, p.max(0) as u32);
                    match ctx.log.partition_info(&tp) {
                        Err(err) if p >= 0 => e.with_error_code(code(&err)),
                        Err(_) => e.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION),
                        Ok(_) if p < 0 => e.with_error_code(errors::UNKNOWN_TOPIC_OR_PARTITION),
                        Ok(_) if epoch > 0 => e.with_leader_epoch(-1).with_end_offset(-1),
                        Ok(info) => e
                            .with_leader_epoch(0)
                            .with_end_offset(info.end_offset as i64),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(TopicName(sb(*name)))
                .with_partitions(parts)
        })
        .collect();
    encode(
        h,
        &OffsetForLeaderEpochResponse::default().with_topics(topics),
    )
}
