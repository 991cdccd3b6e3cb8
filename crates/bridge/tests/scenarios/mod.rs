//! The cluster scenarios, in the order they run.

mod to_kafka;

use crate::support::cluster::Cluster;

/// Every scenario: its name and body.
pub const ALL: &[(&str, fn(&mut Cluster))] = &[
    (
        "copies_every_committed_record_exactly",
        to_kafka::copies_every_committed_record_exactly,
    ),
    (
        "refuses_a_target_that_does_not_match",
        to_kafka::refuses_a_target_that_does_not_match,
    ),
];

/// What a child process does, by role.
pub fn child(role: &str) {
    panic!("unknown BRIDGE_TEST_ROLE {role}");
}
