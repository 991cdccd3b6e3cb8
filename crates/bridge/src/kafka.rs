//! The Kafka side of the bridge: clients, topics and their configs, and
//! reading a progress topic, on librdkafka (the `rdkafka` crate).

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigResourceResult, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use streamlog::TopicPartition;

use crate::error::{Error, Result};

/// How long a metadata, admin or offsets call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A librdkafka configuration for `bootstrap`, with `extra` settings on top.
pub fn config(bootstrap: &str, extra: &[(String, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c.set("log_level", "3");
    for (k, v) in extra {
        c.set(k, v);
    }
    c
}

/// Whether a consumer's error is one librdkafka recovers from by itself
/// (a broker down or restarting, a leader moving): the caller polls on.
pub fn transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e,
        KafkaError::MessageConsumption(
            C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::OperationTimedOut
                | C::RequestTimedOut
                | C::NetworkException
                | C::NotLeaderForPartition
                | C::LeaderNotAvailable
                | C::ReplicaNotAvailable
                | C::NotCoordinator
                | C::CoordinatorNotAvailable
                | C::Resolve
                | C::UnknownLeaderEpoch
                | C::FencedLeaderEpoch
                | C::OffsetNotAvailable
                | C::KafkaStorageError
                | C::NotEnoughReplicas
        )
    )
}

/// Waits until every record `producer` was given is delivered or failed,
/// serving delivery reports. Unlike `Producer::flush` of the `rdkafka`
/// crate, which polls in steps of up to 100 ms and so often sleeps ~100 ms
/// after the last report came, this returns within a millisecond of it
/// (measured on loopback: the mirror's `--follow` lag, p50, went from
/// 216 ms to 36 ms).
pub fn drain<C: rdkafka::producer::ProducerContext>(
    producer: &rdkafka::producer::BaseProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    use rdkafka::producer::Producer as _;
    let deadline = std::time::Instant::now() + timeout;
    while producer.in_flight_count() > 0 {
        if std::time::Instant::now() >= deadline {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

/// An admin client.
pub fn admin(
    bootstrap: &str,
    extra: &[(String, String)],
) -> Result<AdminClient<DefaultClientContext>> {
    config(bootstrap, extra)
        .create()
        .map_err(|e| Error::kafka("create an admin client", e))
}

/// A consumer outside any group (it never commits), reading
/// `read_committed` and reporting each partition's end.
pub fn plain_consumer(bootstrap: &str, extra: &[(String, String)]) -> Result<BaseConsumer> {
    let mut c = config(bootstrap, &[]);
    c.set("group.id", "streamlog-bridge-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    for (k, v) in extra {
        c.set(k, v);
    }
    c.create().map_err(|e| Error::kafka("create a consumer", e))
}

/// The partition count of each topic of `names` that exists.
pub fn partition_counts(consumer: &BaseConsumer, names: &[String]) -> Result<HashMap<String, u32>> {
    let md = consumer
        .fetch_metadata(None, CALL_TIMEOUT)
        .map_err(|e| Error::kafka("fetch the cluster's metadata", e))?;
    let mut out = HashMap::new();
    for t in md.topics() {
        if names.iter().any(|n| n == t.name()) && t.error().is_none() {
            out.insert(t.name().to_owned(), t.partitions().len() as u32);
        }
    }
    Ok(out)
}

/// The low and high watermarks of `tp` on the cluster. A client that
/// knew the topic before partitions were added to it answers "unknown
/// partition" for the new ones for minutes (librdkafka refreshes a known
/// topic's partition count only every `topic.metadata.refresh.interval.ms`),
/// and a partition created a moment ago may have no leader yet: those are
/// asked again, of a fresh client, for up to [`CALL_TIMEOUT`].
pub fn watermarks(
    consumer: &BaseConsumer,
    tp: &TopicPartition,
    bootstrap: &str,
    client: &[(String, String)],
) -> Result<(i64, i64)> {
    let deadline = std::time::Instant::now() + CALL_TIMEOUT;
    let what = || format!("read the offsets of {tp}");
    let mut fresh = None;
    loop {
        let c = fresh.as_ref().unwrap_or(consumer);
        match c.fetch_watermarks(&tp.topic, tp.partition as i32, CALL_TIMEOUT) {
            Ok(w) => return Ok(w),
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable,
            )) if std::time::Instant::now() < deadline => {
                if fresh.is_some() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let c = match fresh.take() {
                    Some(c) => c,
                    None => plain_consumer(bootstrap, client)?,
                };
                // Its cache filled first: it asks the leader it finds there.
                let _ = c.fetch_metadata(Some(&tp.topic), CALL_TIMEOUT);
                fresh = Some(c);
            }
            Err(e) => return Err(Error::kafka(&what(), e)),
        }
    }
}

/// Every topic of the cluster that is not internal (`__*`), sorted.
pub fn topic_names(consumer: &BaseConsumer) -> Result<Vec<String>> {
    let md = consumer
        .fetch_metadata(None, CALL_TIMEOUT)
        .map_err(|e| Error::kafka("fetch the cluster's metadata", e))?;
    let mut names: Vec<String> = md
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|n| !n.starts_with("__"))
        .collect();
    names.sort();
    Ok(names)
}

