//! One mirror transaction: the copied records, then their progress (the
//! runs they form, each partition's next source offset, and tombstones
//! for runs the source no longer needs), committed together.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer};
use streamlog::TopicPartition;

use super::run::{Batch, Run};
use super::txn::{classify, Retry};
use crate::error::Error;
use crate::kafka::{self, CALL_TIMEOUT};
use crate::progress;

/// How often a transaction looks for runs to prune.
const PRUNE_EVERY: Duration = Duration::from_secs(10);
/// The most runs one transaction prunes.
const MAX_PRUNES: usize = 10_000;

impl Run {
    /// Copies one batch in one Kafka transaction, with its progress: the
    /// chunk read already, then more chunks, each sent before the next is
    /// read, until the batch is full or the Log has nothing more.
    pub(super) fn copy(&mut self, batch: &mut Batch) -> Result<(), Retry> {
        let id = self.opts.id.clone();
        let fail = |what: &str, e: KafkaError| classify(&id, what, e);
        self.pending_runs.clear();
        self.pending_prunes.clear();
        self.producer
            .begin_transaction()
            .map_err(|e| fail("begin a transaction", e))?;
        let result = self.copy_in_transaction(batch);
        match result {
            Ok(()) => {
                // The progress records delivered first: `commit_transaction`
                // of the rdkafka crate flushes in 100 ms steps otherwise.
                let committed = kafka::drain(&self.producer, CALL_TIMEOUT * 2)
                    .and_then(|()| self.producer.commit_transaction(CALL_TIMEOUT * 2));
                if let Err(e) = committed {
                    let r = fail("commit a transaction", e);
                    self.abort();
                    return Err(r);
                }
            }
            Err(e) => {
                self.abort();
                return Err(e);
            }
        }
        for (tp, run) in self.pending_runs.drain(..) {
            self.map.insert(&tp, run);
        }
        for (tp, first) in self.pending_prunes.drain(..) {
            self.map.remove(&tp, first);
        }
        self.report.transactions += 1;
        self.report.records += batch.records.len() as u64;
        if let (Some(t), false) = (self.copy_started, batch.records.is_empty()) {
            self.report.copying = t.elapsed();
        }
        if self.opts.verbose {
            eprintln!(
                "mirror {}: transaction {} committed {} records ({} in all)",
                self.opts.id,
                self.report.transactions,
                batch.records.len(),
                self.report.records
            );
        }
        for (tp, p) in &batch.positions {
            self.copied.insert(tp.clone(), *p);
        }
        Ok(())
    }

    pub(super) fn abort(&self) {
        // A base producer aborts only once every delivery report is
        // served; records that failed report here too.
        let _ = kafka::drain(&self.producer, CALL_TIMEOUT);
        if let Err(e) = self.producer.abort_transaction(CALL_TIMEOUT * 2) {
            eprintln!("mirror: aborting a transaction failed: {e}");
        }
    }

    fn copy_in_transaction(&mut self, batch: &mut Batch) -> Result<(), Retry> {
        let id = self.opts.id.clone();
        let fail = |what: &str, e: KafkaError| classify(&id, what, e);
        self.producer
            .context()
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let mut sent = 0;
        loop {
            self.send_chunk(batch, sent)
                .map_err(|e| fail("produce a record", e))?;
            // The producer holds its own copies now; a retried transaction
            // reads the records from the Log again.
            for rec in &mut batch.records[sent..] {
                rec.key = None;
                rec.value = None;
                rec.headers = Vec::new();
            }
            sent = batch.records.len();
            if batch.drained || self.full(batch) {
                break;
            }
            self.gather_more(batch)?;
        }
        self.finish_transaction(batch)
    }

