//! The running mirror: start-up (topics, fencing, progress), the copy
//! loop, and one transaction's records with their progress.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use streamlog::{IsolationLevel, Log, LogReader, PartitionReader, ReadRecord, TopicPartition};

use super::txn::{classify, txn_error, Deliveries, Retry};
use super::{groups, target_configs, MirrorReport, MirrorToKafka, MAX_FAILURES};
use crate::error::{Error, Result};
use crate::kafka::{self, WantedTopic, CALL_TIMEOUT};
use crate::progress::{self, OffsetMap, Progress};

/// A running mirror.
pub(super) struct Run {
    pub(super) opts: MirrorToKafka,
    pub(super) reader: LogReader,
    pub(super) producer: BaseProducer<Deliveries>,
    pub(super) meta: BaseConsumer,
    pub(super) admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>,
    pub(super) topics: Vec<String>,
    /// The mirrored topics whose cleanup policy compacts.
    pub(super) compacted: std::collections::HashSet<String>,
    pub(super) readers: BTreeMap<TopicPartition, PartitionReader>,
    /// The committed next source offset of each partition.
    pub(super) copied: BTreeMap<TopicPartition, u64>,
    /// Each partition's target high watermark before this mirror wrote
    /// to it (zero for a topic it created).
    pub(super) target_start: HashMap<TopicPartition, u64>,
    pub(super) map: OffsetMap,
    /// The runs of the transaction in flight, kept once it commits.
    pub(super) pending_runs: Vec<(TopicPartition, progress::Run)>,
    /// The runs the transaction in flight prunes, dropped once it commits.
    pub(super) pending_prunes: Vec<(TopicPartition, u64)>,
    /// When the next transaction looks for runs to prune.
    pub(super) prune_due: Instant,
    pub(super) groups: groups::Translator,
    /// The largest record the target topics take (the producer's
    /// `message.max.bytes`).
    pub(super) max_message: u64,
    pub(super) report: MirrorReport,
    /// When the copy loop first read the Log ([`MirrorReport::copying`]).
    pub(super) copy_started: Option<Instant>,
    /// Which partition the next round of reading starts with.
    pub(super) turn: usize,
    /// The source offsets already counted as lost to retention.
    pub(super) lost: LostToRetention,
}

/// Counts the source offsets retention deleted before they were copied,
/// each once: a transaction that aborts and is retried reads its
/// partitions again from the committed positions, and meets the same gaps
/// a second time (perhaps grown, if retention deleted records the aborted
/// attempt had read: those are lost too, and counted then).
#[derive(Debug, Default)]
pub(super) struct LostToRetention {
    /// Per partition, the gaps counted so far: disjoint, sorted by start.
    counted: BTreeMap<TopicPartition, Vec<std::ops::Range<u64>>>,
}

impl LostToRetention {
    /// Notes that the reader of `tp` stepped over `gap`; returns how many
    /// of its offsets were not counted before.
    pub(super) fn note(&mut self, tp: &TopicPartition, gap: &std::ops::Range<u64>) -> u64 {
        if gap.is_empty() {
            return 0;
        }
        let ranges = self.counted.entry(tp.clone()).or_default();
        let covered: u64 = ranges
            .iter()
            .map(|r| r.end.min(gap.end).saturating_sub(r.start.max(gap.start)))
            .sum();
        // Merge the gap with the ranges it touches.
        let (mut start, mut end) = (gap.start, gap.end);
        ranges.retain(|r| {
            let apart = r.end < start || r.start > end;
            if !apart {
                start = start.min(r.start);
                end = end.max(r.end);
            }
            apart
        });
        let at = ranges.partition_point(|r| r.start < start);
        ranges.insert(at, start..end);
        (gap.end - gap.start) - covered
    }
}

