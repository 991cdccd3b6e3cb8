//! The ported `consumer_group` example, the same code on a Log and on the
//! cluster.

#[path = "../../examples/consumer_group.rs"]
mod consumer_group;

use super::to_kafka::unique;
use crate::support::cluster::Cluster;

pub fn example_runs_on_a_log_and_on_kafka(cluster: &mut Cluster) {
    consumer_group::on_log().expect("on a Log");
    consumer_group::on_kafka(&cluster.bootstrap, &unique("jobs"), &unique("workers"))
        .expect("on Kafka");
}
