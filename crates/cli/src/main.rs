//! `streamlog`: inspect and operate a log directory from the shell.
//!
//! ```text
//! streamlog topics DIR
//! streamlog describe DIR TOPIC
//! streamlog dump PATH                      a segment file (.log)
//! streamlog verify DIR                     exit code 1 on corruption
//! streamlog groups DIR
//! streamlog produce DIR TOPIC [--separator SEP]
//! streamlog consume DIR TOPIC [--group G] [--from-beginning] [--follow] [--max N]
//! streamlog serve DIR --listen ADDR [--partitions N] [--no-auto-create-topics]
//! ```

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use streamlog::inspect::{dump_segment, verify_dir};
use streamlog::{ConsumerConfig, Log, OffsetReset, Record, TopicPartition};

mod serve;

const USAGE: &str = "usage:
  streamlog topics DIR
  streamlog describe DIR TOPIC
  streamlog dump PATH
  streamlog verify DIR
  streamlog groups DIR
  streamlog produce DIR TOPIC [--separator SEP]
  streamlog consume DIR TOPIC [--group G] [--from-beginning] [--follow] [--max N]
  streamlog serve DIR --listen ADDR [--partitions N] [--no-auto-create-topics]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("streamlog: {e}");
            ExitCode::from(2)
        }
    }
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// Printable bytes as text, others escaped.
fn show(b: Option<&[u8]>) -> String {
    match b {
        None => "null".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) if !s.chars().any(char::is_control) => format!("{s:?}"),
            _ => format!("<{} bytes>", b.len()),
        },
    }
}

