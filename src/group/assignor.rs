//! Partition assignors: pure functions from members, their subscriptions
//! and (for the sticky assignor) their current ownership to a target
//! assignment.

use std::collections::{BTreeMap, BTreeSet};

use crate::record::TopicPartition;

/// How a consumer group splits partitions among its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Assignor {
    /// Contiguous ranges of each topic's partitions. Default, as in Kafka.
    #[default]
    Range,
    /// Partitions dealt out one at a time.
    RoundRobin,
    /// Balanced, moving as few partitions as possible on a rebalance.
    CooperativeSticky,
}

/// What an assignor knows about one member.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemberInput {
    pub topics: BTreeSet<String>,
    pub owned: BTreeSet<TopicPartition>,
}

/// Members by id (ids sort in join order) → their target partitions.
pub(crate) type Assignment = BTreeMap<u64, BTreeSet<TopicPartition>>;

/// Computes the target assignment. `partitions` gives each topic's partition
/// count; topics nobody subscribes to are ignored.
pub(crate) fn assign(
    kind: Assignor,
    members: &BTreeMap<u64, MemberInput>,
    partitions: &BTreeMap<String, u32>,
) -> Assignment {
    let mut out: Assignment = members.keys().map(|&m| (m, BTreeSet::new())).collect();
    match kind {
        Assignor::Range => range(members, partitions, &mut out),
        Assignor::RoundRobin => round_robin(members, partitions, &mut out),
        Assignor::CooperativeSticky => sticky(members, partitions, &mut out),
    }
    out
}

fn subscribers<'a>(
    members: &'a BTreeMap<u64, MemberInput>,
    topic: &'a str,
) -> impl Iterator<Item = u64> + 'a {
    members
        .iter()
        .filter(move |(_, m)| m.topics.contains(topic))
        .map(|(&id, _)| id)
}

/// Kafka's range assignor: per topic, contiguous ranges, the first members
/// getting one extra when the count does not divide.
fn range(
    members: &BTreeMap<u64, MemberInput>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    for (topic, &n) in partitions {
        let subs: Vec<u64> = subscribers(members, topic).collect();
        if subs.is_empty() {
            continue;
        }
        let (per, extra) = (n as usize / subs.len(), n as usize % subs.len());
        let mut next = 0u32;
        for (i, m) in subs.iter().enumerate() {
            let take = per + usize::from(i < extra);
            for p in next..next + take as u32 {
                out.entry(*m)
                    .or_default()
                    .insert(TopicPartition::new(topic.clone(), p));
            }
            next += take as u32;
        }
    }
}

/// Kafka's round-robin assignor: all partitions in order, dealt to the
/// members in turn, skipping members not subscribed to the topic.
fn round_robin(
    members: &BTreeMap<u64, MemberInput>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    let ids: Vec<u64> = members.keys().copied().collect();
    if ids.is_empty() {
        return;
    }
    let mut turn = 0usize;
    for (topic, &n) in partitions {
        if subscribers(members, topic).next().is_none() {
            continue;
        }
        for p in 0..n {
            loop {
                let m = ids[turn % ids.len()];
                turn += 1;
                if members[&m].topics.contains(topic) {
                    out.entry(m)
                        .or_default()
                        .insert(TopicPartition::new(topic.clone(), p));
                    break;
                }
            }
        }
    }
}

