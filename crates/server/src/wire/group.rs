//! Requests of consumer groups and their offsets: FindCoordinator,
//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch,
//! ListGroups, DescribeGroups.

use super::reader::{Reader, Result};

/// FindCoordinator (key 10), v0–4: the keys asked about (one before v4).
#[derive(Debug, Clone, PartialEq)]
pub struct FindCoordinator<'a> {
    /// 0: a group; 1: a transaction.
    pub key_type: i8,
    /// The group or transaction ids.
    pub keys: Vec<&'a str>,
    /// Whether the request used the batched form (v4+).
    pub batched: bool,
}

impl<'a> FindCoordinator<'a> {
    /// Decodes the body of a v0–4 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let single = if version <= 3 {
            Some(r.str("key")?)
        } else {
            None
        };
        let key_type = if version >= 1 { r.i8("key_type")? } else { 0 };
        let keys = match single {
            Some(k) => vec![k],
            None => r.array("coordinator_keys", |r| r.str("coordinator key"))?,
        };
        r.skip_tags()?;
        Ok(FindCoordinator {
            key_type,
            keys,
            batched: version >= 4,
        })
    }
}

/// JoinGroup (key 11), v0–9.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinGroup<'a> {
    /// The group.
    pub group_id: &'a str,
    /// How long the member may go without a heartbeat.
    pub session_timeout_ms: i32,
    /// How long the group waits for members to rejoin (v1+; else the
    /// session timeout).
    pub rebalance_timeout_ms: i32,
    /// The member's id; empty for a new member.
    pub member_id: &'a str,
    /// A static member's instance id (v5+).
    pub group_instance_id: Option<&'a str>,
    /// "consumer" for consumers.
    pub protocol_type: &'a str,
    /// `(assignor name, subscription metadata)`, in preference order.
    pub protocols: Vec<(&'a str, &'a [u8])>,
}

impl<'a> JoinGroup<'a> {
    /// Decodes the body of a v0–9 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let group_id = r.str("group_id")?;
        let session_timeout_ms = r.i32("session_timeout_ms")?;
        let rebalance_timeout_ms = if version >= 1 {
            r.i32("rebalance_timeout_ms")?
        } else {
            session_timeout_ms
        };
        let member_id = r.str("member_id")?;
        let group_instance_id = if version >= 5 {
            r.nullable_str("group_instance_id")?
        } else {
            None
        };
        let protocol_type = r.str("protocol_type")?;
        let protocols = r.array("protocols", |r| {
            let name = r.str("protocol name")?;
            let meta = r.bytes("protocol metadata")?;
            r.skip_tags()?;
            Ok((name, meta))
        })?;
        if version >= 8 {
            r.nullable_str("reason")?;
        }
        r.skip_tags()?;
        Ok(JoinGroup {
            group_id,
            session_timeout_ms,
            rebalance_timeout_ms,
            member_id,
            group_instance_id,
            protocol_type,
            protocols,
        })
    }
}

/// SyncGroup (key 14), v0–5.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncGroup<'a> {
    /// The group.
    pub group_id: &'a str,
    /// The generation the member joined.
    pub generation_id: i32,
    /// The member.
    pub member_id: &'a str,
    /// A static member's instance id.
    pub group_instance_id: Option<&'a str>,
    /// v5+: must match the group's.
    pub protocol_type: Option<&'a str>,
    /// v5+: must match the group's.
    pub protocol_name: Option<&'a str>,
    /// From the leader: `(member id, assignment)`.
    pub assignments: Vec<(&'a str, &'a [u8])>,
}

impl<'a> SyncGroup<'a> {
    /// Decodes the body of a v0–5 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let group_id = r.str("group_id")?;
        let generation_id = r.i32("generation_id")?;
        let member_id = r.str("member_id")?;
        let group_instance_id = if version >= 3 {
            r.nullable_str("group_instance_id")?
        } else {
            None
        };
        let (protocol_type, protocol_name) = if version >= 5 {
            (
                r.nullable_str("protocol_type")?,
                r.nullable_str("protocol_name")?,
            )
        } else {
            (None, None)
        };
        let assignments = r.array("assignments", |r| {
            let m = r.str("member_id")?;
            let a = r.bytes("assignment")?;
            r.skip_tags()?;
            Ok((m, a))
        })?;
        r.skip_tags()?;
        Ok(SyncGroup {
            group_id,
            generation_id,
            member_id,
            group_instance_id,
            protocol_type,
            protocol_name,
            assignments,
        })
    }
}

/// Heartbeat (key 12), v0–4.
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat<'a> {
    /// The group.
    pub group_id: &'a str,
    /// The member's generation.
    pub generation_id: i32,
    /// The member.
    pub member_id: &'a str,
    /// A static member's instance id.
    pub group_instance_id: Option<&'a str>,
}

impl<'a> Heartbeat<'a> {
    /// Decodes the body of a v0–4 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let group_id = r.str("group_id")?;
        let generation_id = r.i32("generation_id")?;
        let member_id = r.str("member_id")?;
        let group_instance_id = if version >= 3 {
            r.nullable_str("group_instance_id")?
        } else {
            None
        };
        r.skip_tags()?;
        Ok(Heartbeat {
            group_id,
            generation_id,
            member_id,
            group_instance_id,
        })
    }
}