/// A topic the bridge wants on the cluster: its partitions and the
/// configs that must match.
#[derive(Debug, Clone)]
pub struct WantedTopic {
    /// The name.
    pub name: String,
    /// Its partition count.
    pub partitions: u32,
    /// Configs to set at creation and to compare with an existing topic.
    pub configs: Vec<(String, String)>,
}

/// Creates each topic of `wanted` that does not exist, with its partition
/// count, configs and `replication` (`None`: the brokers' default), and
/// checks that each that exists has the same partition count and configs.
/// An existing topic with fewer partitions than wanted, for which `grow`
/// says yes, gets the missing ones added instead (Kafka's
/// CreatePartitions; a topic can only grow).
///
/// # Errors
/// [`Error::TargetMismatch`] naming every difference of a topic that
/// exists; [`Error::Kafka`] if the cluster refuses a creation.
pub fn ensure_topics(
    admin: &AdminClient<DefaultClientContext>,
    consumer: &BaseConsumer,
    wanted: &[WantedTopic],
    replication: Option<i32>,
    grow: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let names: Vec<String> = wanted.iter().map(|w| w.name.clone()).collect();
    let existing = partition_counts(consumer, &names)?;
    let missing: Vec<&WantedTopic> = wanted
        .iter()
        .filter(|w| !existing.contains_key(&w.name))
        .collect();
    let mut created = Vec::new();
    if !missing.is_empty() {
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|w| {
                let mut t = NewTopic::new(
                    &w.name,
                    w.partitions as i32,
                    TopicReplication::Fixed(replication.unwrap_or(-1)),
                );
                for (k, v) in &w.configs {
                    t = t.set(k, v);
                }
                t
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
        let results = futures_executor::block_on(admin.create_topics(&new, &opts))
            .map_err(|e| Error::kafka("create topics", e))?;
        for r in results {
            match r {
                Ok(name) => created.push(name),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(Error::kafka(
                        &format!("create topic {name}"),
                        KafkaError::AdminOp(code),
                    ))
                }
            }
        }
    }
    let mut problems = Vec::new();
    let mut to_grow = Vec::new();
    for w in wanted.iter().filter(|w| existing.contains_key(&w.name)) {
        let have = existing[&w.name];
        if have < w.partitions && grow(&w.name) {
            to_grow.push(w);
        } else if have != w.partitions {
            problems.push(format!(
                "topic {} has {have} partitions on the cluster, {} on the source",
                w.name, w.partitions
            ));
        }
        let configs = describe_topic(admin, &w.name)?;
        for (k, v) in &w.configs {
            let theirs = configs.get(k).cloned().unwrap_or_default();
            if !config_matches(k, v, &theirs) {
                problems.push(format!(
                    "topic {} has {k}={theirs} on the cluster, the source needs {v}",
                    w.name
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::TargetMismatch { problems });
    }
    for w in to_grow {
        grow_partitions(admin, consumer, &w.name, w.partitions)?;
    }
    Ok(created)
}

/// Adds partitions to topic `name` until it has `total`, and waits until
/// the cluster's metadata shows them.
fn grow_partitions(
    admin: &AdminClient<DefaultClientContext>,
    consumer: &BaseConsumer,
    name: &str,
    total: u32,
) -> Result<()> {
    let opts = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
    let more = NewPartitions::new(name, total as usize);
    let results = futures_executor::block_on(admin.create_partitions(&[more], &opts))
        .map_err(|e| Error::kafka(&format!("add partitions to {name}"), e))?;
    for r in results {
        if let Err((_, code)) = r {
            return Err(Error::kafka(
                &format!("add partitions to {name} (to {total})"),
                KafkaError::AdminOp(code),
            ));
        }
    }
    let deadline = std::time::Instant::now() + CALL_TIMEOUT;
    loop {
        let names = [name.to_owned()];
        if partition_counts(consumer, &names)?.get(name) == Some(&total) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Timeout {
                what: format!("partitions added to {name} to show in the metadata"),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes topic `name` on the cluster at `bootstrap` with `partitions` and
/// `configs` (the brokers' replication factor), or checks that it exists
/// so: [`ensure_topics`] for one topic, with its own clients.
///
/// # Errors
/// As [`ensure_topics`].
///
/// # Example
/// ```no_run
/// streamlog_bridge::kafka::create_topic("127.0.0.1:9092", "orders", 3, &[])?;
/// # Ok::<(), streamlog_bridge::Error>(())
/// ```
pub fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: u32,
    configs: &[(String, String)],
) -> Result<()> {
    let wanted = WantedTopic {
        name: name.to_owned(),
        partitions,
        configs: configs.to_vec(),
    };
    ensure_topics(
        &admin(bootstrap, &[])?,
        &plain_consumer(bootstrap, &[])?,
        &[wanted],
        None,
        &|_| false,
    )?;
    Ok(())
}

/// Whether an existing topic's `value` of config `name` serves the `wanted`
/// one: `max.message.bytes` may be larger, `cleanup.policy` may list its
/// parts in any order, the rest must be equal.
fn config_matches(name: &str, wanted: &str, value: &str) -> bool {
    match name {
        "max.message.bytes" => {
            matches!((wanted.parse::<u64>(), value.parse::<u64>()), (Ok(w), Ok(v)) if v >= w)
        }
        "cleanup.policy" => {
            let parts = |s: &str| {
                let mut p: Vec<String> = s.split(',').map(|x| x.trim().to_owned()).collect();
                p.sort();
                p
            };
            parts(wanted) == parts(value)
        }
        _ => wanted == value,
    }
}

/// The configs of topic `name` as the cluster reports them (defaults
/// included).
pub fn describe_topic(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
) -> Result<HashMap<String, String>> {
    let opts = AdminOptions::new().request_timeout(Some(CALL_TIMEOUT));
    let results: Vec<ConfigResourceResult> = futures_executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(name)], &opts),
    )
    .map_err(|e| Error::kafka("describe topic configs", e))?;
    let mut out = HashMap::new();
    for r in results {
        let r = r.map_err(|code| {
            Error::kafka(&format!("describe topic {name}"), KafkaError::AdminOp(code))
        })?;
        for e in r.entries {
            if let Some(v) = e.value {
                out.insert(e.name, v);
            }
        }
    }
    Ok(out)
}

/// Reads every record of partition 0 of `topic` (a progress topic),
/// `read_committed`, from its start to its end now, and hands each key and
/// value to `f`.
pub fn read_all(
    consumer: &BaseConsumer,
    topic: &str,
    mut f: impl FnMut(&[u8], Option<&[u8]>),
) -> Result<()> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| Error::kafka("assign", e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| Error::kafka(&format!("assign {topic}"), e))?;
    // However long the topic, it gives up only after this long without a
    // record.
    let mut deadline = std::time::Instant::now() + CALL_TIMEOUT * 2;
    loop {
        if std::time::Instant::now() > deadline {
            return Err(Error::Timeout {
                what: format!("reading topic {topic} to its end"),
            });
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) if transient(&e) => {}
            Some(Err(e)) => return Err(Error::kafka(&format!("read {topic}"), e)),
            Some(Ok(m)) => {
                f(m.key().unwrap_or_default(), m.payload());
                deadline = std::time::Instant::now() + CALL_TIMEOUT * 2;
            }
        }
    }
    consumer
        .unassign()
        .map_err(|e| Error::kafka(&format!("unassign {topic}"), e))?;
    Ok(())
}