fn run(args: &[String]) -> Res<ExitCode> {
    let (cmd, rest) = args.split_first().ok_or(USAGE)?;
    let pos = |i: usize| rest.get(i).map(String::as_str).ok_or(USAGE);
    match cmd.as_str() {
        "serve" => {
            let listen = option(rest, "--listen").unwrap_or("127.0.0.1:9092");
            let partitions = match option(rest, "--partitions") {
                Some(n) => Some(
                    n.parse::<u32>()
                        .map_err(|_| format!("--partitions {n}: not a number"))?,
                ),
                None => None,
            };
            return serve::serve(
                pos(0)?,
                listen,
                partitions,
                !flag(rest, "--no-auto-create-topics"),
            );
        }
        "topics" => {
            let log = Log::open(pos(0)?)?;
            for t in log.topics() {
                println!(
                    "{t}\tpartitions={}",
                    log.topic_config(&t)?.partition_count()
                );
            }
        }
        "describe" => {
            let log = Log::open(pos(0)?)?;
            let topic = pos(1)?;
            let cfg = log.topic_config(topic)?;
            println!("topic {topic}: {cfg:?}");
            println!("partition\tstart\tend\tdurable\tbytes\tsegments");
            for p in 0..cfg.partition_count() {
                let i = log.partition_info(&TopicPartition::new(topic, p))?;
                println!(
                    "{p}\t{}\t{}\t{}\t{}\t{}",
                    i.start_offset, i.end_offset, i.durable_offset, i.size_bytes, i.segments
                );
            }
        }
        "dump" => {
            let path = Path::new(pos(0)?);
            let d = dump_segment(path)?;
            for b in &d.batches {
                println!(
                    "batch position={} size={} offsets={}..={} records={} format=v{} compression={} timestamps={}..{} producer={}/{}/{}{}{} crc={}",
                    b.position,
                    b.size,
                    b.base_offset,
                    b.last_offset,
                    b.record_count,
                    b.format_version,
                    b.compression,
                    b.base_timestamp,
                    b.max_timestamp,
                    b.producer_id,
                    b.producer_epoch,
                    b.base_sequence,
                    if b.transactional { " transactional" } else { "" },
                    if b.control { " control" } else { "" },
                    if b.crc_ok { "ok" } else { "BAD" }
                );
                for r in &b.records {
                    let headers: Vec<String> = r
                        .headers
                        .iter()
                        .map(|(k, v)| format!("{k}={}", show(v.as_deref())))
                        .collect();
                    if let Some(marker) = r.control {
                        println!(
                            "  offset={} timestamp={} marker={marker}",
                            r.offset, r.timestamp
                        );
                        continue;
                    }
                    println!(
                        "  offset={} timestamp={} key={} value={} headers=[{}]",
                        r.offset,
                        r.timestamp,
                        show(r.key.as_deref()),
                        show(r.value.as_deref()),
                        headers.join(", ")
                    );
                }
            }
            if let Some((at, why)) = d.stopped {
                println!("stopped at byte {at}: {why}");
            }
        }
        "verify" => {
            let r = verify_dir(Path::new(pos(0)?))?;
            for p in &r.problems {
                match p.position {
                    Some(at) => println!("{} at byte {at}: {}", p.path.display(), p.what),
                    None => println!("{}: {}", p.path.display(), p.what),
                }
            }
            println!(
                "{} segments, {} batches checked, {} problems",
                r.segments,
                r.batches,
                r.problems.len()
            );
            if !r.problems.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        "groups" => {
            let log = Log::open(pos(0)?)?;
            println!("group\tpartition\tcommitted\tend\tlag");
            for g in log.groups() {
                for (tp, o) in log.committed_offsets(&g) {
                    let end = log.partition_info(&tp).map(|i| i.end_offset).unwrap_or(0);
                    println!(
                        "{g}\t{tp}\t{}\t{end}\t{}",
                        o.offset(),
                        end.saturating_sub(o.offset())
                    );
                }
            }
        }
        "produce" => {
            let log = Log::open(pos(0)?)?;
            let topic = pos(1)?;
            let sep = option(rest, "--separator");
            let producer = log.producer();
            let mut n = 0u64;
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let record = match sep.and_then(|s| line.split_once(s)) {
                    Some((k, v)) => Record::new(v.as_bytes().to_vec()).key(k.as_bytes().to_vec()),
                    None => Record::new(line.into_bytes()),
                };
                producer.send(topic, record)?;
                n += 1;
            }
            log.close()?;
            eprintln!("produced {n} records");
        }
        "consume" => {
            let log = Log::open(pos(0)?)?;
            let topic = pos(1)?;
            let reset = if flag(rest, "--from-beginning") {
                OffsetReset::Earliest
            } else {
                OffsetReset::Latest
            };
            let max: Option<u64> = option(rest, "--max").map(str::parse).transpose()?;
            let follow = flag(rest, "--follow");
            let mut cfg = ConsumerConfig::new().auto_offset_reset(reset);
            let group = option(rest, "--group");
            if let Some(g) = group {
                cfg = cfg.group(g);
            }
            let mut c = log.consumer(cfg);
            let parts = log.topic_config(topic)?.partition_count();
            let tps: Vec<TopicPartition> =
                (0..parts).map(|p| TopicPartition::new(topic, p)).collect();
            if group.is_some() {
                c.subscribe(&[topic])?;
            } else {
                c.assign(&tps)?;
            }
            let mut out = std::io::stdout().lock();
            let mut n = 0u64;
            loop {
                let records = c.poll(Duration::from_millis(if follow { 1000 } else { 100 }))?;
                if records.is_empty() && !follow {
                    break;
                }
                for r in &records {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}",
                        r.partition(),
                        r.offset(),
                        show(r.key()),
                        show(r.value())
                    )?;
                    n += 1;
                    if max.is_some_and(|m| n >= m) {
                        break;
                    }
                }
                if max.is_some_and(|m| n >= m) {
                    break;
                }
            }
            drop(out);
            if group.is_some() {
                c.commit()?;
            }
            drop(c);
            log.close()?;
        }
        _ => return Err(USAGE.into()),
    }
    Ok(ExitCode::SUCCESS)
}
