//! `streamlog groups ...`: Kafka's `kafka-consumer-groups` for a log
//! directory.
//!
//! Members of a group live in the process that runs them; from another
//! process only the committed offsets are visible. So `describe` shows
//! members only as "the log is open in process N" (its members are not
//! visible here), and `reset-offsets --execute` and `delete`, which need
//! the log to themselves, are refused while any process holds it, as Kafka
//! refuses them while a group has live members. Within one process, the
//! library refuses them while the group has members
//! (`Error::GroupNotEmpty`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Subcommand};
use streamlog::{Log, LogReader, OffsetAndMetadata, PartitionInfo, TopicPartition};

use crate::render::parse_time;
use crate::{open, Res};

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// Print every group with committed offsets, one per line.
    List {
        /// The log directory.
        dir: PathBuf,
    },
    /// Print a group's committed offset, end offset and lag per partition.
    Describe {
        /// The log directory.
        dir: PathBuf,
        /// The group id.
        group: String,
    },
    /// Move a group's committed offsets for one topic (refused, also with
    /// --dry-run, while the log is open elsewhere, as Kafka refuses it
    /// while the group has members).
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
    #[command(group(ArgGroup::new("mode").required(true).args(["dry_run", "execute"])))]
    ResetOffsets {
        /// The log directory.
        dir: PathBuf,
        /// The group id.
        group: String,
        /// The topic whose partitions are reset (all of them).
        #[arg(long)]
        topic: String,
        /// To each partition's start.
        #[arg(long)]
        to_earliest: bool,
        /// To each partition's end.
        #[arg(long)]
        to_latest: bool,
        /// To this offset (clamped to each partition's start and end).
        #[arg(long, value_name = "N")]
        to_offset: Option<u64>,
        /// To the first record at or after this time (RFC 3339, or ms
        /// since the epoch); the end where there is none.
        #[arg(long, value_name = "T")]
        to_datetime: Option<String>,
        /// By N from the committed offset (negative: back), clamped; from
        /// the partition's start where the group has committed nothing.
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        shift_by: Option<i64>,
        /// Print the new offsets, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write the new offsets.
        #[arg(long)]
        execute: bool,
    },
    /// Delete a group's committed offsets (refused while the log is open
    /// elsewhere).
    Delete {
        /// The log directory.
        dir: PathBuf,
        /// The group id.
        group: String,
    },
}

/// What `reset-offsets` needs from a log, read-only or not.
trait View {
    fn partitions(&self, topic: &str) -> Res<u32>;
    fn info(&self, tp: &TopicPartition) -> Res<PartitionInfo>;
    fn committed(&self, group: &str) -> Res<Vec<(TopicPartition, OffsetAndMetadata)>>;
    fn offset_at(&self, tp: &TopicPartition, ts: i64) -> Res<Option<u64>>;
}

impl View for Log {
    fn partitions(&self, topic: &str) -> Res<u32> {
        Ok(self.topic_config(topic)?.partition_count())
    }
    fn info(&self, tp: &TopicPartition) -> Res<PartitionInfo> {
        Ok(self.partition_info(tp)?)
    }
    fn committed(&self, group: &str) -> Res<Vec<(TopicPartition, OffsetAndMetadata)>> {
        Ok(self.committed_offsets(group))
    }
    fn offset_at(&self, tp: &TopicPartition, ts: i64) -> Res<Option<u64>> {
        Ok(self.offset_for_timestamp(tp, ts)?)
    }
}

impl View for LogReader {
    fn partitions(&self, topic: &str) -> Res<u32> {
        Ok(self.topic_config(topic)?.partition_count())
    }
    fn info(&self, tp: &TopicPartition) -> Res<PartitionInfo> {
        Ok(self.partition_info(tp)?)
    }
    fn committed(&self, group: &str) -> Res<Vec<(TopicPartition, OffsetAndMetadata)>> {
        Ok(self.committed_offsets(group)?)
    }
    fn offset_at(&self, tp: &TopicPartition, ts: i64) -> Res<Option<u64>> {
        Ok(self.offset_for_timestamp(tp, ts)?)
    }
}

/// Where `reset-offsets` moves each partition.
enum Target {
    Earliest,
    Latest,
    Offset(u64),
    Time(i64),
    Shift(i64),
}

