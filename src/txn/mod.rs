//! The transaction coordinator's in-memory state: one slot per
//! transactional id (its producer id and epoch, its last recorded status,
//! its open transaction), the image of `__transaction_state`. The log's
//! side (`log/transactions.rs`) writes the state records, the markers and
//! the offsets, and finishes transactions at open.
//!
//! Each slot's mutex serializes everything done under one transactional
//! id: sends, commits, aborts, fencing by a newer handle and the abort of
//! a transaction that timed out. A stale handle therefore can never append
//! after it was fenced.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::format::txn::TxnStatus;
use crate::group::offsets::{ConsumerGroupMetadata, OffsetAndMetadata};
use crate::record::TopicPartition;

/// The internal topic holding transaction states.
pub(crate) const TXN_STATE_TOPIC: &str = "__transaction_state";

/// A transaction's default timeout (Kafka's `transaction.timeout.ms`).
pub(crate) const DEFAULT_TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest timeout a transaction may have (Kafka's
/// `transaction.max.timeout.ms`, 15 minutes).
pub(crate) const MAX_TXN_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Offsets sent to a transaction by one consumer.
#[derive(Debug, Clone)]
pub(crate) struct TxnOffsets {
    pub group: ConsumerGroupMetadata,
    pub offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
}

/// An open transaction.
#[derive(Debug)]
pub(crate) struct OpenTxn {
    /// Which transaction of the slot this is (the handle's is compared).
    pub seq: u64,
    pub start_ms: i64,
    pub timeout_ms: u64,
    /// The partitions written to, by topic name.
    pub partitions: BTreeSet<(String, u32)>,
    pub offsets: Vec<TxnOffsets>,
}

impl OpenTxn {
    pub fn expired(&self, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.start_ms) > self.timeout_ms.min(i64::MAX as u64) as i64
    }
}

/// The state of one transactional id.
#[derive(Debug)]
pub(crate) struct TxnIdState {
    pub producer_id: i64,
    /// The epoch the next batches carry: bumped by every new handle and at
    /// the end of every transaction (as Kafka's transaction version 2
    /// does), so that a producer id and epoch name one transaction, and a
    /// commit decision can never be mistaken for a later transaction's.
    /// −1 before the first handle.
    pub epoch: i16,
    /// Bumped by every new handle: a handle holding an older one is fenced.
    pub handle_gen: u64,
    /// The status last recorded in `__transaction_state`.
    pub status: TxnStatus,
    /// The partitions of the last recorded Prepare status.
    pub partitions: Vec<(String, Vec<i32>)>,
    pub open: Option<OpenTxn>,
    /// The number of transactions begun (the next one's `seq`).
    pub begun: u64,
    /// The transaction aborted because it timed out, by `seq`.
    pub timed_out: Option<(u64, u64)>,
    /// The producer id and epoch of the last committed transaction.
    pub committed: (i64, i16),
    /// Partitions that still lack that transaction's COMMIT marker (a
    /// failure after the decision): written before any later record.
    pub unwritten_markers: Vec<(String, u32)>,
    /// Partitions whose COMMIT markers of that transaction may not be
    /// durable yet: synced before any later state record of the id is
    /// appended (it would supersede the transaction's decision).
    pub unsynced_markers: Vec<(String, u32)>,
    /// Set while a remote client (Kafka's protocol, transaction version 1)
    /// drives the id: its transaction timeout. Its epoch then stays the
    /// same across the transactions it commits or aborts itself, as Kafka's
    /// clients expect; an `Ongoing` state record made durable before the
    /// first batch of each transaction keeps recovery from reading an
    /// earlier commit's decision as this one's.
    pub remote: Option<Duration>,
}

impl TxnIdState {
    /// The state of an id as last recorded: no handle, nothing open.
    pub fn new(
        producer_id: i64,
        epoch: i16,
        status: TxnStatus,
        partitions: Vec<(String, Vec<i32>)>,
    ) -> Self {
        TxnIdState {
            producer_id,
            epoch,
            handle_gen: 0,
            status,
            partitions,
            open: None,
            begun: 0,
            timed_out: None,
            committed: (-1, -1),
            unwritten_markers: Vec::new(),
            unsynced_markers: Vec::new(),
            remote: None,
        }
    }
}

/// One transactional id.
#[derive(Debug)]
pub(crate) struct TxnSlot {
    pub id: String,
    pub state: Mutex<TxnIdState>,
}

/// Every transactional id of a log.
#[derive(Debug, Default)]
pub(crate) struct TxnCoordinator {
    slots: Mutex<HashMap<String, Arc<TxnSlot>>>,
}

impl TxnCoordinator {
    pub fn get(&self, id: &str) -> Option<Arc<TxnSlot>> {
        self.slots.lock().get(id).cloned()
    }

    /// The slot of `id`, made with `init` if there is none.
    pub fn get_or_insert(&self, id: &str, init: impl FnOnce() -> TxnIdState) -> Arc<TxnSlot> {
        self.slots
            .lock()
            .entry(id.to_owned())
            .or_insert_with(|| {
                Arc::new(TxnSlot {
                    id: id.to_owned(),
                    state: Mutex::new(init()),
                })
            })
            .clone()
    }

    /// Every slot.
    pub fn slots(&self) -> Vec<Arc<TxnSlot>> {
        self.slots.lock().values().cloned().collect()
    }

    /// Forgets a transactional id (a tombstone in `__transaction_state`).
    pub fn remove(&self, id: &str) {
        self.slots.lock().remove(id);
    }

    /// Whether a durable commit decision covers producer `pid`'s open
    /// transaction at `epoch`.
    pub fn decided_commit(&self, pid: i64, epoch: i16) -> bool {
        self.slots().iter().any(|s| {
            let st = s.state.lock();
            st.producer_id == pid && st.epoch == epoch && st.status == TxnStatus::PrepareCommit
        })
    }
}