/// What one transaction carries, read a chunk at a time
/// ([`Run::gather_more`]).
#[derive(Default)]
pub(super) struct Batch {
    /// The records, each naming its topic and partition. Once sent, a
    /// record keeps only its place (topic, partition, offset): its key,
    /// value and headers are dropped, so that a transaction holds its
    /// records in memory once, in the producer's queue.
    pub(super) records: Vec<ReadRecord>,
    /// Each read partition's position after what it read.
    pub(super) positions: BTreeMap<TopicPartition, u64>,
    /// The records' size as counted against the transaction's byte limit.
    pub(super) bytes: usize,
    /// The last read found nothing more in any partition.
    pub(super) drained: bool,
}

/// At most this many records, and about this many bytes, are read from
/// the Log at a time: a transaction sends each chunk before it reads the
/// next, so that the producer's threads put one on the wire while the
/// next is read (reading a whole transaction first left the connections
/// idle for 20-25 ms of each 250-350 ms transaction of 100,000 records).
const CHUNK_RECORDS: usize = 10_000;
const CHUNK_BYTES: usize = 2 << 20;

impl Run {
    /// Gets a mirror ready to copy; `created` collects the topics it made
    /// on the cluster (kept by the caller across attempts).
    pub(super) fn start(opts: MirrorToKafka, created: &mut Vec<String>) -> Result<Run> {
        let t0 = Instant::now();
        let reader = Log::open_read_only(&opts.source)?;
        let meta = kafka::plain_consumer(&opts.bootstrap, &opts.client)?;
        let admin = kafka::admin(&opts.bootstrap, &opts.client)?;
        let topics = match &opts.topics {
            Some(t) => t.clone(),
            None => reader.topics()?,
        };
        let mut wanted = Vec::new();
        let mut max_message = 1_000_000u64;
        for t in &topics {
            let w = wanted_topic(&reader, t)?;
            max_message = max_message.max(largest_message(&w));
            wanted.push(w);
        }
        let progress_topic = WantedTopic {
            name: opts.progress_topic(),
            partitions: 1,
            configs: vec![("cleanup.policy".into(), "compact".into())],
        };
        created.extend(kafka::ensure_topics(
            &admin,
            &meta,
            &[progress_topic],
            opts.replication,
            &|_| false,
        )?);

        let producer = transactional_producer(&opts, max_message)?;

        let mut copied = BTreeMap::new();
        let mut map = OffsetMap::default();
        kafka::read_all(
            &meta,
            &opts.progress_topic(),
            |k, v| match progress::decode(k, v) {
                Some(Progress::Position(tp, next)) => {
                    copied.insert(tp, next);
                }
                Some(p) => map.apply(&p),
                None => {}
            },
        )?;
        // A topic this mirror has copied to is its own: where the
        // application added partitions to it since, the target gets them
        // too.
        let ours = |t: &str| copied.keys().any(|tp: &TopicPartition| tp.topic == t);
        created.extend(kafka::ensure_topics(
            &admin,
            &meta,
            &wanted,
            opts.replication,
            &ours,
        )?);
        // The application's topics first, then the mirror's own.
        let progress_name = opts.progress_topic();
        let mut topics_created: Vec<String> = created
            .iter()
            .filter(|t| **t != progress_name)
            .cloned()
            .collect();
        if created.contains(&progress_name) {
            topics_created.push(progress_name);
        }

        let groups = groups::Translator::new(&opts)?;
        let mut run = Run {
            reader,
            producer,
            meta,
            admin,
            topics: Vec::new(),
            compacted: Default::default(),
            readers: BTreeMap::new(),
            copied,
            target_start: HashMap::new(),
            map,
            pending_runs: Vec::new(),
            pending_prunes: Vec::new(),
            prune_due: Instant::now(),
            groups,
            max_message,
            report: MirrorReport {
                topics_created,
                ..Default::default()
            },
            copy_started: None,
            turn: 0,
            lost: LostToRetention::default(),
            opts,
        };
        for w in &wanted {
            run.add_topic(&w.name, w.partitions)?;
        }
        run.report.resumed_from = run.copied.clone();
        if run.opts.verbose {
            eprintln!(
                "mirror {}: ready in {} ms; resuming {} partitions",
                run.opts.id,
                t0.elapsed().as_millis(),
                run.copied.len()
            );
        }
        Ok(run)
    }

