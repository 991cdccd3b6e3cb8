//! Fetch: stored batches sent as they are, after a long poll.
//!
//! The response is encoded here rather than with `kafka-protocol`, so that
//! the batches go from the log's mappings to the socket without a copy:
//! the response is a list of chunks, built bytes between borrowed batches.
//! A fetch waits up to `max_wait_ms` until `min_bytes` are available,
//! parked on the log's append signal (no polling).

use std::time::{Duration, Instant};

use streamlog::{Error, IsolationLevel, PartitionFetch, TopicPartition};

use super::errors::{self, code};
use super::{Chunk, Ctx, Reply};
use crate::wire::data::Fetch;
use crate::wire::Header;
use crate::writer::Writer;

/// What one partition answered.
struct Part {
    partition: i32,
    error: i16,
    fetch: PartitionFetch,
    /// The batches converted to Kafka's layout, when some were stored in
    /// streamlog's pre-v2 layout; `None` when they go out as stored.
    converted: Option<Vec<u8>>,
}

impl Part {
    fn records_len(&self) -> usize {
        match &self.converted {
            Some(c) => c.len(),
            None => self.fetch.batches.size_bytes(),
        }
    }
}

fn read_part(
    ctx: &Ctx,
    tp: &TopicPartition,
    offset: i64,
    max: usize,
    iso: IsolationLevel,
) -> Result<Part, Error> {
    let offset = u64::try_from(offset).map_err(|_| Error::OffsetOutOfRange {
        requested: 0,
        earliest: 0,
        latest: 0,
    })?;
    let fetch = ctx.log.fetch_partition(tp, offset, max, iso)?;
    let converted = if fetch.batches.iter().all(|b| b.is_kafka_format()) {
        None
    } else {
        let mut out = Vec::new();
        for b in fetch.batches.iter() {
            out.extend_from_slice(&b.to_kafka_format()?);
        }
        Some(out)
    };
    Ok(Part {
        partition: tp.partition as i32,
        error: errors::NONE,
        fetch,
        converted,
    })
}

/// Reads every partition once; returns the parts and the bytes found.
fn read_all(ctx: &Ctx, r: &Fetch<'_>, iso: IsolationLevel) -> (Vec<Vec<Part>>, usize) {
    let mut budget = usize::try_from(r.max_bytes.max(0)).unwrap_or(usize::MAX);
    let mut total = 0;
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        let mut parts = Vec::with_capacity(t.partitions.len());
        for fp in &t.partitions {
            let max = usize::try_from(fp.partition_max_bytes.max(0))
                .unwrap_or(0)
                .min(budget);
            let result = match u32::try_from(fp.partition) {
                Err(_) => Err(errors::UNKNOWN_TOPIC_OR_PARTITION),
                // KIP-74: the first partition with data returns at least one
                // batch whatever the limits; later ones only within them.
                Ok(_) if max == 0 && total > 0 => Err(errors::NONE),
                Ok(p) => read_part(
                    ctx,
                    &TopicPartition::new(t.name, p),
                    fp.fetch_offset,
                    max,
                    iso,
                )
                .map_err(|e| code(&e)),
            };
            let part = match result {
                Ok(p) => p,
                Err(c) => Part {
                    partition: fp.partition,
                    error: c,
                    fetch: ctx
                        .log
                        .partition_info(&TopicPartition::new(t.name, fp.partition.max(0) as u32))
                        .map(|i| {
                            let mut f = PartitionFetch::default();
                            f.high_watermark = i.end_offset;
                            f.last_stable_offset = i.end_offset;
                            f.log_start_offset = i.start_offset;
                            f
                        })
                        .unwrap_or_default(),
                    converted: None,
                },
            };
            let n = part.records_len();
            total += n;
            budget = budget.saturating_sub(n);
            parts.push(part);
        }
        topics.push(parts);
    }
    (topics, total)
}

pub(super) fn fetch(ctx: &Ctx, h: &Header<'_>, r: Fetch<'_>) -> Reply {
    let iso = if r.isolation_level == 1 {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let wait = Duration::from_millis(r.max_wait_ms.clamp(0, 600_000) as u64);
    let deadline = Instant::now() + wait;
    let min_bytes = usize::try_from(r.min_bytes.max(1)).unwrap_or(1);
    let (topics, _) = loop {
        let (topics, total) = read_all(ctx, &r, iso);
        let errored = topics.iter().flatten().any(|p| p.error != errors::NONE);
        let now = Instant::now();
        if total >= min_bytes || errored || now >= deadline || ctx.stopping() {
            break (topics, total);
        }
        // Park until a partition gets records past where this fetch stands.
        let positions: Vec<(TopicPartition, u64)> = r
            .topics
            .iter()
            .zip(&topics)
            .flat_map(|(t, parts)| {
                t.partitions.iter().zip(parts).map(move |(fp, part)| {
                    let at = part
                        .fetch
                        .batches
                        .next_offset()
                        .unwrap_or(fp.fetch_offset.max(0) as u64);
                    (TopicPartition::new(t.name, fp.partition.max(0) as u32), at)
                })
            })
            .collect();
        let step = (deadline - now).min(Duration::from_millis(500));
        ctx.log.wait_for_records(&positions, iso, step);
    };
    encode_response(h, &r, topics)
}

fn encode_response(h: &Header<'_>, r: &Fetch<'_>, topics: Vec<Vec<Part>>) -> Reply {
    let v = h.api_version;
    let flex = v >= 12;
    let mut w = Writer::new(flex);
    // Response header: v1 (with tagged fields) for flexible versions.
    w.i32(h.correlation_id);
    if flex {
        w.empty_tags();
    }
    w.i32(0); // throttle_time_ms
    if v >= 7 {
        w.i16(errors::NONE);
        w.i32(0); // session_id: no incremental fetch sessions
    }
    let mut chunks = Vec::new();
    w.array_len(topics.len());
    for (t, parts) in r.topics.iter().zip(topics) {
        w.string(t.name);
        w.array_len(parts.len());
        for p in parts {
            w.i32(p.partition);
            w.i16(p.error);
            w.i64(p.fetch.high_watermark as i64);
            w.i64(p.fetch.last_stable_offset as i64);
            if v >= 5 {
                w.i64(p.fetch.log_start_offset as i64);
            }
            w.array_len(p.fetch.aborted.len());
            for a in &p.fetch.aborted {
                w.i64(a.producer_id);
                w.i64(a.first_offset as i64);
                if flex {
                    w.empty_tags();
                }
            }
            if v >= 11 {
                w.i32(-1); // preferred_read_replica
            }
            w.bytes_len(p.records_len());
            match p.converted {
                Some(bytes) => w.raw(&bytes),
                None if p.fetch.batches.is_empty() => {}
                None => {
                    chunks.push(Chunk::Bytes(w.take()));
                    chunks.push(Chunk::Batches(p.fetch.batches));
                }
            }
            if flex {
                w.empty_tags();
            }
        }
        if flex {
            w.empty_tags();
        }
    }
    if flex {
        w.empty_tags();
    }
    chunks.push(Chunk::Bytes(w.take()));
    Reply::Chunks(chunks)
}
