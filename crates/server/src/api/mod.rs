//! One handler per API: each takes a decoded request and the server's
//! shared state and returns the encoded response. Rooms: `meta` (ApiVersions,
//! Metadata, FindCoordinator, DescribeCluster, OffsetForLeaderEpoch),
//! `records` (Produce, ListOffsets, InitProducerId), `fetch` (Fetch and
//! its long poll), `admin` (topics and configs), `offsets` (group offsets),
//! `members` (the group membership APIs).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use streamlog::{Log, StoredBatches};

use crate::groups::Groups;
use crate::wire::{Header, Request};
use crate::{Inflight, ServerConfig};

mod admin;
pub(crate) mod errors;
mod fetch;
mod members;
mod meta;
mod offsets;
mod records;
mod txn;

/// What the whole server shares: the log, the settings, the address it
/// advertises, and the coordinator of remote consumer groups.
pub(crate) struct Ctx {
    pub log: Log,
    pub config: ServerConfig,
    pub advertised: SocketAddr,
    pub groups: Groups,
    pub inflight: Inflight,
    pub stopping: AtomicBool,
}

impl Ctx {
    /// Whether the server is shutting down: long waits end early.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

/// A piece of a response: bytes built for it, or stored batches sent from
/// the log's mappings as they are.
pub(crate) enum Chunk {
    Bytes(Vec<u8>),
    Batches(StoredBatches),
}

/// A response: nothing (Produce with acks=0), its chunks after the length
/// prefix (the header is in the first), or no answer and a closed
/// connection.
pub(crate) enum Reply {
    Silent,
    Chunks(Vec<Chunk>),
    Close,
}

impl Reply {
    fn bytes(b: Vec<u8>) -> Reply {
        Reply::Chunks(vec![Chunk::Bytes(b)])
    }
}

/// A response header and message encoded for `header`'s version.
pub(crate) fn encode<M: Encodable>(header: &Header<'_>, msg: &M) -> Reply {
    let mut out = BytesMut::new();
    let version = header.api_version;
    let hv = ApiKey::try_from(header.api_key)
        .map(|k| k.response_header_version(version))
        .unwrap_or(0);
    let res = ResponseHeader::default()
        .with_correlation_id(header.correlation_id)
        .encode(&mut out, hv)
        .and_then(|()| msg.encode(&mut out, version));
    match res {
        Ok(()) => Reply::bytes(out.to_vec()),
        // A message that cannot be encoded at this version is this
        // server's bug, not the client's; it is answered by closing the
        // connection, as a request that cannot be served.
        Err(e) => {
            eprintln!("streamlog-server: cannot encode a response: {e}");
            Reply::Close
        }
    }
}

/// A `StrBytes` of an owned string.
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Serves one decoded request from the client at `peer` (its IP address).
pub(crate) fn handle(ctx: &Ctx, peer: &str, h: &Header<'_>, req: Request<'_>) -> Reply {
    match req {
        Request::ApiVersions(_) => meta::api_versions(h),
        Request::Metadata(r) => meta::metadata(ctx, h, r),
        Request::FindCoordinator(r) => meta::find_coordinator(ctx, h, r),
        Request::DescribeCluster(r) => meta::describe_cluster(ctx, h, r),
        Request::OffsetForLeaderEpoch(r) => meta::offset_for_leader_epoch(ctx, h, r),
        Request::Produce(r) => records::produce(ctx, h, r),
        Request::ListOffsets(r) => records::list_offsets(ctx, h, r),
        Request::InitProducerId(r) => records::init_producer_id(ctx, h, r),
        Request::Fetch(r) => fetch::fetch(ctx, h, r),
        Request::CreateTopics(r) => admin::create_topics(ctx, h, r),
        Request::DeleteTopics(r) => admin::delete_topics(ctx, h, r),
        Request::CreatePartitions(r) => admin::create_partitions(ctx, h, r),
        Request::DescribeConfigs(r) => admin::describe_configs(ctx, h, r),
        Request::OffsetCommit(r) => offsets::offset_commit(ctx, h, r),
        Request::OffsetFetch(r) => offsets::offset_fetch(ctx, h, r),
        Request::JoinGroup(r) => members::join_group(ctx, peer, h, r),
        Request::SyncGroup(r) => members::sync_group(ctx, h, r),
        Request::Heartbeat(r) => members::heartbeat(ctx, h, r),
        Request::LeaveGroup(r) => members::leave_group(ctx, h, r),
        Request::ListGroups(r) => members::list_groups(ctx, h, r),
        Request::DescribeGroups(r) => members::describe_groups(ctx, h, r),
        Request::AddPartitionsToTxn(r) => txn::add_partitions_to_txn(ctx, h, r),
        Request::AddOffsetsToTxn(r) => txn::add_offsets_to_txn(ctx, h, r),
        Request::TxnOffsetCommit(r) => txn::txn_offset_commit(ctx, h, r),
        Request::EndTxn(r) => txn::end_txn(ctx, h, r),
    }
}
