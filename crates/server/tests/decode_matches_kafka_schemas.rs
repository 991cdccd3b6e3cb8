//! The server's own request decoders against Kafka's schemas: for every
//! API and version served, a request encoded by the `kafka-protocol` crate
//! (generated from Kafka's JSON schemas) decodes to the same values.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use streamlog_server::wire::{self, Request, APIS};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn encode<M: Encodable>(key: ApiKey, version: i16, msg: &M) -> Vec<u8> {
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(s("differential")))
        .encode(&mut b, key.request_header_version(version))
        .unwrap();
    msg.encode(&mut b, version).unwrap();
    // `STREAMLOG_SEEDS_OUT=DIR` keeps each frame: the seeds of the
    // `kafka_request_decode` fuzz target.
    if let Some(dir) = std::env::var_os("STREAMLOG_SEEDS_OUT") {
        let name = format!("{}-v{version}-{}", key as i16, b.len());
        std::fs::write(std::path::Path::new(&dir).join(name), &b).unwrap();
    }
    b.to_vec()
}

fn decoded(frame: &[u8]) -> Request<'_> {
    let (h, r) = wire::decode(frame).unwrap();
    assert_eq!((h.correlation_id, h.client_id), (42, Some("differential")));
    r
}

fn check(key: i16, v: i16) {
    use ApiKey as K;
    match key {
        0 => {
            let req = ProduceRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_acks(-1)
                .with_timeout_ms(1500)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(3)
                            .with_records(Some(Bytes::from_static(b"batch"))),
                    ])]);
            let f = encode(K::Produce, v, &req);
            let Request::Produce(p) = decoded(&f) else {
                panic!()
            };
            assert_eq!(
                (p.transactional_id, p.acks, p.timeout_ms),
                (Some("tx"), -1, 1500)
            );
            assert_eq!(p.topics[0].name, "t");
            assert_eq!(p.topics[0].partitions, [(3, Some(&b"batch"[..]))]);
        }
        1 => {
            let mut req = FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_isolation_level(1)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(s("t")))
                    .with_partitions(vec![fetch_request::FetchPartition::default()
                        .with_partition(2)
                        .with_fetch_offset(77)
                        .with_partition_max_bytes(4096)])]);
            if v >= 7 {
                req = req.with_session_epoch(-1).with_forgotten_topics_data(vec![
                    fetch_request::ForgottenTopic::default()
                        .with_topic(TopicName(s("gone")))
                        .with_partitions(vec![1, 2]),
                ]);
            }
            if v >= 11 {
                req = req.with_rack_id(s("rack"));
            }
            let f = encode(K::Fetch, v, &req);
            let Request::Fetch(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(
                (r.max_wait_ms, r.min_bytes, r.max_bytes, r.isolation_level),
                (500, 1, 1 << 20, 1)
            );
            assert_eq!(r.topics[0].name, "t");
            let p = r.topics[0].partitions[0];
            assert_eq!(
                (p.partition, p.fetch_offset, p.partition_max_bytes),
                (2, 77, 4096)
            );
        }
        2 => {
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(if v >= 2 { 1 } else { 0 })
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(1)
                            .with_timestamp(-2),
                    ])]);
            let f = encode(K::ListOffsets, v, &req);
            let Request::ListOffsets(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(r.isolation_level, if v >= 2 { 1 } else { 0 });
            assert_eq!(r.topics, [("t", vec![(1, -2)])]);
        }
        3 => {
            let req = MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(s("a"))))]))
                .with_allow_auto_topic_creation(v < 4);
            let f = encode(K::Metadata, v, &req);
            let Request::Metadata(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(r.topics, Some(vec!["a"]));
            assert!(r.allow_auto_topic_creation == (v < 4) || v < 4);
            if v >= 1 {
                let f = encode(
                    K::Metadata,
                    v,
                    &MetadataRequest::default().with_topics(None),
                );
                let Request::Metadata(r) = decoded(&f) else {
                    panic!()
                };
                assert_eq!(r.topics, None);
            }
        }
        8 => {
            let mut req = OffsetCommitRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id_or_member_epoch(5)
                .with_member_id(s("m"))
                .with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(99)
                                .with_committed_metadata(Some(s("meta"))),
                        ]),
                ]);
            if v >= 7 {
                req = req.with_group_instance_id(Some(s("inst")));
            }
            let f = encode(K::OffsetCommit, v, &req);
            let Request::OffsetCommit(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!((r.group_id, r.generation_id, r.member_id), ("g", 5, "m"));
            assert_eq!(r.group_instance_id, (v >= 7).then_some("inst"));
            assert_eq!(r.topics, [("t", vec![(0, 99, Some("meta"))])]);
        }
        9 => {
            let req = if v >= 8 {
                OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(s("g1")))
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(TopicName(s("t")))
                                .with_partition_indexes(vec![0, 1]),
                        ])),
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(s("g2")))
                        .with_topics(None),
                ])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(s("g1")))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(TopicName(s("t")))
                            .with_partition_indexes(vec![0, 1]),
                    ]))
            };
            let f = encode(K::OffsetFetch, v, &req);
            let Request::OffsetFetch(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(r.groups[0], ("g1", Some(vec![("t", vec![0, 1])])));
            if v >= 8 {
                assert_eq!(r.groups[1], ("g2", None));
            }
        }
        10 => {
            let req = if v >= 4 {
                FindCoordinatorRequest::default()
                    .with_key_type(1)
                    .with_coordinator_keys(vec![s("a"), s("b")])
            } else {
                FindCoordinatorRequest::default()
                    .with_key(s("a"))
                    .with_key_type(if v >= 1 { 1 } else { 0 })
            };
            let f = encode(K::FindCoordinator, v, &req);
            let Request::FindCoordinator(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(r.key_type, if v >= 1 { 1 } else { 0 });
            assert_eq!(r.keys, if v >= 4 { vec!["a", "b"] } else { vec!["a"] });
        }
        11 => {
            let mut req = JoinGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_session_timeout_ms(10_000)
                .with_member_id(s("m"))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"md"))]);
            if v >= 1 {
                req = req.with_rebalance_timeout_ms(30_000);
            }
            if v >= 5 {
                req = req.with_group_instance_id(Some(s("inst")));
            }
            let f = encode(K::JoinGroup, v, &req);
            let Request::JoinGroup(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(
                (
                    r.group_id,
                    r.session_timeout_ms,
                    r.member_id,
                    r.protocol_type
                ),
                ("g", 10_000, "m", "consumer")
            );
            assert_eq!(r.rebalance_timeout_ms, if v >= 1 { 30_000 } else { 10_000 });
            assert_eq!(r.group_instance_id, (v >= 5).then_some("inst"));
            assert_eq!(r.protocols, [("range", &b"md"[..])]);
        }
        12 => {
            let mut req = HeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(3)
                .with_member_id(s("m"));
            if v >= 3 {
                req = req.with_group_instance_id(Some(s("i")));
            }
            let f = encode(K::Heartbeat, v, &req);
            let Request::Heartbeat(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!((r.group_id, r.generation_id, r.member_id), ("g", 3, "m"));
            assert_eq!(r.group_instance_id, (v >= 3).then_some("i"));
        }
        13 => {
            let req = if v >= 3 {
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_members(vec![
                        leave_group_request::MemberIdentity::default()
                            .with_member_id(s("m1"))
                            .with_group_instance_id(Some(s("i1"))),
                        leave_group_request::MemberIdentity::default().with_member_id(s("m2")),
                    ])
            } else {
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_member_id(s("m1"))
            };
            let f = encode(K::LeaveGroup, v, &req);
            let Request::LeaveGroup(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(r.group_id, "g");
            if v >= 3 {
                assert_eq!(r.members, [("m1", Some("i1")), ("m2", None)]);
            } else {
                assert_eq!(r.members, [("m1", None)]);
            }
        }
        14 => {
            let mut req = SyncGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(4)
                .with_member_id(s("m"))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s("m"))
                        .with_assignment(Bytes::from_static(b"as")),
                ]);
            if v >= 5 {
                req = req
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")));
            }
            let f = encode(K::SyncGroup, v, &req);
            let Request::SyncGroup(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!((r.group_id, r.generation_id, r.member_id), ("g", 4, "m"));
            assert_eq!(r.protocol_name, (v >= 5).then_some("range"));
            assert_eq!(r.assignments, [("m", &b"as"[..])]);
        }
        15 => {
            let req = DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(s("a")), GroupId(s("b"))]);
            let f = encode(K::DescribeGroups, v, &req);
            let Request::DescribeGroups(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(r.groups, ["a", "b"]);
        }
        16 => {
            let req = if v >= 4 {
                ListGroupsRequest::default().with_states_filter(vec![s("Stable")])
            } else {
                ListGroupsRequest::default()
            };
            let f = encode(K::ListGroups, v, &req);
            let Request::ListGroups(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(r.states, if v >= 4 { vec!["Stable"] } else { vec![] });
        }
        18 => {
            let mut req = ApiVersionsRequest::default();
            if v >= 3 {
                req = req
                    .with_client_software_name(s("lib"))
                    .with_client_software_version(s("1.0"));
            }
            let f = encode(K::ApiVersions, v, &req);
            let Request::ApiVersions(r) = decoded(&f) else {
                panic!()
            };
            if v >= 3 {
                assert_eq!(
                    (r.client_software_name, r.client_software_version),
                    ("lib", "1.0")
                );
            }
        }
        19 => {
            let req = CreateTopicsRequest::default()
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_num_partitions(3)
                    .with_replication_factor(1)
                    .with_configs(vec![
                        create_topics_request::CreatableTopicConfig::default()
                            .with_name(s("retention.ms"))
                            .with_value(Some(s("1000"))),
                    ])])
                .with_timeout_ms(5000)
                .with_validate_only(true);
            let f = encode(K::CreateTopics, v, &req);
            let Request::CreateTopics(r) = decoded(&f) else {
                panic!()
            };
            assert!(r.validate_only);
            let t = &r.topics[0];
            assert_eq!(
                (
                    t.name,
                    t.num_partitions,
                    t.replication_factor,
                    t.has_assignments
                ),
                ("t", 3, 1, false)
            );
            assert_eq!(t.configs, [("retention.ms", Some("1000"))]);
        }
        20 => {
            let req = DeleteTopicsRequest::default()
                .with_topic_names(vec![TopicName(s("a")), TopicName(s("b"))])
                .with_timeout_ms(1000);
            let f = encode(K::DeleteTopics, v, &req);
            let Request::DeleteTopics(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(r.names, ["a", "b"]);
        }
        22 => {
            let mut req = InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("tx"))))
                .with_transaction_timeout_ms(60_000);
            if v >= 3 {
                req = req.with_producer_id(ProducerId(17)).with_producer_epoch(2);
            }
            let f = encode(K::InitProducerId, v, &req);
            let Request::InitProducerId(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(
                (r.transactional_id, r.transaction_timeout_ms),
                (Some("tx"), 60_000)
            );
            if v >= 3 {
                assert_eq!((r.producer_id, r.producer_epoch), (17, 2));
            }
        }
        23 => {
            let req = OffsetForLeaderEpochRequest::default().with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(TopicName(s("t")))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(1)
                            .with_current_leader_epoch(0)
                            .with_leader_epoch(0),
                    ]),
            ]);
            let f = encode(K::OffsetForLeaderEpoch, v, &req);
            let Request::OffsetForLeaderEpoch(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(r.topics, [("t", vec![(1, 0)])]);
        }
        32 => {
            let mut req = DescribeConfigsRequest::default()
                .with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("t"))
                        .with_configuration_keys(Some(vec![s("retention.ms")])),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s("0"))
                        .with_configuration_keys(None),
                ])
                .with_include_synonyms(true);
            if v >= 3 {
                req = req.with_include_documentation(true);
            }
            let f = encode(K::DescribeConfigs, v, &req);
            let Request::DescribeConfigs(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(
                r.resources,
                [(2, "t", Some(vec!["retention.ms"])), (4, "0", None)]
            );
            assert!(r.include_synonyms);
        }
        37 => {
            let req = CreatePartitionsRequest::default()
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_count(6)
                        .with_assignments(None),
                ])
                .with_timeout_ms(1000)
                .with_validate_only(true);
            let f = encode(K::CreatePartitions, v, &req);
            let Request::CreatePartitions(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!((r.topics, r.validate_only), (vec![("t", 6)], true));
        }
        60 => {
            let mut req = DescribeClusterRequest::default();
            if v >= 1 {
                req = req.with_endpoint_type(1);
            }
            let f = encode(K::DescribeCluster, v, &req);
            let Request::DescribeCluster(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(r.endpoint_type, 1);
        }
        24 => {
            let req = AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
                .with_v3_and_below_producer_id(ProducerId(7))
                .with_v3_and_below_producer_epoch(3)
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(vec![0, 2]),
                ]);
            let f = encode(K::AddPartitionsToTxn, v, &req);
            let Request::AddPartitionsToTxn(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!(
                (
                    r.producer.transactional_id,
                    r.producer.producer_id,
                    r.producer.producer_epoch
                ),
                ("tx", 7, 3)
            );
            assert_eq!(r.topics, [("t", vec![0, 2])]);
        }
        25 => {
            let req = AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(7))
                .with_producer_epoch(3)
                .with_group_id(GroupId(s("g")));
            let f = encode(K::AddOffsetsToTxn, v, &req);
            let Request::AddOffsetsToTxn(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!((r.producer.producer_id, r.group_id), (7, "g"));
        }
        26 => {
            let req = EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(7))
                .with_producer_epoch(3)
                .with_committed(true);
            let f = encode(K::EndTxn, v, &req);
            let Request::EndTxn(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!((r.producer.transactional_id, r.committed), ("tx", true));
        }
        28 => {
            let mut req = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_group_id(GroupId(s("g")))
                .with_producer_id(ProducerId(7))
                .with_producer_epoch(3)
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(1)
                                .with_committed_offset(42)
                                .with_committed_metadata(Some(s("m"))),
                        ]),
                ]);
            if v >= 3 {
                req = req.with_generation_id(5).with_member_id(s("mem"));
            }
            let f = encode(K::TxnOffsetCommit, v, &req);
            let Request::TxnOffsetCommit(r) = decoded(&f) else {
                panic!()
            };
            assert_eq!((r.group_id, r.producer.producer_epoch), ("g", 3));
            assert_eq!(r.generation_id, if v >= 3 { 5 } else { -1 });
            assert_eq!(r.topics, [("t", vec![(1, 42, Some("m"))])]);
        }
        k => panic!("API key {k} is served but has no check here"),
    }
}

#[test]
fn every_served_api_and_version_decodes_as_kafka_encodes_it() {
    let mut checked = 0;
    for api in APIS {
        for v in api.min..=api.max {
            let key = ApiKey::try_from(api.key).unwrap();
            // The flexible boundary in our table must be Kafka's.
            let kafka_flexible = key.request_header_version(v) >= 2;
            assert_eq!(
                v >= api.flexible_from,
                kafka_flexible,
                "key {} v{v}",
                api.key
            );
            check(api.key, v);
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} versions checked");
}