/// Balanced and sticky: every member ends within one partition of the
/// others (among members with the same subscriptions), and a partition
/// moves only when balance requires it.
fn sticky(
    members: &BTreeMap<u64, MemberInput>,
    partitions: &BTreeMap<String, u32>,
    out: &mut Assignment,
) {
    let all: Vec<TopicPartition> = partitions
        .iter()
        .filter(|(t, _)| subscribers(members, t).next().is_some())
        .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect();
    if members.is_empty() || all.is_empty() {
        return;
    }
    // Quotas: floor or ceil of the fair share. The ceil goes to the members
    // that own the most already, so fewer partitions move.
    let (per, extra) = (all.len() / members.len(), all.len() % members.len());
    let mut order: Vec<u64> = members.keys().copied().collect();
    order.sort_by_key(|m| (std::cmp::Reverse(members[m].owned.len()), *m));
    let quota: BTreeMap<u64, usize> = order
        .iter()
        .enumerate()
        .map(|(i, &m)| (m, per + usize::from(i < extra)))
        .collect();
    let valid: BTreeSet<&TopicPartition> = all.iter().collect();
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    // 1. Keep what each member owns, up to its quota.
    for &m in &order {
        let mine = out.entry(m).or_default();
        for tp in &members[&m].owned {
            if mine.len() >= quota[&m] {
                break;
            }
            if valid.contains(tp)
                && members[&m].topics.contains(&tp.topic)
                && taken.insert(tp.clone())
            {
                mine.insert(tp.clone());
            }
        }
    }
    // 2. Hand out the rest: to a subscribed member under quota, else to the
    // subscribed member with the fewest.
    for tp in all {
        if taken.contains(&tp) {
            continue;
        }
        let eligible: Vec<u64> = subscribers(members, &tp.topic).collect();
        let pick = eligible
            .iter()
            .copied()
            .filter(|m| out[m].len() < quota[m])
            .min_by_key(|m| (out[m].len(), *m))
            .or_else(|| eligible.iter().copied().min_by_key(|m| (out[m].len(), *m)));
        if let Some(m) = pick {
            out.entry(m).or_default().insert(tp.clone());
            taken.insert(tp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: u64, topics: &[&str]) -> BTreeMap<u64, MemberInput> {
        (1..=n)
            .map(|id| {
                (
                    id,
                    MemberInput {
                        topics: topics.iter().map(|t| t.to_string()).collect(),
                        owned: BTreeSet::new(),
                    },
                )
            })
            .collect()
    }

    fn parts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn check_cover(a: &Assignment, total: usize) {
        let mut seen = BTreeSet::new();
        for set in a.values() {
            for tp in set {
                assert!(seen.insert(tp.clone()), "{tp} assigned twice");
            }
        }
        assert_eq!(seen.len(), total);
    }

    #[test]
    fn every_assignor_splits_six_partitions_two_each() {
        for kind in [
            Assignor::Range,
            Assignor::RoundRobin,
            Assignor::CooperativeSticky,
        ] {
            let a = assign(kind, &members(3, &["t"]), &parts(&[("t", 6)]));
            check_cover(&a, 6);
            assert!(a.values().all(|s| s.len() == 2), "{kind:?}: {a:?}");
        }
    }

    #[test]
    fn range_gives_contiguous_ranges_and_extras_first() {
        let a = assign(Assignor::Range, &members(3, &["t"]), &parts(&[("t", 7)]));
        let got: Vec<Vec<u32>> = a
            .values()
            .map(|s| s.iter().map(|tp| tp.partition).collect())
            .collect();
        assert_eq!(got, vec![vec![0, 1, 2], vec![3, 4], vec![5, 6]]);
    }

    #[test]
    fn round_robin_skips_members_not_subscribed() {
        let mut m = members(2, &["a"]);
        m.get_mut(&2).unwrap().topics.insert("b".into());
        let a = assign(Assignor::RoundRobin, &m, &parts(&[("a", 2), ("b", 2)]));
        check_cover(&a, 4);
        assert!(a[&1].iter().all(|tp| tp.topic == "a"));
        assert_eq!(a[&2].iter().filter(|tp| tp.topic == "b").count(), 2);
    }

    #[test]
    fn sticky_moves_the_minimum_when_a_fourth_member_joins() {
        let p = parts(&[("t", 12)]);
        let first = assign(Assignor::CooperativeSticky, &members(3, &["t"]), &p);
        let mut m = members(4, &["t"]);
        for (id, set) in &first {
            m.get_mut(id).unwrap().owned = set.clone();
        }
        let second = assign(Assignor::CooperativeSticky, &m, &p);
        check_cover(&second, 12);
        assert!(second.values().all(|s| s.len() == 3));
        let moved: usize = first
            .iter()
            .map(|(id, set)| set.difference(&second[id]).count())
            .sum();
        assert_eq!(moved, 3, "only the new member's share moves");
    }

    #[test]
    fn sticky_keeps_everything_when_nothing_changes() {
        let p = parts(&[("t", 10), ("u", 3)]);
        let first = assign(Assignor::CooperativeSticky, &members(3, &["t", "u"]), &p);
        let mut m = members(3, &["t", "u"]);
        for (id, set) in &first {
            m.get_mut(id).unwrap().owned = set.clone();
        }
        assert_eq!(assign(Assignor::CooperativeSticky, &m, &p), first);
    }
}