    /// Starts following a topic's first `partitions` partitions (those
    /// the target was made to have; any the application adds later are
    /// found by [`discover_topics`](Self::discover_topics)): a reader per
    /// partition from its progress. A partition with no progress must be
    /// empty on the target.
    fn add_topic(&mut self, topic: &str, partitions: u32) -> Result<()> {
        let cfg = self.reader.topic_config(topic)?;
        if cfg
            .kafka_config("cleanup.policy")
            .is_some_and(|p| p.contains("compact"))
        {
            self.compacted.insert(topic.to_owned());
        }
        self.add_partitions(topic, 0, partitions)?;
        self.topics.push(topic.to_owned());
        Ok(())
    }

    /// Starts following partitions `from..to` of a followed topic.
    fn add_partitions(&mut self, topic: &str, from: u32, to: u32) -> Result<()> {
        let mut unclaimed = Vec::new();
        for p in from..to {
            let tp = TopicPartition::new(topic, p);
            let (low, high) =
                kafka::watermarks(&self.meta, &tp, &self.opts.bootstrap, &self.opts.client)?;
            if !self.copied.contains_key(&tp) {
                if high > low.max(0) {
                    return Err(Error::TargetNotEmpty {
                        what: format!(
                            "target partition {tp} holds records (offsets {low}..{high}) but the \
                             progress topic {} has no position for it: it was not written by \
                             this mirror; use an empty topic or a new mirror id",
                            self.opts.progress_topic()
                        ),
                    });
                }
                unclaimed.push(tp.clone());
            }
            self.target_start.insert(tp, high.max(0) as u64);
        }
        if !unclaimed.is_empty() {
            self.claim(&unclaimed)?;
        }
        for p in from..to {
            let tp = TopicPartition::new(topic, p);
            let r = self.reader.partition_reader(
                &tp,
                self.copied[&tp],
                IsolationLevel::ReadCommitted,
            )?;
            self.readers.insert(tp, r);
        }
        Ok(())
    }

