//! Finishing transactions at open: replaying `__transaction_state` into the
//! coordinator, then deciding every transaction a crash left open in any
//! partition (ARCHITECTURE.md, "Exactly-once").

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::groups::PendingOffsets;
use crate::error::Result;
use crate::format::batch::v2::ControlType;
use crate::format::batch::{records_section, RecordIter};
use crate::format::txn::{decode_txn_key, decode_txn_value, encode_txn_key, encode_txn_value};
use crate::format::txn::{TxnLogValue, TxnStatus};
use crate::group::offsets::OFFSETS_TOPIC;
use crate::group::store::GroupStore;
use crate::producer::encode;
use crate::record::Record;
use crate::storage::partition::read::FetchedBatch;
use crate::storage::partition::Partition;
use crate::storage::recovery::report::{RecoveryReport, SkippedRecord};
use crate::topic::Topic;
use crate::txn::{TxnCoordinator, TxnIdState, TXN_STATE_TOPIC};

/// Loads `__transaction_state` into `txns` at open: the last value of each
/// transactional id. An unreadable record is skipped (its id keeps its
/// previous state) and reported.
pub(super) fn replay_txn_state(
    topic: Option<&Topic>,
    txns: &TxnCoordinator,
    report: &mut RecoveryReport,
) -> Result<()> {
    let Some(topic) = topic else {
        return Ok(());
    };
    let part = topic.partition(0)?;
    let mut latest: HashMap<String, Option<TxnLogValue>> = HashMap::new();
    walk(part, |b, key, value| {
        let Some(key) = key else { return };
        match decode_txn_key(key) {
            Ok(id) => match value.map(decode_txn_value) {
                None => {
                    latest.insert(id, None);
                }
                Some(Ok(v)) => {
                    latest.insert(id, Some(v));
                }
                Some(Err(reason)) => report.offsets_skipped.push(skipped(b, reason)),
            },
            Err(reason) => report.offsets_skipped.push(skipped(b, reason)),
        }
    })?;
    for (id, v) in latest {
        match v {
            None => txns.remove(&id),
            Some(v) => {
                txns.get_or_insert(&id, || {
                    TxnIdState::new(v.producer_id, v.producer_epoch, v.status, v.partitions)
                });
            }
        }
    }
    Ok(())
}

fn skipped(b: &FetchedBatch, reason: String) -> SkippedRecord {
    SkippedRecord {
        path: b.segment.log.path().to_owned(),
        offset: b.header.base_offset,
        reason: format!("__transaction_state: {reason}"),
    }
}

/// Calls `f` with every data record (key, value) of a partition, in order.
fn walk(
    part: &Partition,
    mut f: impl FnMut(&FetchedBatch, Option<&[u8]>, Option<&[u8]>),
) -> Result<()> {
    let end = part.end_offset();
    let mut pos = part.start_offset();
    let mut batches = Vec::new();
    while pos < end {
        batches.clear();
        part.fetch(pos, 1 << 20, usize::MAX, &mut batches)?;
        if batches.is_empty() {
            break;
        }
        for b in &batches {
            pos = b.header.next_offset();
            if b.header.is_control() {
                continue;
            }
            let Ok(section) = records_section(&b.header, b.bytes()) else {
                continue;
            };
            for r in RecordIter::new(&b.header, &section).flatten() {
                f(b, r.key, r.value);
            }
        }
    }
    Ok(())
}

/// Finishes, at open, every transaction the last run left open: rolled
/// forward where `__transaction_state` holds its durable commit decision,
/// aborted otherwise. Offsets pending in `__consumer_offsets` are applied
/// with a COMMIT and dropped with an ABORT. Each transactional id left in
/// a Prepare state gets its Complete state.
pub(super) fn finish_transactions(
    topics: &BTreeMap<String, Arc<Topic>>,
    txns: &TxnCoordinator,
    groups: &GroupStore,
    pending_offsets: &mut PendingOffsets,
    now: i64,
    report: &mut RecoveryReport,
) -> Result<()> {
    let mut decided: HashMap<(i64, i16), bool> = HashMap::new();
    for t in topics.values() {
        for part in &t.partitions {
            for (pid, epoch, _) in part.open_transactions() {
                let commit = txns.decided_commit(pid, epoch);
                decided.insert((pid, epoch), commit);
                let kind = if commit {
                    ControlType::Commit
                } else {
                    ControlType::Abort
                };
                part.append_marker(pid, epoch, kind)?;
                part.flush()?;
                if &*t.name == OFFSETS_TOPIC {
                    let records = pending_offsets.remove(&pid).unwrap_or_default();
                    if commit {
                        let mut map = groups.offsets();
                        for (k, v) in records {
                            let _ = crate::format::offsets::apply(&mut map, Some(&k), v.as_deref());
                        }
                    }
                }
            }
        }
    }
    for commit in decided.values() {
        if *commit {
            report.transactions_committed += 1;
        } else {
            report.transactions_aborted += 1;
        }
    }
    // Transactions whose state records a crash lost still used their
    // epochs: the next handle's epoch must be newer than any a partition
    // holds for the id's producer.
    for slot in txns.slots() {
        let mut st = slot.state.lock();
        for t in topics.values() {
            for part in &t.partitions {
                if let Some(e) = part.producer_epoch(st.producer_id) {
                    st.epoch = st.epoch.max(e);
                }
            }
        }
    }
    // Complete what was decided.
    let Some(state_topic) = topics.get(TXN_STATE_TOPIC) else {
        return Ok(());
    };
    for slot in txns.slots() {
        let mut st = slot.state.lock();
        let complete = match st.status {
            TxnStatus::PrepareCommit => TxnStatus::CompleteCommit,
            TxnStatus::PrepareAbort | TxnStatus::Ongoing => TxnStatus::CompleteAbort,
            _ => continue,
        };
        let value = TxnLogValue {
            producer_id: st.producer_id,
            producer_epoch: st.epoch,
            timeout_ms: 0,
            status: complete,
            partitions: Vec::new(),
            last_update_ms: now,
            start_ms: -1,
        };
        let key = encode_txn_key(&slot.id);
        let bytes = encode_txn_value(&value);
        let rec = Record::new(&bytes[..]).key(&key[..]).timestamp(now);
        let mut batch = encode(state_topic, [&rec].into_iter(), now, None)?;
        let part = state_topic.partition(0)?;
        part.append(&mut batch)?;
        part.flush()?;
        st.status = complete;
        st.partitions.clear();
    }
    Ok(())
}
