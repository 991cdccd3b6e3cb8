//! Kafka's requests, decoded from untrusted bytes: the request header, the
//! table of APIs and versions this server speaks, and one decoder per API.
//! Nothing here allocates by a length read off the wire (see
//! [`reader`]); responses are encoded elsewhere, with the `kafka-protocol`
//! crate.

pub mod admin;
pub mod data;
pub mod group;
pub mod reader;
pub mod txn;

use reader::{DecodeError, Reader};

/// An API this server serves: its key, the versions it accepts, and the
/// first version that uses the flexible encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    /// Kafka's API key.
    pub key: i16,
    /// Lowest version served.
    pub min: i16,
    /// Highest version served.
    pub max: i16,
    /// First flexible version (may lie above `max`).
    pub flexible_from: i16,
}

/// The APIs and versions served. The caps keep clients on topic names
/// (Fetch 13+, Produce 13, OffsetCommit/OffsetFetch 10 and DeleteTopics 6
/// use topic ids) and off transaction version 2 (Produce 12, EndTxn 5;
/// AddPartitionsToTxn 4+ is the brokers' batched form);
/// ConsumerGroupHeartbeat (KIP-848) is not offered.
pub const APIS: &[Api] = &[
    api(0, 3, 11, 9),  // Produce
    api(1, 4, 12, 12), // Fetch
    api(2, 1, 7, 6),   // ListOffsets
    api(3, 0, 12, 9),  // Metadata
    api(8, 2, 9, 8),   // OffsetCommit
    api(9, 1, 9, 6),   // OffsetFetch
    api(10, 0, 4, 3),  // FindCoordinator
    api(11, 0, 9, 6),  // JoinGroup
    api(12, 0, 4, 4),  // Heartbeat
    api(13, 0, 5, 4),  // LeaveGroup
    api(14, 0, 5, 4),  // SyncGroup
    api(15, 0, 5, 5),  // DescribeGroups
    api(16, 0, 4, 3),  // ListGroups
    api(18, 0, 4, 3),  // ApiVersions
    api(19, 2, 7, 5),  // CreateTopics
    api(20, 1, 5, 4),  // DeleteTopics
    api(22, 0, 4, 2),  // InitProducerId
    api(23, 2, 4, 4),  // OffsetForLeaderEpoch
    api(24, 0, 3, 3),  // AddPartitionsToTxn
    api(25, 0, 3, 3),  // AddOffsetsToTxn
    api(26, 0, 3, 3),  // EndTxn
    api(28, 0, 3, 3),  // TxnOffsetCommit
    api(32, 1, 4, 4),  // DescribeConfigs
    api(37, 0, 3, 2),  // CreatePartitions
    api(60, 0, 1, 0),  // DescribeCluster
];

const fn api(key: i16, min: i16, max: i16, flexible_from: i16) -> Api {
    Api {
        key,
        min,
        max,
        flexible_from,
    }
}

/// The key of ApiVersions, which has rules of its own.
pub const API_VERSIONS: i16 = 18;

/// The served API with this key.
pub fn find_api(key: i16) -> Option<&'static Api> {
    APIS.iter().find(|a| a.key == key)
}

/// A request header (v1, or v2 with tagged fields in flexible versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// The API.
    pub api_key: i16,
    /// Its version.
    pub api_version: i16,
    /// Echoed in the response.
    pub correlation_id: i32,
    /// The client's name for itself.
    pub client_id: Option<&'a str>,
}