    /// Sends the batch's records from index `from` on, each with its index
    /// as the delivery report's slot.
    fn send_chunk(&self, batch: &Batch, from: usize) -> Result<(), KafkaError> {
        // Slots first: a send that finds the queue full serves delivery
        // reports, of this chunk too.
        self.producer
            .context()
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .resize(batch.records.len(), None);
        for (i, rec) in batch.records.iter().enumerate().skip(from) {
            let mut r: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(&rec.topic, i)
                    .partition(rec.partition as i32)
                    .timestamp(rec.timestamp);
            if !rec.headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
                for (k, v) in &rec.headers {
                    headers = headers.insert(Header {
                        key: k.as_str(),
                        value: v.as_deref(),
                    });
                }
                r = r.headers(headers);
            }
            if let Some(k) = &rec.key {
                r = r.key(k.as_slice());
            }
            if let Some(v) = &rec.value {
                r = r.payload(v.as_slice());
            }
            self.send(r)?;
        }
        Ok(())
    }

    /// Waits for the batch's deliveries, then sends its progress.
    fn finish_transaction(&mut self, batch: &Batch) -> Result<(), Retry> {
        let id = self.opts.id.clone();
        let fail = |what: &str, e: KafkaError| classify(&id, what, e);
        kafka::drain(&self.producer, CALL_TIMEOUT * 2)
            .map_err(|e| fail("deliver a transaction's records", e))?;
        let results = std::mem::take(
            &mut *self
                .producer
                .context()
                .results
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let mut pairs: BTreeMap<(&str, u32), Vec<(u64, u64)>> = BTreeMap::new();
        // A record without a report (none can be: every chunk's slots are
        // made before it is sent) fails the transaction like a missing
        // offset, never passes unseen.
        let mut results = results.into_iter();
        for rec in &batch.records {
            let target = match results.next().flatten() {
                Some(Ok(o)) if o >= 0 => o as u64,
                Some(Err(e)) => return Err(fail("deliver a record", e)),
                _ => {
                    return Err(Retry::Later(Error::Kafka {
                        doing: format!(
                            "learn the offset of {}-{}@{} on the cluster",
                            rec.topic, rec.partition, rec.offset
                        ),
                        source: KafkaError::MessageProduction(RDKafkaErrorCode::Fail),
                    }))
                }
            };
            pairs
                .entry((rec.topic.as_str(), rec.partition))
                .or_default()
                .push((rec.offset, target));
        }
        let topic = self.opts.progress_topic();
        let mut progress: Vec<(String, Option<String>)> = self.prune();
        let pairs: Vec<(TopicPartition, Vec<(u64, u64)>)> = pairs
            .into_iter()
            .map(|((t, p), v)| (TopicPartition::new(t, p), v))
            .collect();
        for (tp, pairs) in &pairs {
            for run in progress::runs_of(pairs) {
                progress.push((progress::sync_key(tp, run.source_first), Some(run.value())));
            }
        }
        for (tp, p) in &batch.positions {
            if self.copied[tp] != *p || pairs.iter().any(|(t, _)| t == tp) {
                progress.push((progress::position_key(tp), Some(p.to_string())));
            }
        }
        for (k, v) in &progress {
            let mut r: BaseRecord<'_, str, str, usize> =
                BaseRecord::with_opaque_to(&topic, usize::MAX)
                    .partition(0)
                    .key(k.as_str());
            if let Some(v) = v {
                r = r.payload(v.as_str());
            }
            self.send(r)
                .map_err(|e| fail("produce a progress record", e))?;
        }
        // The runs are kept once the transaction commits (`copy`).
        for (tp, pairs) in pairs {
            for run in progress::runs_of(&pairs) {
                self.pending_runs.push((tp.clone(), run));
            }
        }
        Ok(())
    }

    /// Tombstones for the runs the source no longer needs (see
    /// [`progress`]), looked for at most every [`PRUNE_EVERY`], at most
    /// [`MAX_PRUNES`] a transaction. A partition whose log start cannot be
    /// read now is pruned later.
    fn prune(&mut self) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        if Instant::now() < self.prune_due {
            return out;
        }
        self.prune_due = Instant::now() + PRUNE_EVERY;
        for tp in self.readers.keys() {
            let Ok(start) = self.reader.start_offset(tp) else {
                continue;
            };
            let left = MAX_PRUNES - self.pending_prunes.len();
            for first in self.map.prunable(tp, start, left) {
                out.push((progress::sync_key(tp, first), None));
                self.pending_prunes.push((tp.clone(), first));
            }
        }
        out
    }

    /// Sends one record, waiting while librdkafka's queue is full.
    pub(super) fn send<
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    >(
        &self,
        mut r: BaseRecord<'_, K, P, usize>,
    ) -> Result<(), KafkaError> {
        loop {
            match self.producer.send(r) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.producer.poll(Duration::from_millis(10));
                    r = back;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
}