/// `(partition, current committed offset, new offset)` for each
/// partition of `topic`.
fn plan(
    v: &dyn View,
    group: &str,
    topic: &str,
    to: &Target,
) -> Res<Vec<(TopicPartition, Option<u64>, u64)>> {
    let committed = v.committed(group)?;
    let mut out = Vec::new();
    for p in 0..v.partitions(topic)? {
        let tp = TopicPartition::new(topic, p);
        let i = v.info(&tp)?;
        let current = committed
            .iter()
            .find(|(t, _)| *t == tp)
            .map(|(_, o)| o.offset());
        let clamp = |o: u64| o.clamp(i.start_offset, i.end_offset);
        let new = match *to {
            Target::Earliest => i.start_offset,
            Target::Latest => i.end_offset,
            Target::Offset(o) => clamp(o),
            Target::Time(ts) => v.offset_at(&tp, ts)?.unwrap_or(i.end_offset),
            Target::Shift(d) => {
                let from = current.unwrap_or(i.start_offset);
                clamp(from.saturating_add_signed(d))
            }
        };
        out.push((tp, current, new));
    }
    Ok(out)
}

fn print_plan(group: &str, rows: &[(TopicPartition, Option<u64>, u64)]) {
    println!("group\ttopic\tpartition\tcurrent\tnew");
    for (tp, current, new) in rows {
        let current = current.map_or_else(|| "-".to_string(), |c| c.to_string());
        println!("{group}\t{}\t{}\t{current}\t{new}", tp.topic, tp.partition);
    }
}

pub fn run(cmd: GroupsCommand) -> Res<ExitCode> {
    match cmd {
        GroupsCommand::List { dir } => {
            for g in open::reader(&dir)?.groups()? {
                println!("{g}");
            }
        }
        GroupsCommand::Describe { dir, group } => describe(&dir, &group)?,
        GroupsCommand::ResetOffsets {
            dir,
            group,
            topic,
            to_earliest,
            to_latest,
            to_offset,
            to_datetime,
            shift_by,
            dry_run: _,
            execute,
        } => {
            let to = match (to_earliest, to_latest, to_offset, to_datetime, shift_by) {
                (true, ..) => Target::Earliest,
                (_, true, ..) => Target::Latest,
                (_, _, Some(o), ..) => Target::Offset(o),
                (_, _, _, Some(t), _) => Target::Time(parse_time(&t)?),
                (.., Some(d)) => Target::Shift(d),
                _ => unreachable!("clap requires one target"),
            };
            if execute {
                let log = open::writer(&dir, false)?;
                let rows = plan(&log, &group, &topic, &to)?;
                let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = rows
                    .iter()
                    .map(|(tp, _, new)| (tp.clone(), OffsetAndMetadata::new(*new)))
                    .collect();
                log.reset_group_offsets(&group, &offsets)?;
                log.close()?;
                print_plan(&group, &rows);
            } else {
                // Kafka refuses a dry run too while the group is active: the
                // plan would be stale before it could be executed.
                let log = open::reader(&dir)?;
                if let Some(pid) = open::lock_holder(&dir) {
                    return Err(format!(
                        "{}: the log is open for writing by process {pid}, whose group members \
                         may be live; reset-offsets is refused until it closes the log",
                        dir.display()
                    )
                    .into());
                }
                print_plan(&group, &plan(&log, &group, &topic, &to)?);
                eprintln!("dry run: nothing was changed; --execute writes these offsets");
            }
        }
        GroupsCommand::Delete { dir, group } => {
            let log = open::writer(&dir, false)?;
            let n = log.delete_group(&group)?;
            log.close()?;
            eprintln!("deleted group {group:?} ({n} committed offsets)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(dir: &Path, group: &str) -> Res<()> {
    let log = open::reader(dir)?;
    let committed = log.committed_offsets(group)?;
    if committed.is_empty() {
        return Err(format!("consumer group {group:?} has no committed offsets").into());
    }
    match open::lock_holder(dir) {
        Some(pid) => println!(
            "members\tunknown: the log is open in process {pid}; its members are not visible from here"
        ),
        None => println!("members\tnone: no process has the log open"),
    }
    println!("group\ttopic\tpartition\tcommitted\tend\tlag");
    for (tp, o) in committed {
        let end = match log.partition_info(&tp) {
            Ok(i) => i.end_offset.to_string(),
            Err(_) => "-".into(),
        };
        let lag = end
            .parse::<u64>()
            .map_or_else(|_| "-".into(), |e| e.saturating_sub(o.offset()).to_string());
        println!(
            "{group}\t{}\t{}\t{}\t{end}\t{lag}",
            tp.topic,
            tp.partition,
            o.offset()
        );
    }
    Ok(())
}
