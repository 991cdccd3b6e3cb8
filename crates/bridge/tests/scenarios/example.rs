//! The ported `consumer_group` example, the same code on a Log and on the
//! cluster; and keyed records land in the same partitions on both.

#[path = "../../examples/consumer_group.rs"]
mod consumer_group;

use streamlog::{Log, TopicConfig};
use streamlog_bridge::{KafkaProducer, Produce, ProducerRecord};

use super::to_kafka::unique;
use crate::support::cluster::Cluster;

pub fn example_runs_on_a_log_and_on_kafka(cluster: &mut Cluster) {
    consumer_group::on_log().expect("on a Log");
    consumer_group::on_kafka(&cluster.bootstrap, &unique("jobs"), &unique("workers"))
        .expect("on Kafka");
}

pub fn keyed_records_land_in_the_same_partitions(cluster: &mut Cluster) {
    let topic = unique("keys");
    let log = Log::temporary().expect("log");
    log.create_topic(&topic, TopicConfig::new().partitions(7))
        .expect("create");
    streamlog_bridge::kafka::create_topic(&cluster.bootstrap, &topic, 7, &[]).expect("create");
    let records: Vec<ProducerRecord> = (0..500u32)
        .map(|i| ProducerRecord::new(b"v".to_vec()).key(format!("customer-{i}").into_bytes()))
        .collect();
    let on_log = Produce::send_batch(&log.producer(), &topic, records.clone()).expect("log");
    let on_kafka = KafkaProducer::new(&cluster.bootstrap)
        .expect("producer")
        .send_batch(&topic, records)
        .expect("kafka");
    let parts = |v: &[(u32, u64)]| v.iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(parts(&on_log), parts(&on_kafka));
    let used: std::collections::HashSet<u32> = parts(&on_log).into_iter().collect();
    assert_eq!(used.len(), 7, "every partition used");
}
