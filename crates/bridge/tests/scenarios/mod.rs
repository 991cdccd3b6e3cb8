//! The cluster scenarios, in the order they run.

mod broker;
mod example;
mod from_kafka;
mod groups;
mod kill;
mod to_kafka;

use crate::support::cluster::Cluster;

/// A scenario's body.
pub type Scenario = fn(&mut Cluster);

/// Every scenario: its name and body.
pub const ALL: &[(&str, Scenario)] = &[
    (
        "copies_every_committed_record_exactly",
        to_kafka::copies_every_committed_record_exactly,
    ),
    (
        "refuses_a_target_that_does_not_match",
        to_kafka::refuses_a_target_that_does_not_match,
    ),
    (
        "partitions_added_on_the_source_are_mirrored",
        to_kafka::partitions_added_on_the_source_are_mirrored,
    ),
    (
        "mirror_killed_30_times_copies_exactly",
        kill::mirror_killed_30_times_copies_exactly,
    ),
    (
        "group_offsets_translate_to_the_next_record",
        groups::group_offsets_translate_to_the_next_record,
    ),
    (
        "progress_runs_below_the_log_start_are_pruned",
        groups::progress_runs_below_the_log_start_are_pruned,
    ),
    (
        "copy_from_kafka_killed_copies_exactly",
        from_kafka::copy_from_kafka_killed_copies_exactly,
    ),
    (
        "partitions_added_on_the_cluster_are_copied",
        from_kafka::partitions_added_on_the_cluster_are_copied,
    ),
    (
        "example_runs_on_a_log_and_on_kafka",
        example::example_runs_on_a_log_and_on_kafka,
    ),
    (
        "keyed_records_land_in_the_same_partitions",
        example::keyed_records_land_in_the_same_partitions,
    ),
    (
        "broker_killed_during_mirroring",
        broker::broker_killed_during_mirroring,
    ),
];

/// What a child process does, by role.
pub fn child(role: &str) {
    match role {
        "mirror-to-kafka" => kill::mirror_child(),
        "mirror-from-kafka" => from_kafka::from_kafka_child(),
        _ => panic!("unknown BRIDGE_TEST_ROLE {role}"),
    }
}
