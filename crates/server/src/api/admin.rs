//! CreateTopics, DeleteTopics, CreatePartitions and DescribeConfigs, with
//! Kafka's config names mapped onto [`TopicConfig`] by the core crate.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    CreatePartitionsResponse, CreateTopicsResponse, DeleteTopicsResponse, DescribeConfigsResponse,
    TopicName,
};
use streamlog::{Error, TopicConfig};

use super::errors::{self, code};
use super::{encode, sb, Ctx, Reply};
use crate::wire::admin::{CreatePartitions, CreateTopics, DeleteTopics, DescribeConfigs, NewTopic};
use crate::wire::Header;

/// Kafka's `ConfigSource`: a value set on the topic, or the default.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_STATIC_BROKER: i8 = 4;
/// Kafka's `ConfigType` values used here.
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

fn config_type(name: &str) -> i8 {
    match name {
        "cleanup.policy" => TYPE_LIST,
        "compression.type" => TYPE_STRING,
        "min.cleanable.dirty.ratio" => TYPE_DOUBLE,
        "max.message.bytes" | "index.interval.bytes" | "segment.bytes" | "segment.index.bytes" => {
            TYPE_INT
        }
        _ => TYPE_LONG,
    }
}

/// The config a CreateTopics entry asks for, or the error code and message
/// that refuse it.
fn new_topic_config(ctx: &Ctx, t: &NewTopic<'_>) -> Result<TopicConfig, (i16, String)> {
    if t.has_assignments {
        return Err((
            errors::INVALID_REPLICA_ASSIGNMENT,
            "replica assignments are not supported: there is one broker".into(),
        ));
    }
    if !matches!(t.replication_factor, -1 | 1) {
        return Err((
            errors::INVALID_REPLICATION_FACTOR,
            format!(
                "replication factor {} is larger than the 1 broker available",
                t.replication_factor
            ),
        ));
    }
    let partitions = match t.num_partitions {
        -1 => ctx.config.default_partitions,
        n if n >= 1 => n as u32,
        n => {
            return Err((
                errors::INVALID_PARTITIONS,
                format!("{n} partitions: a topic needs at least 1"),
            ))
        }
    };
    let mut cfg = TopicConfig::new().partitions(partitions);
    for (k, v) in &t.configs {
        let Some(v) = v else { continue };
        cfg = cfg
            .set_kafka_config(k, v)
            .map_err(|e| (errors::INVALID_CONFIG, e.to_string()))?;
    }
    Ok(cfg)
}

pub(super) fn create_topics(ctx: &Ctx, h: &Header<'_>, r: CreateTopics<'_>) -> Reply {
    let results = r
        .topics
        .iter()
        .map(|t| {
            let res = CreatableTopicResult::default().with_name(TopicName(sb(t.name)));
            let outcome = new_topic_config(ctx, t).and_then(|cfg| {
                if r.validate_only {
                    if ctx.log.topic_config(t.name).is_ok() {
                        return Err((
                            errors::TOPIC_ALREADY_EXISTS,
                            format!("topic {:?} exists", t.name),
                        ));
                    }
                    return Ok(cfg);
                }
                ctx.log
                    .create_topic(t.name, cfg.clone())
                    .map(|()| cfg)
                    .map_err(|e| (code(&e), e.to_string()))
            });
            match outcome {
                Ok(cfg) => {
                    let configs = cfg
                        .kafka_configs()
                        .into_iter()
                        .map(|(k, v)| {
                            CreatableTopicConfigs::default()
                                .with_name(sb(k))
                                .with_value(Some(sb(v)))
                                .with_config_source(SOURCE_DEFAULT)
                        })
                        .collect();
                    if h.api_version >= 5 {
                        res.with_num_partitions(cfg.partition_count() as i32)
                            .with_replication_factor(1)
                            .with_configs(Some(configs))
                    } else {
                        res
                    }
                }
                Err((c, msg)) => res.with_error_code(c).with_error_message(Some(sb(msg))),
            }
        })
        .collect();
    encode(h, &CreateTopicsResponse::default().with_topics(results))
}

pub(super) fn delete_topics(ctx: &Ctx, h: &Header<'_>, r: DeleteTopics<'_>) -> Reply {
    let results = r
        .names
        .iter()
        .map(|name| {
            let res = DeletableTopicResult::default().with_name(Some(TopicName(sb(*name))));
            match ctx.log.delete_topic(name) {
                Ok(()) => res,
                Err(e) if h.api_version >= 5 => res
                    .with_error_code(code(&e))
                    .with_error_message(Some(sb(e.to_string()))),
                Err(e) => res.with_error_code(code(&e)),
            }
        })
        .collect();
    encode(h, &DeleteTopicsResponse::default().with_responses(results))
}