    /// Records position 0 for partitions the mirror has not written yet,
    /// in a transaction of its own, before it copies a record there. From
    /// then on a partition without a position is one nothing was copied
    /// to, even by a transaction that was aborted, so "holds records but
    /// has no position" reliably means records another writer put there.
    fn claim(&mut self, tps: &[TopicPartition]) -> Result<()> {
        let topic = self.opts.progress_topic();
        let id = self.opts.id.clone();
        let never = |what: &str, e: KafkaError| match classify(&id, what, e) {
            Retry::Later(e) | Retry::Never(e) => e,
        };
        self.producer
            .begin_transaction()
            .map_err(|e| never("begin a transaction", e))?;
        for tp in tps {
            let key = progress::position_key(tp);
            let r: BaseRecord<'_, str, str, usize> = BaseRecord::with_opaque_to(&topic, usize::MAX)
                .partition(0)
                .key(key.as_str())
                .payload("0");
            if let Err(e) = self.send(r) {
                self.abort();
                return Err(never("produce a progress record", e));
            }
        }
        let committed = kafka::drain(&self.producer, CALL_TIMEOUT * 2)
            .and_then(|()| self.producer.commit_transaction(CALL_TIMEOUT * 2));
        if let Err(e) = committed {
            self.abort();
            return Err(never("commit a transaction", e));
        }
        for tp in tps {
            self.copied.insert(tp.clone(), 0);
        }
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.opts
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst))
    }

    pub(super) fn go(mut self) -> Result<MirrorReport> {
        let mut lock = None;
        let mut last_groups = Instant::now();
        let mut failures = 0u32;
        let mut last_topics = Instant::now();
        loop {
            if (self.opts.follow || self.opts.cutover)
                && last_topics.elapsed() >= self.opts.group_interval
            {
                match self.discover_topics() {
                    Ok(()) => last_topics = Instant::now(),
                    Err(e) if e.is_transient() => {
                        eprintln!(
                            "mirror {}: looking for new topics failed, retrying: {e}",
                            self.opts.id
                        )
                    }
                    Err(e) => return Err(e),
                }
            }
            self.copy_started.get_or_insert_with(Instant::now);
            let mut batch = self.gather()?;
            if !batch.records.is_empty()
                || batch.positions.iter().any(|(tp, p)| self.copied[tp] != *p)
            {
                match self.copy(&mut batch) {
                    Ok(()) => failures = 0,
                    Err(Retry::Later(e)) if failures >= MAX_FAILURES => return Err(e),
                    Err(Retry::Later(e)) => {
                        failures += 1;
                        self.report.retried += 1;
                        eprintln!("mirror: transaction aborted, retrying: {e}");
                        self.rewind()?;
                        std::thread::sleep(Duration::from_millis(100 << failures.min(5)));
                    }
                    Err(Retry::Never(e)) => return Err(e),
                }
                if last_groups.elapsed() >= self.opts.group_interval {
                    self.translate_groups_soon()?;
                    last_groups = Instant::now();
                }
                // Stopped mid-stream: at this transaction boundary, with
                // the groups translated as far as the copy goes.
                if self.stopped() {
                    self.translate_groups_final()?;
                    break;
                }
                continue;
            }
            // Caught up with what is readable now.
            if lock.is_some() {
                self.translate_groups_final()?;
                self.report.cut_over = self.report.groups.iter().all(|g| g.complete());
                break;
            }
            if self.opts.cutover {
                match self.reader.lock_out_writers() {
                    Ok(l) => {
                        // No writer now nor later: one more pass copies
                        // whatever the last one appended, in whatever
                        // topics and partitions it made.
                        lock = Some(l);
                        self.discover_topics()?;
                        continue;
                    }
                    Err(streamlog::Error::Locked { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let last = !(self.opts.follow || self.opts.cutover) || self.stopped();
            if last {
                self.translate_groups_final()?;
                break;
            }
            if last_groups.elapsed() >= self.opts.group_interval {
                self.translate_groups_soon()?;
                last_groups = Instant::now();
            }
            std::thread::sleep(self.opts.idle);
        }
        drop(lock);
        self.report.copied_to = self.copied.clone();
        Ok(self.report)
    }

    /// Reads the first chunk of the next transaction.
    fn gather(&mut self) -> Result<Batch> {
        let mut batch = Batch::default();
        self.gather_more(&mut batch)?;
        Ok(batch)
    }

    /// Whether `batch` is as large as one transaction may be.
    pub(super) fn full(&self, batch: &Batch) -> bool {
        batch.records.len() >= self.opts.max_txn_records || batch.bytes >= self.opts.max_txn_bytes
    }

    /// Reads up to one more chunk into `batch`, within the transaction's
    /// limits, a share from each partition in turn; sets
    /// [`Batch::drained`] when a whole round found nothing.
    pub(super) fn gather_more(&mut self, batch: &mut Batch) -> Result<()> {
        // A quarter of a transaction at most, so that every transaction
        // that fills up is read in chunks (the tests' small ones too).
        let chunk_records = (self.opts.max_txn_records / 4).clamp(1, CHUNK_RECORDS);
        let chunk_bytes = (self.opts.max_txn_bytes / 4).clamp(1, CHUNK_BYTES);
        let max_records = self
            .opts
            .max_txn_records
            .min(batch.records.len() + chunk_records);
        let max_bytes = self.opts.max_txn_bytes.min(batch.bytes + chunk_bytes);
        // A share of the chunk per partition, by count and, once the sizes
        // of records are known, by bytes; each round starts one partition
        // further on, so that no partition goes first in every chunk.
        let n = self.readers.len().max(1);
        let size = batch.bytes.checked_div(batch.records.len()).unwrap_or(0);
        let share = (chunk_records / n)
            .min(chunk_bytes / n / size.max(1))
            .max(1);
        let mut progressed = true;
        while progressed && batch.records.len() < max_records && batch.bytes < max_bytes {
            progressed = false;
            let mut readers: Vec<_> = self.readers.iter_mut().collect();
            readers.rotate_left(self.turn % n);
            self.turn = self.turn.wrapping_add(1);
            for (tp, r) in readers {
                let want = share.min(max_records - batch.records.len());
                if want == 0 {
                    break;
                }
                let fetched = r.read(want)?;
                if let Some(gap) = &fetched.skipped {
                    let new = self.lost.note(tp, gap);
                    if new > 0 {
                        self.report.lost_to_retention += new;
                        eprintln!(
                            "mirror: {tp} offsets {}..{} were deleted by retention before they were copied",
                            gap.start, gap.end
                        );
                    }
                }
                progressed |= !fetched.is_empty();
                for rec in fetched {
                    if rec.key.is_none() && self.compacted.contains(&tp.topic) {
                        return Err(Error::Unmirrorable {
                            what: format!(
                                "record {tp}@{} has no key, and Kafka refuses keyless records in a \
                                 compacted topic (cleanup.policy compact); streamlog keeps them",
                                rec.offset
                            ),
                        });
                    }
                    batch.bytes += rec.value.as_ref().map_or(0, Vec::len)
                        + rec.key.as_ref().map_or(0, Vec::len)
                        + 24;
                    batch.records.push(rec);
                }
                batch.positions.insert(tp.clone(), r.position());
            }
        }
        batch.drained = !progressed;
        Ok(())
    }

    /// Puts every reader back at its partition's committed position.
    fn rewind(&mut self) -> Result<()> {
        for (tp, r) in &mut self.readers {
            *r =
                self.reader
                    .partition_reader(tp, self.copied[tp], IsolationLevel::ReadCommitted)?;
        }
        Ok(())
    }

    /// What the application changed since the mirror started: topics it
    /// created (when no topic list was given), made on the cluster (or
    /// checked) and followed; and partitions it added to a followed
    /// topic, added on the cluster too and followed.
    fn discover_topics(&mut self) -> Result<()> {
        if self.opts.topics.is_none() {
            for t in self.reader.topics()? {
                if !self.topics.contains(&t) {
                    let w = wanted_topic(&self.reader, &t)?;
                    let partitions = w.partitions;
                    let need = largest_message(&w);
                    let created = kafka::ensure_topics(
                        &self.admin,
                        &self.meta,
                        &[w],
                        self.opts.replication,
                        &|_| false,
                    )?;
                    self.report.topics_created.extend(created);
                    if need > self.max_message {
                        // Its records may be larger than the producer
                        // takes: a new one (between two transactions).
                        self.max_message = need;
                        self.producer = transactional_producer(&self.opts, need)?;
                    }
                    self.add_topic(&t, partitions)?;
                }
            }
        }
        for t in self.topics.clone() {
            let following = self.readers.keys().filter(|tp| tp.topic == t).count() as u32;
            let w = wanted_topic(&self.reader, &t)?;
            if w.partitions > following {
                let total = w.partitions;
                kafka::ensure_topics(
                    &self.admin,
                    &self.meta,
                    &[w],
                    self.opts.replication,
                    &|_| true,
                )?;
                // librdkafka's producer refreshes a known topic's
                // partition count only every few minutes: a new one,
                // between two transactions, learns it now.
                self.producer = transactional_producer(&self.opts, self.max_message)?;
                self.add_partitions(&t, following, total)?;
            }
        }
        Ok(())
    }

    /// One pass of group translation. A transient cluster failure (a
    /// broker restarting) is reported and leaves the last pass's result:
    /// the next pass retries.
    fn translate_groups(&mut self) -> Result<()> {
        match self.groups.translate(
            &self.reader,
            &self.readers,
            &self.copied,
            &self.target_start,
            &self.map,
        ) {
            Ok(g) => {
                self.report.groups = g;
                Ok(())
            }
            Err(e) if e.is_transient() => {
                eprintln!(
                    "mirror {}: translating group offsets failed, retrying: {e}",
                    self.opts.id
                );
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// A pass of group translation that a transient failure only delays.
    fn translate_groups_soon(&mut self) -> Result<()> {
        match self.translate_groups() {
            Err(e) if e.is_transient() => Ok(()),
            r => r,
        }
    }

    /// The last pass, retried until it is done.
    fn translate_groups_final(&mut self) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.translate_groups() {
                Err(e) if e.is_transient() && attempt < MAX_FAILURES => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100 << attempt.min(5)));
                }
                r => return r,
            }
        }
    }
}

/// The target topic the source topic `t` needs.
fn wanted_topic(reader: &LogReader, t: &str) -> Result<WantedTopic> {
    let cfg = reader.topic_config(t)?;
    Ok(WantedTopic {
        name: t.to_owned(),
        partitions: cfg.partition_count(),
        configs: target_configs(&cfg),
    })
}

/// Room in the producer's queue beyond a transaction's records, for its
/// progress records (positions, runs, up to 10,000 tombstones). A fuller
/// queue makes `send` wait for deliveries, it does not fail.
const QUEUE_HEADROOM: usize = 20_000;

/// The mirror's transactional producer, fenced in: any older producer
/// with the mirror's id is fenced off and what it left open aborted.
fn transactional_producer(
    opts: &MirrorToKafka,
    max_message: u64,
) -> Result<BaseProducer<Deliveries>> {
    let mut pc = kafka::config(&opts.bootstrap, &opts.client);
    pc.set("transactional.id", &opts.id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("socket.nagle.disable", "true")
        .set(
            "message.max.bytes",
            max_message.min(1_000_000_000).to_string(),
        )
        .set("transaction.timeout.ms", "60000")
        // A whole transaction queued at once (librdkafka's default is
        // 100,000 messages, the default transaction's size without its
        // progress records).
        .set(
            "queue.buffering.max.messages",
            opts.max_txn_records
                .saturating_add(QUEUE_HEADROOM)
                .min(i32::MAX as usize)
                .to_string(),
        );
    let producer: BaseProducer<Deliveries> = pc
        .create_with_context(Deliveries::default())
        .map_err(|e| Error::kafka("create the transactional producer", e))?;
    // Fences any older mirror with this id and aborts what it left open,
    // so the progress read next is final.
    producer
        .init_transactions(CALL_TIMEOUT * 2)
        .map_err(|e| txn_error(&opts.id, "initialise transactions", e))?;
    Ok(producer)
}

/// The `max.message.bytes` a target topic gets (0 when unset).
fn largest_message(w: &WantedTopic) -> u64 {
    w.configs
        .iter()
        .find(|(k, _)| k == "max.message.bytes")
        .map_or(0, |(_, v)| v.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::LostToRetention;
    use streamlog::TopicPartition;

    /// A retried transaction meets the same gap again: it is counted once,
    /// and only the part of a later, larger gap beyond it is new.
    #[test]
    fn a_gap_met_again_by_a_retried_transaction_is_counted_once() {
        let mut lost = LostToRetention::default();
        let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        assert_eq!(lost.note(&a, &(10..50)), 40);
        assert_eq!(lost.note(&a, &(10..50)), 0);
        // Grown: retention deleted what an aborted attempt had read.
        assert_eq!(lost.note(&a, &(10..80)), 30);
        assert_eq!(lost.note(&b, &(10..50)), 40);
        assert_eq!(lost.note(&a, &(100..120)), 20);
        assert_eq!(lost.note(&a, &(90..110)), 10);
        // One gap over counted and uncounted stretches: only the latter.
        assert_eq!(lost.note(&a, &(0..130)), 10 + 10 + 10);
        assert_eq!(lost.note(&a, &(0..130)), 0);
        assert_eq!(lost.note(&a, &(5..5)), 0);
    }
}