/// Reads just the API key, version and correlation id: enough to answer
/// (or refuse) a request whose rest cannot be decoded.
pub fn peek_header(frame: &[u8]) -> Option<(i16, i16, i32)> {
    let b = frame.get(..8)?;
    Some((
        i16::from_be_bytes([b[0], b[1]]),
        i16::from_be_bytes([b[2], b[3]]),
        i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

/// A decoded request.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Request<'a> {
    Produce(data::Produce<'a>),
    Fetch(data::Fetch<'a>),
    ListOffsets(data::ListOffsets<'a>),
    Metadata(data::Metadata<'a>),
    OffsetCommit(group::OffsetCommit<'a>),
    OffsetFetch(group::OffsetFetch<'a>),
    FindCoordinator(group::FindCoordinator<'a>),
    JoinGroup(group::JoinGroup<'a>),
    Heartbeat(group::Heartbeat<'a>),
    LeaveGroup(group::LeaveGroup<'a>),
    SyncGroup(group::SyncGroup<'a>),
    DescribeGroups(group::DescribeGroups<'a>),
    ListGroups(group::ListGroups<'a>),
    ApiVersions(admin::ApiVersions<'a>),
    CreateTopics(admin::CreateTopics<'a>),
    DeleteTopics(admin::DeleteTopics<'a>),
    InitProducerId(data::InitProducerId<'a>),
    OffsetForLeaderEpoch(data::OffsetForLeaderEpoch<'a>),
    DescribeConfigs(admin::DescribeConfigs<'a>),
    CreatePartitions(admin::CreatePartitions<'a>),
    DescribeCluster(admin::DescribeCluster),
    AddPartitionsToTxn(txn::AddPartitionsToTxn<'a>),
    AddOffsetsToTxn(txn::AddOffsetsToTxn<'a>),
    EndTxn(txn::EndTxn<'a>),
    TxnOffsetCommit(txn::TxnOffsetCommit<'a>),
}

/// Why a frame is not a request this server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than a request header.
    TooShort,
    /// An API key this server does not serve.
    UnknownApi(i16),
    /// A version of a served API outside the range served.
    UnsupportedVersion {
        /// The API.
        key: i16,
        /// The version asked for.
        version: i16,
    },
    /// The header or body does not decode.
    Malformed(DecodeError),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::TooShort => write!(f, "a frame shorter than a request header"),
            FrameError::UnknownApi(k) => write!(f, "API key {k} is not served"),
            FrameError::UnsupportedVersion { key, version } => {
                write!(f, "API key {key} version {version} is not served")
            }
            FrameError::Malformed(e) => write!(f, "malformed request: {e}"),
        }
    }
}

impl std::error::Error for FrameError {}

impl From<DecodeError> for FrameError {
    fn from(e: DecodeError) -> Self {
        FrameError::Malformed(e)
    }
}

/// Decodes one request frame (the bytes after its length prefix).
///
/// # Errors
/// A [`FrameError`] saying why the frame is not a request this server
/// serves; the caller closes the connection (Kafka's behaviour), except for
/// an unsupported ApiVersions version, which gets a v0 answer.
pub fn decode(frame: &[u8]) -> Result<(Header<'_>, Request<'_>), FrameError> {
    let (key, version, correlation_id) = peek_header(frame).ok_or(FrameError::TooShort)?;
    let api = find_api(key).ok_or(FrameError::UnknownApi(key))?;
    if version < api.min || version > api.max {
        return Err(FrameError::UnsupportedVersion { key, version });
    }
    let flexible = version >= api.flexible_from;
    // The header's client id is a classic string even in flexible headers.
    let mut h = Reader::new(&frame[8..], false);
    let client_id = h.nullable_str("client_id")?;
    let at = 8 + h.position();
    let mut r = Reader::new(&frame[at..], flexible);
    if flexible {
        r.skip_tags()?;
    }
    let header = Header {
        api_key: key,
        api_version: version,
        correlation_id,
        client_id,
    };
    let v = version;
    let req = match key {
        0 => Request::Produce(data::Produce::decode(&mut r)?),
        1 => Request::Fetch(data::Fetch::decode(&mut r, v)?),
        2 => Request::ListOffsets(data::ListOffsets::decode(&mut r, v)?),
        3 => Request::Metadata(data::Metadata::decode(&mut r, v)?),
        8 => Request::OffsetCommit(group::OffsetCommit::decode(&mut r, v)?),
        9 => Request::OffsetFetch(group::OffsetFetch::decode(&mut r, v)?),
        10 => Request::FindCoordinator(group::FindCoordinator::decode(&mut r, v)?),
        11 => Request::JoinGroup(group::JoinGroup::decode(&mut r, v)?),
        12 => Request::Heartbeat(group::Heartbeat::decode(&mut r, v)?),
        13 => Request::LeaveGroup(group::LeaveGroup::decode(&mut r, v)?),
        14 => Request::SyncGroup(group::SyncGroup::decode(&mut r, v)?),
        15 => Request::DescribeGroups(group::DescribeGroups::decode(&mut r, v)?),
        16 => Request::ListGroups(group::ListGroups::decode(&mut r, v)?),
        18 => Request::ApiVersions(admin::ApiVersions::decode(&mut r, v)?),
        19 => Request::CreateTopics(admin::CreateTopics::decode(&mut r)?),
        20 => Request::DeleteTopics(admin::DeleteTopics::decode(&mut r)?),
        22 => Request::InitProducerId(data::InitProducerId::decode(&mut r, v)?),
        23 => Request::OffsetForLeaderEpoch(data::OffsetForLeaderEpoch::decode(&mut r, v)?),
        32 => Request::DescribeConfigs(admin::DescribeConfigs::decode(&mut r, v)?),
        37 => Request::CreatePartitions(admin::CreatePartitions::decode(&mut r)?),
        60 => Request::DescribeCluster(admin::DescribeCluster::decode(&mut r, v)?),
        24 => Request::AddPartitionsToTxn(txn::AddPartitionsToTxn::decode(&mut r)?),
        25 => Request::AddOffsetsToTxn(txn::AddOffsetsToTxn::decode(&mut r)?),
        26 => Request::EndTxn(txn::EndTxn::decode(&mut r)?),
        28 => Request::TxnOffsetCommit(txn::TxnOffsetCommit::decode(&mut r, v)?),
        _ => return Err(FrameError::UnknownApi(key)),
    };
    // Bytes after the fields are ignored, as Kafka's broker ignores them:
    // librdkafka 2.x sends three after a Metadata v12 request for all topics.
    Ok((header, req))
}

/// The answer Kafka gives an ApiVersions request of a version it does not
/// know: a v0 body, UNSUPPORTED_VERSION (35), and its ApiVersions range,
/// so the client can retry with a version both sides speak.
pub fn unsupported_api_versions_body() -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&35i16.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes());
    let api = find_api(API_VERSIONS).map_or((0, 4), |a| (a.min, a.max));
    out.extend_from_slice(&API_VERSIONS.to_be_bytes());
    out.extend_from_slice(&api.0.to_be_bytes());
    out.extend_from_slice(&api.1.to_be_bytes());
    out
}