pub(super) fn create_partitions(ctx: &Ctx, h: &Header<'_>, r: CreatePartitions<'_>) -> Reply {
    let results = r
        .topics
        .iter()
        .map(|&(name, count)| {
            let res = CreatePartitionsTopicResult::default().with_name(TopicName(sb(name)));
            let outcome = match (ctx.log.topic_config(name), u32::try_from(count)) {
                (Err(e), _) => Err((code(&e), e.to_string())),
                (Ok(cfg), Ok(n)) if n > cfg.partition_count() => {
                    if r.validate_only {
                        Ok(())
                    } else {
                        ctx.log.create_partitions(name, n).map_err(|e| match e {
                            Error::InvalidConfig { what } => (errors::INVALID_PARTITIONS, what),
                            e => (code(&e), e.to_string()),
                        })
                    }
                }
                (Ok(cfg), _) => Err((
                    errors::INVALID_PARTITIONS,
                    format!(
                        "topic {name:?} has {} partitions; it can only grow",
                        cfg.partition_count()
                    ),
                )),
            };
            match outcome {
                Ok(()) => res,
                Err((c, msg)) => res.with_error_code(c).with_error_message(Some(sb(msg))),
            }
        })
        .collect();
    encode(
        h,
        &CreatePartitionsResponse::default().with_results(results),
    )
}

fn entry(name: &str, value: String, source: i8, ty: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(sb(name))
        .with_value(Some(sb(value)))
        .with_config_source(source)
        .with_config_type(ty)
}

/// The broker settings a client may ask about, with their values here.
fn broker_configs(ctx: &Ctx) -> Vec<DescribeConfigsResourceResult> {
    let c = &ctx.config;
    vec![
        entry(
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            SOURCE_STATIC_BROKER,
            TYPE_BOOLEAN,
        ),
        entry(
            "num.partitions",
            c.default_partitions.to_string(),
            SOURCE_STATIC_BROKER,
            TYPE_INT,
        ),
        entry("default.replication.factor", "1".into(), SOURCE_DEFAULT, 4),
        entry(
            "socket.request.max.bytes",
            c.max_request_bytes.to_string(),
            SOURCE_STATIC_BROKER,
            TYPE_INT,
        ),
        entry(
            "group.initial.rebalance.delay.ms",
            c.initial_rebalance_delay.as_millis().to_string(),
            SOURCE_STATIC_BROKER,
            TYPE_INT,
        ),
    ]
}

pub(super) fn describe_configs(ctx: &Ctx, h: &Header<'_>, r: DescribeConfigs<'_>) -> Reply {
    let defaults = TopicConfig::new();
    let typed = h.api_version >= 3;
    let entry = |name: &str, value: String, source: i8, ty: i8| {
        entry(name, value, source, if typed { ty } else { 0 })
    };
    let results = r
        .resources
        .iter()
        .map(|(ty, name, keys)| {
            let res = DescribeConfigsResult::default()
                .with_resource_type(*ty)
                .with_resource_name(sb(*name));
            // No keys (null or empty, as Kafka reads both) asks for all.
            let wanted = |k: &str| {
                keys.as_ref()
                    .is_none_or(|ks| ks.is_empty() || ks.contains(&k))
            };
            match ty {
                2 => match ctx.log.topic_config(name) {
                    Ok(cfg) => res.with_configs(
                        cfg.kafka_configs()
                            .into_iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, v)| {
                                let source = if defaults.kafka_config(k).as_deref() == Some(&v) {
                                    SOURCE_DEFAULT
                                } else {
                                    SOURCE_TOPIC
                                };
                                entry(k, v, source, config_type(k))
                            })
                            .collect(),
                    ),
                    Err(e) => res
                        .with_error_code(code(&e))
                        .with_error_message(Some(sb(e.to_string()))),
                },
                4 if name.is_empty() || *name == "0" => res.with_configs(
                    broker_configs(ctx)
                        .into_iter()
                        .map(|c| if typed { c } else { c.with_config_type(0) })
                        .filter(|c| wanted(c.name.as_str()))
                        .collect(),
                ),
                _ => res
                    .with_error_code(errors::INVALID_REQUEST)
                    .with_error_message(Some(sb(format!(
                        "resource type {ty} named {name:?} is not known here"
                    )))),
            }
        })
        .collect();
    encode(h, &DescribeConfigsResponse::default().with_results(results))
}
