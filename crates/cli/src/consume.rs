//! `streamlog consume DIR TOPIC`: print records, like
//! `kafka-console-consumer` and kcat.
//!
//! Without `--group` it reads the log read-only (it works while another
//! process writes the log, and `--follow` then works like `tail -f`). With
//! `--group` it joins the group through the writer's path (the log must not
//! be open elsewhere) and commits exactly the records it printed.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use streamlog::{
    ConsumerConfig, IsolationLevel, OffsetAndMetadata, OffsetReset, ReadRecord, TopicPartition,
};

use crate::render::{parse_time, Format, Printed};
use crate::{open, Res};

/// Which records of transactions to print.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// Only committed transactions' records, up to the last stable offset
    /// (the library's default).
    Committed,
    /// Every record, including those of open and aborted transactions.
    Uncommitted,
}

/// `streamlog consume DIR TOPIC`.
#[derive(clap::Args)]
pub struct ConsumeArgs {
    /// The log directory.
    dir: PathBuf,
    /// The topic.
    topic: String,
    /// Consume as a member of this consumer group: start at its committed
    /// offsets and commit what was printed. Needs the log to itself.
    #[arg(long, value_name = "G")]
    group: Option<String>,
    /// Only this partition (default: all).
    #[arg(long, value_name = "N", conflicts_with = "group")]
    partition: Option<u32>,
    /// Start at the earliest record (with --group: where the group has no
    /// committed offset). Default: at the end, printing only new records.
    #[arg(long)]
    from_beginning: bool,
    /// Start at this offset in each partition read.
    #[arg(long, value_name = "N", conflicts_with_all = ["group", "from_beginning", "timestamp"])]
    offset: Option<u64>,
    /// Start at the first record at or after this time (RFC 3339, or
    /// milliseconds since the epoch).
    #[arg(long, value_name = "T", conflicts_with_all = ["group", "from_beginning"])]
    timestamp: Option<String>,
    /// Keep waiting for new records (until interrupted).
    #[arg(long)]
    follow: bool,
    /// Stop after printing N records.
    #[arg(long, value_name = "N")]
    max: Option<u64>,
    /// Which records of transactions to print.
    #[arg(long, value_enum, default_value_t = Isolation::Committed)]
    isolation: Isolation,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

impl ConsumeArgs {
    fn isolation_level(&self) -> IsolationLevel {
        match self.isolation {
            Isolation::Committed => IsolationLevel::ReadCommitted,
            Isolation::Uncommitted => IsolationLevel::ReadUncommitted,
        }
    }
}

/// How long a follower sleeps at the end before looking again.
const FOLLOW_PAUSE: Duration = Duration::from_millis(20);

pub fn run(a: ConsumeArgs) -> Res<ExitCode> {
    if a.group.is_some() {
        group(&a)
    } else {
        read_only(&a)
    }
}

fn printed(r: ReadRecord) -> Printed {
    Printed {
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key,
        value: r.value,
        headers: r.headers,
    }
}

/// Reads the partitions read-only, in turns, printing as it goes.
fn read_only(a: &ConsumeArgs) -> Res<ExitCode> {
    let log = open::reader(&a.dir)?;
    let count = log.topic_config(&a.topic)?.partition_count();
    let parts: Vec<u32> = match a.partition {
        Some(p) if p >= count => {
            return Err(format!(
                "topic {:?} has {count} partitions; no partition {p}",
                a.topic
            )
            .into())
        }
        Some(p) => vec![p],
        None => (0..count).collect(),
    };
    let at = a.timestamp.as_deref().map(parse_time).transpose()?;
    let mut readers = Vec::new();
    for p in parts {
        let tp = TopicPartition::new(a.topic.as_str(), p);
        let info = log.partition_info(&tp)?;
        let start = match (a.offset, at) {
            (Some(o), _) => o,
            (None, Some(ts)) => log
                .offset_for_timestamp(&tp, ts)?
                .unwrap_or(info.end_offset),
            (None, None) if a.from_beginning => info.start_offset,
            (None, None) => info.end_offset,
        };
        readers.push(log.partition_reader(&tp, start, a.isolation_level())?);
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0u64;
    let mut missing = false;
    loop {
        let mut any = false;
        for r in &mut readers {
            let left = a.max.map_or(usize::MAX, |m| (m - n) as usize).min(1000);
            let read = r.read(left)?;
            if let Some(gone) = &read.skipped {
                eprintln!(
                    "streamlog: {}: offsets {}..{} were deleted (retention) before they could be read",
                    r.topic_partition(),
                    gone.start,
                    gone.end
                );
                missing = true;
            }
            any |= !read.records.is_empty();
            for rec in read.records {
                printed(rec).write(a.format, &mut out)?;
                n += 1;
            }
            if a.max.is_some_and(|m| n >= m) {
                out.flush()?;
                return Ok(exit(missing));
            }
        }
        if !any {
            out.flush()?;
            if !a.follow {
                return Ok(exit(missing));
            }
            std::thread::sleep(FOLLOW_PAUSE);
        }
    }
}

fn exit(missing: bool) -> ExitCode {
    if missing {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Consumes as a group member and commits exactly what it printed.
fn group(a: &ConsumeArgs) -> Res<ExitCode> {
    let g = a.group.as_deref().unwrap_or_default();
    let log = open::writer(&a.dir, false)?;
    log.topic_config(&a.topic)?;
    let reset = if a.from_beginning {
        OffsetReset::Earliest
    } else {
        OffsetReset::Latest
    };
    let cfg = ConsumerConfig::new()
        .group(g)
        .auto_offset_reset(reset)
        .enable_auto_commit(false)
        .isolation_level(a.isolation_level());
    let mut c = log.consumer(cfg);
    c.subscribe(&[a.topic.as_str()])?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut n = 0u64;
    let result = (|| -> Res<()> {
        loop {
            let records = c.poll(Duration::from_millis(if a.follow { 500 } else { 200 }))?;
            if records.is_empty() && !a.follow {
                return Ok(());
            }
            let mut done: HashMap<TopicPartition, OffsetAndMetadata> = HashMap::new();
            let mut stop = false;
            for r in &records {
                Printed {
                    topic: r.topic().to_owned(),
                    partition: r.partition(),
                    offset: r.offset(),
                    timestamp: r.timestamp(),
                    key: r.key().map(<[u8]>::to_vec),
                    value: r.value().map(<[u8]>::to_vec),
                    headers: r
                        .nullable_headers()
                        .map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec)))
                        .collect(),
                }
                .write(a.format, &mut out)?;
                done.insert(
                    TopicPartition::new(r.topic(), r.partition()),
                    OffsetAndMetadata::new(r.offset() + 1),
                );
                n += 1;
                if a.max.is_some_and(|m| n >= m) {
                    stop = true;
                    break;
                }
            }
            out.flush()?;
            // Exactly what was printed: never past a record not shown.
            c.commit_offsets(&done)?;
            if stop {
                return Ok(());
            }
        }
    })();
    drop(out);
    drop(c);
    log.close()?;
    result?;
    Ok(ExitCode::SUCCESS)
}
