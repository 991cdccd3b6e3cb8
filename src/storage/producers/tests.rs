//! A model-based test of producer state against a plain reference: every
//! producer's whole history in its current epoch, a duplicate window that
//! a snapshot shrinks to one batch, open transactions, the LSO.

use super::*;
use crate::format::batch::{BatchHeader, Version, ATTR_CONTROL, ATTR_TRANSACTIONAL};
use crate::format::txn::{decode_snapshot, encode_snapshot};

#[derive(Default, Clone)]
struct ModelProducer {
    epoch: i16,
    /// (first_seq, last_seq, first_offset, last_offset) in this epoch.
    batches: Vec<(i32, i32, u64, u64)>,
    /// How many of the newest `batches` duplicate detection still knows.
    window: usize,
    txn_first: Option<u64>,
}

#[derive(Default)]
struct Model {
    producers: HashMap<i64, ModelProducer>,
}

impl Model {
    fn check(&self, pid: i64, epoch: i16, first: i32, n: u32, txn: bool) -> Result<Check, Refusal> {
        let Some(p) = self.producers.get(&pid) else {
            return Ok(Check::Append);
        };
        if epoch < p.epoch {
            return Err(Refusal::Fenced {
                producer_id: pid,
                current: p.epoch,
                got: epoch,
            });
        }
        if !txn && p.txn_first.is_some() {
            return Err(Refusal::InvalidTxnState { producer_id: pid });
        }
        if epoch > p.epoch {
            return if first == 0 {
                Ok(Check::Append)
            } else {
                Err(Refusal::OutOfOrder {
                    producer_id: pid,
                    expected: 0,
                    got: first,
                })
            };
        }
        if p.window == 0 {
            return Ok(Check::Append);
        }
        let last = last_seq(first, n - 1);
        let recent = &p.batches[p.batches.len() - p.window..];
        if let Some(b) = recent.iter().find(|b| b.0 == first && b.1 == last) {
            return Ok(Check::Duplicate {
                first_offset: b.2,
                last_offset: b.3,
            });
        }
        let expected = next_seq(p.batches.last().unwrap().1);
        if first == expected {
            Ok(Check::Append)
        } else {
            Err(Refusal::OutOfOrder {
                producer_id: pid,
                expected,
                got: first,
            })
        }
    }

    fn append(&mut self, pid: i64, epoch: i16, first: i32, n: u32, txn: bool, base: u64) {
        let p = self.producers.entry(pid).or_insert_with(|| ModelProducer {
            epoch,
            ..Default::default()
        });
        if epoch != p.epoch {
            p.epoch = epoch;
            p.batches.clear();
            p.window = 0;
        }
        p.batches
            .push((first, last_seq(first, n - 1), base, base + u64::from(n) - 1));
        p.window = (p.window + 1).min(BATCHES_TO_RETAIN);
        if txn && p.txn_first.is_none() {
            p.txn_first = Some(base);
        }
    }

    fn marker(&mut self, pid: i64, epoch: i16) {
        let p = self.producers.entry(pid).or_insert_with(|| ModelProducer {
            epoch,
            ..Default::default()
        });
        if epoch > p.epoch {
            p.epoch = epoch;
            p.batches.clear();
            p.window = 0;
        }
        p.txn_first = None;
    }

    fn lso(&self) -> Option<u64> {
        self.producers.values().filter_map(|p| p.txn_first).min()
    }

    fn snapshot_taken(&mut self) {
        for p in self.producers.values_mut() {
            p.window = p.window.min(1);
        }
    }
}