/// LeaveGroup (key 13), v0–5.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaveGroup<'a> {
    /// The group.
    pub group_id: &'a str,
    /// `(member id, instance id)` of each member leaving (one before v3).
    pub members: Vec<(&'a str, Option<&'a str>)>,
    /// Whether the request listed members (v3+).
    pub batched: bool,
}

impl<'a> LeaveGroup<'a> {
    /// Decodes the body of a v0–5 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let group_id = r.str("group_id")?;
        let members = if version <= 2 {
            vec![(r.str("member_id")?, None)]
        } else {
            r.array("members", |r| {
                let m = r.str("member_id")?;
                let i = r.nullable_str("group_instance_id")?;
                if version >= 5 {
                    r.nullable_str("reason")?;
                }
                r.skip_tags()?;
                Ok((m, i))
            })?
        };
        r.skip_tags()?;
        Ok(LeaveGroup {
            group_id,
            members,
            batched: version >= 3,
        })
    }
}

/// `(partition, offset, metadata)` of an [`OffsetCommit`].
pub type CommittedOffset<'a> = (i32, i64, Option<&'a str>);

/// `(topic, partitions)` asked for by an [`OffsetFetch`].
pub type TopicPartitions<'a> = (&'a str, Vec<i32>);

/// OffsetCommit (key 8), v2–9.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetCommit<'a> {
    /// The group.
    pub group_id: &'a str,
    /// The member's generation; −1 for a commit from outside the group.
    pub generation_id: i32,
    /// The member; empty from outside the group.
    pub member_id: &'a str,
    /// A static member's instance id (v7+).
    pub group_instance_id: Option<&'a str>,
    /// `(topic, [(partition, offset, metadata)])`.
    pub topics: Vec<(&'a str, Vec<CommittedOffset<'a>>)>,
}

impl<'a> OffsetCommit<'a> {
    /// Decodes the body of a v2–9 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let group_id = r.str("group_id")?;
        let generation_id = r.i32("generation_id")?;
        let member_id = r.str("member_id")?;
        let group_instance_id = if version >= 7 {
            r.nullable_str("group_instance_id")?
        } else {
            None
        };
        if version <= 4 {
            r.i64("retention_time_ms")?;
        }
        let topics = r.array("topics", |r| {
            let name = r.str("topic")?;
            let parts = r.array("partitions", |r| {
                let p = r.i32("partition")?;
                let offset = r.i64("committed_offset")?;
                if version >= 6 {
                    r.i32("committed_leader_epoch")?;
                }
                let meta = r.nullable_str("committed_metadata")?;
                r.skip_tags()?;
                Ok((p, offset, meta))
            })?;
            r.skip_tags()?;
            Ok((name, parts))
        })?;
        r.skip_tags()?;
        Ok(OffsetCommit {
            group_id,
            generation_id,
            member_id,
            group_instance_id,
            topics,
        })
    }
}

/// OffsetFetch (key 9), v1–9: one group before v8, many after.
#[derive(Debug, Clone, PartialEq)]
pub struct OffsetFetch<'a> {
    /// `(group, topics)`; topics `None` asks for all the group's offsets.
    pub groups: Vec<(&'a str, Option<Vec<TopicPartitions<'a>>>)>,
    /// Whether the request used the batched form (v8+).
    pub batched: bool,
}

impl<'a> OffsetFetch<'a> {
    /// Decodes the body of a v1–9 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let topics = |r: &mut Reader<'a>| {
            r.nullable_array("topics", |r| {
                let name = r.str("topic")?;
                let parts = r.array("partition_indexes", |r| r.i32("partition"))?;
                r.skip_tags()?;
                Ok((name, parts))
            })
        };
        let groups = if version <= 7 {
            let g = r.str("group_id")?;
            let t = topics(r)?;
            vec![(g, t)]
        } else {
            r.array("groups", |r| {
                let g = r.str("group_id")?;
                if version >= 9 {
                    r.nullable_str("member_id")?;
                    r.i32("member_epoch")?;
                }
                let t = topics(r)?;
                r.skip_tags()?;
                Ok((g, t))
            })?
        };
        if version >= 7 {
            r.bool("require_stable")?;
        }
        r.skip_tags()?;
        Ok(OffsetFetch {
            groups,
            batched: version >= 8,
        })
    }
}

/// ListGroups (key 16), v0–4: the state filter (v4+).
#[derive(Debug, Clone, PartialEq)]
pub struct ListGroups<'a> {
    /// Only groups in one of these states; empty for all.
    pub states: Vec<&'a str>,
}

impl<'a> ListGroups<'a> {
    /// Decodes the body of a v0–4 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let states = if version >= 4 {
            r.array("states_filter", |r| r.str("state"))?
        } else {
            Vec::new()
        };
        r.skip_tags()?;
        Ok(ListGroups { states })
    }
}

/// DescribeGroups (key 15), v0–5.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeGroups<'a> {
    /// The groups.
    pub groups: Vec<&'a str>,
}

impl<'a> DescribeGroups<'a> {
    /// Decodes the body of a v0–5 request.
    pub fn decode(r: &mut Reader<'a>, version: i16) -> Result<Self> {
        let groups = r.array("groups", |r| r.str("group"))?;
        if version >= 3 {
            r.bool("include_authorized_operations")?;
        }
        r.skip_tags()?;
        Ok(DescribeGroups { groups })
    }
}
