//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups and
//! DescribeGroups, on the coordinator in `groups`.

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DescribeGroupsResponse, GroupId, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse,
    ListGroupsResponse, SyncGroupResponse,
};

use super::errors;
use super::{encode, sb, Ctx, Reply};
use crate::groups::{JoinArgs, Phase};
use crate::wire::group::{DescribeGroups, Heartbeat, JoinGroup, LeaveGroup, ListGroups, SyncGroup};
use crate::wire::Header;

pub(super) fn join_group(ctx: &Ctx, peer: &str, h: &Header<'_>, r: JoinGroup<'_>) -> Reply {
    let resp = JoinGroupResponse::default();
    if r.group_id.is_empty() {
        return encode(
            h,
            &resp
                .with_error_code(errors::INVALID_GROUP_ID)
                .with_generation_id(-1),
        );
    }
    let group = ctx.groups.group(r.group_id);
    let args = JoinArgs {
        member_id: r.member_id,
        instance_id: r.group_instance_id,
        client_id: h.client_id.unwrap_or(""),
        client_host: peer.to_owned(),
        session_timeout_ms: r.session_timeout_ms,
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        protocol_type: r.protocol_type,
        protocols: r
            .protocols
            .iter()
            .map(|(n, m)| (n.to_string(), m.to_vec()))
            .collect(),
        require_known_id: h.api_version >= 4,
    };
    let j = group.join(&ctx.groups, &ctx.log, args, &|| ctx.stopping());
    let v = h.api_version;
    let members = j
        .members
        .into_iter()
        .map(|(id, inst, meta)| {
            JoinGroupResponseMember::default()
                .with_member_id(sb(id))
                .with_group_instance_id(inst.filter(|_| v >= 5).map(sb))
                .with_metadata(Bytes::from(meta))
        })
        .collect();
    encode(
        h,
        &resp
            .with_error_code(j.error)
            .with_generation_id(j.generation)
            // Before v7 the protocol name is not nullable.
            .with_protocol_name(j.protocol.map(sb).or_else(|| (v < 7).then(|| sb(""))))
            .with_protocol_type(j.protocol_type.filter(|_| v >= 7).map(sb))
            .with_leader(sb(j.leader))
            .with_member_id(sb(j.member_id))
            .with_members(members),
    )
}

pub(super) fn sync_group(ctx: &Ctx, h: &Header<'_>, r: SyncGroup<'_>) -> Reply {
    let (error, ptype, pname, assignment) = match ctx.groups.get(r.group_id) {
        None => (errors::UNKNOWN_MEMBER_ID, None, None, Vec::new()),
        Some(g) => g.sync(
            r.member_id,
            r.group_instance_id,
            r.generation_id,
            (r.protocol_type, r.protocol_name),
            &r.assignments,
            &|| ctx.stopping(),
        ),
    };
    let v5 = h.api_version >= 5;
    encode(
        h,
        &SyncGroupResponse::default()
            .with_error_code(error)
            .with_protocol_type(ptype.filter(|_| v5).map(sb))
            .with_protocol_name(pname.filter(|_| v5).map(sb))
            .with_assignment(Bytes::from(assignment)),
    )
}

pub(super) fn heartbeat(ctx: &Ctx, h: &Header<'_>, r: Heartbeat<'_>) -> Reply {
    let error = match ctx.groups.get(r.group_id) {
        None => errors::UNKNOWN_MEMBER_ID,
        Some(g) => g.heartbeat(r.member_id, r.group_instance_id, r.generation_id),
    };
    encode(h, &HeartbeatResponse::default().with_error_code(error))
}

pub(super) fn leave_group(ctx: &Ctx, h: &Header<'_>, r: LeaveGroup<'_>) -> Reply {
    let group = ctx.groups.get(r.group_id);
    let results: Vec<(&str, Option<&str>, i16)> = r
        .members
        .iter()
        .map(|&(m, inst)| {
            let c = group
                .as_ref()
                .map_or(errors::UNKNOWN_MEMBER_ID, |g| g.leave(m, inst));
            (m, inst, c)
        })
        .collect();
    let resp = if r.batched {
        LeaveGroupResponse::default().with_members(
            results
                .iter()
                .map(|&(m, inst, c)| {
                    MemberResponse::default()
                        .with_member_id(sb(m))
                        .with_group_instance_id(inst.map(sb))
                        .with_error_code(c)
                })
                .collect(),
        )
    } else {
        LeaveGroupResponse::default().with_error_code(results.first().map_or(errors::NONE, |r| r.2))
    };
    encode(h, &resp)
}

/// Every group: remote ones with their phase, and those known only by
/// committed offsets (in-process groups among them) as "Empty".
fn all_groups(ctx: &Ctx) -> Vec<(String, &'static str, String)> {
    let mut out: Vec<(String, &'static str, String)> = Vec::new();
    for g in ctx.groups.all() {
        let s = g.lock();
        let ptype = s.protocol_type.clone().unwrap_or_else(|| "consumer".into());
        out.push((g.id.clone(), s.phase.name(), ptype));
    }
    for id in ctx.log.groups() {
        if !out.iter().any(|(g, _, _)| *g == id) {
            out.push((id, Phase::Empty.name(), "consumer".into()));
        }
    }
    out.sort();
    out
}

pub(super) fn list_groups(ctx: &Ctx, h: &Header<'_>, r: ListGroups<'_>) -> Reply {
    let groups = all_groups(ctx)
        .into_iter()
        .filter(|(_, state, _)| {
            r.states.is_empty() || r.states.iter().any(|s| s.eq_ignore_ascii_case(state))
        })
        .map(|(id, state, ptype)| {
            let g = ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb(ptype));
            if h.api_version >= 4 {
                g.with_group_state(sb(state))
            } else {
                g
            }
        })
        .collect();
    encode(h, &ListGroupsResponse::default().with_groups(groups))
}

pub(super) fn describe_groups(ctx: &Ctx, h: &Header<'_>, r: DescribeGroups<'_>) -> Reply {
    let known = all_groups(ctx);
    let groups = r
        .groups
        .iter()
        .map(|id| {
            let d = DescribedGroup::default().with_group_id(GroupId(sb(*id)));
            if let Some(g) = ctx.groups.get(id) {
                let s = g.lock();
                let protocol = s.protocol.clone().unwrap_or_default();
                let stable = s.phase == Phase::Stable;
                let members = s
                    .members
                    .values()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(sb(m.id.clone()))
                            .with_group_instance_id(
                                m.instance_id.clone().filter(|_| h.api_version >= 4).map(sb),
                            )
                            .with_client_id(sb(m.client_id.clone()))
                            .with_client_host(sb(m.client_host.clone()))
                            .with_member_metadata(Bytes::from(m.metadata(&protocol).to_vec()))
                            .with_member_assignment(Bytes::from(if stable {
                                m.assignment.clone()
                            } else {
                                Vec::new()
                            }))
                    })
                    .collect();
                return d
                    .with_group_state(sb(s.phase.name()))
                    .with_protocol_type(sb(s.protocol_type.clone().unwrap_or_default()))
                    .with_protocol_data(sb(protocol))
                    .with_members(members);
            }
            match known.iter().find(|(g, _, _)| g == id) {
                Some((_, state, ptype)) => d
                    .with_group_state(sb(*state))
                    .with_protocol_type(sb(ptype.clone())),
                // Kafka describes a group it never heard of as Dead.
                None => d.with_group_state(sb("Dead")),
            }
        })
        .collect();
    encode(h, &DescribeGroupsResponse::default().with_groups(groups))
}