fn header(pid: i64, epoch: i16, first: i32, n: u32, txn: bool, control: bool) -> BatchHeader {
    let mut attributes = 0;
    if txn {
        attributes |= ATTR_TRANSACTIONAL;
    }
    if control {
        attributes |= ATTR_CONTROL;
    }
    BatchHeader {
        version: Version::V2,
        length: 0,
        crc: 0,
        magic: 2,
        base_offset: 0,
        leader_epoch: 0,
        attributes,
        last_offset_delta: n - 1,
        record_count: n,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: first,
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn producer_state_follows_the_reference_model() {
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut model = Model::default();
        let mut state = ProducerState::default();
        let mut end = 0u64;
        for step in 0..400 {
            let pid = rng.below(3) as i64;
            let cur = model.producers.get(&pid).map_or(0, |p| p.epoch);
            let epoch = match rng.below(10) {
                0 => cur.saturating_sub(1),
                1 => cur + 1,
                _ => cur,
            };
            match rng.below(12) {
                // A marker: commit or abort, whichever; both end the
                // producer's transaction here.
                0 | 1 => {
                    if epoch < cur {
                        continue; // the coordinator never writes a stale marker
                    }
                    let h = header(pid, epoch, -1, 1, true, true);
                    assert_eq!(
                        state.check(&h),
                        Ok(Check::Append),
                        "seed {seed} step {step}"
                    );
                    model.marker(pid, epoch);
                    state.apply_marker(pid, epoch, end, 0);
                    end += 1;
                }
                // Snapshot and reload.
                2 => {
                    let bytes = encode_snapshot(&state.snapshot());
                    state = ProducerState::from_snapshot(&decode_snapshot(&bytes).unwrap());
                    model.snapshot_taken();
                }
                _ => {
                    let n = 1 + rng.below(4) as u32;
                    let txn = rng.below(3) == 0;
                    let next = state.next_sequence(pid, epoch);
                    let first = match rng.below(6) {
                        // A retry of one of the last batches.
                        0 => model
                            .producers
                            .get(&pid)
                            .and_then(|p| {
                                let i = rng.below(p.batches.len().max(1) as u64) as usize;
                                p.batches.get(p.batches.len().saturating_sub(1 + i))
                            })
                            .map_or(next, |b| b.0),
                        // A gap.
                        1 => next.wrapping_add(1 + rng.below(3) as i32).max(0),
                        _ => next,
                    };
                    let n = match model.producers.get(&pid) {
                        Some(p) => p
                            .batches
                            .iter()
                            .find(|b| b.0 == first)
                            .map_or(n, |b| (b.3 - b.2 + 1) as u32),
                        None => n,
                    };
                    // The in-process path numbers the batch itself: it gets
                    // `next`, and is refused only as the model refuses that.
                    let mut assigned = None;
                    let fast = state
                        .assign_and_check(&header(pid, epoch, -1, n, txn, false), |s| {
                            assigned = Some(s)
                        });
                    match assigned {
                        Some(s) => {
                            assert_eq!(s, next, "seed {seed} step {step}");
                            assert_eq!(fast, Ok(Check::Append));
                            assert_eq!(model.check(pid, epoch, s, n, txn), Ok(Check::Append));
                        }
                        None => assert_eq!(fast, model.check(pid, epoch, next, n, txn)),
                    }
                    let mut h = header(pid, epoch, first, n, txn, false);
                    let want = model.check(pid, epoch, first, n, txn);
                    assert_eq!(state.check(&h), want, "seed {seed} step {step}");
                    if want == Ok(Check::Append) {
                        h.base_offset = end;
                        state.apply_batch(&h, 0);
                        model.append(pid, epoch, first, n, txn, end);
                        end += u64::from(n);
                    }
                }
            }
            assert_eq!(
                state.first_unstable(),
                model.lso(),
                "seed {seed} step {step}"
            );
        }
    }
}

#[test]
fn sequences_wrap_at_i32_max() {
    let mut s = ProducerState::default();
    let mut h = header(7, 0, i32::MAX - 1, 3, false, false);
    s.apply_batch(&h, 0);
    // MAX - 1, MAX, 0: the next is 1.
    assert_eq!(s.next_sequence(7, 0), 1);
    h = header(7, 0, 1, 1, false, false);
    assert_eq!(s.check(&h), Ok(Check::Append));
    let back = ProducerState::from_snapshot(&s.snapshot());
    assert_eq!(back.get(7).unwrap().batches[0].first_seq, i32::MAX - 1);
    assert_eq!(
        back.check(&header(7, 0, i32::MAX - 1, 3, false, false)),
        Ok(Check::Duplicate {
            first_offset: 0,
            last_offset: 2
        })
    );
}

#[test]
fn an_abort_reports_the_next_open_transaction_as_its_lso() {
    let mut s = ProducerState::default();
    let mut a = header(1, 0, 0, 2, true, false);
    a.base_offset = 10;
    s.apply_batch(&a, 0);
    let mut b = header(2, 0, 0, 1, true, false);
    b.base_offset = 12;
    s.apply_batch(&b, 0);
    let c = s.apply_marker(1, 0, 13, 0).unwrap();
    assert_eq!(
        (c.first_offset, c.marker_offset, c.last_stable_offset),
        (10, 13, 12)
    );
    let c = s.apply_marker(2, 0, 14, 0).unwrap();
    assert_eq!(c.last_stable_offset, 15);
    assert_eq!(s.apply_marker(2, 0, 15, 0), None);
}
