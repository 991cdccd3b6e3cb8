//! `streamlog topics ...`: Kafka's `kafka-topics` for a log directory.
//! Configs use Kafka's names (`retention.ms`, `cleanup.policy`, ...; see
//! `streamlog::KAFKA_CONFIG_NAMES`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use streamlog::{TopicConfig, TopicPartition};

use crate::{open, Res};

#[derive(Subcommand)]
pub enum TopicsCommand {
    /// Print the name of every topic, one per line.
    List {
        /// The log directory.
        dir: PathBuf,
    },
    /// Create a topic (and the log, if the directory holds none yet).
    Create {
        /// The log directory (created if missing).
        dir: PathBuf,
        /// The topic's name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1, value_name = "N")]
        partitions: u32,
        /// A setting by its Kafka name, e.g. `retention.ms=3600000`;
        /// repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
    },
    /// Delete a topic and its data, and the offsets groups committed for it.
    Delete {
        /// The log directory.
        dir: PathBuf,
        /// The topic's name.
        name: String,
    },
    /// Print a topic's settings (every Kafka config with its current
    /// value) and each partition's offsets and size.
    Describe {
        /// The log directory.
        dir: PathBuf,
        /// The topic's name.
        name: String,
    },
    /// Add partitions to a topic or change its settings. As in Kafka, a
    /// changed setting applies from the next roll or maintenance pass.
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["partitions", "configs"])))]
    Alter {
        /// The log directory.
        dir: PathBuf,
        /// The topic's name.
        name: String,
        /// The new, larger, number of partitions.
        #[arg(long, value_name = "N")]
        partitions: Option<u32>,
        /// A setting by its Kafka name, e.g. `retention.ms=3600000`;
        /// repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
    },
}

/// Parses `KEY=VALUE`.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected KEY=VALUE, found {s:?}")),
    }
}

/// `cfg` with each `KEY=VALUE` applied, checked by the library.
fn with_configs(mut cfg: TopicConfig, configs: &[(String, String)]) -> Res<TopicConfig> {
    for (k, v) in configs {
        cfg = cfg.set_kafka_config(k, v)?;
    }
    Ok(cfg)
}

pub fn run(cmd: TopicsCommand) -> Res<ExitCode> {
    match cmd {
        TopicsCommand::List { dir } => {
            for t in open::reader(&dir)?.topics()? {
                println!("{t}");
            }
        }
        TopicsCommand::Create {
            dir,
            name,
            partitions,
            configs,
        } => {
            let cfg = with_configs(TopicConfig::new().partitions(partitions), &configs)?;
            let (fresh, existed) = (!open::is_log(&dir), dir.exists());
            let log = open::writer(&dir, true)?;
            let created = log.create_topic(&name, cfg);
            log.close()?;
            if let Err(e) = created {
                // A refused first topic leaves no log behind (a mistyped
                // name must not turn the directory into one).
                if fresh {
                    open::remove_new_log(&dir, existed)?;
                }
                return Err(e.into());
            }
            eprintln!("created topic {name:?} with {partitions} partitions");
        }
        TopicsCommand::Delete { dir, name } => {
            let log = open::writer(&dir, false)?;
            log.delete_topic(&name)?;
            log.close()?;
            eprintln!("deleted topic {name:?}");
        }
        TopicsCommand::Describe { dir, name } => describe(&dir, &name)?,
        TopicsCommand::Alter {
            dir,
            name,
            partitions,
            configs,
        } => {
            let log = open::writer(&dir, false)?;
            // Everything is checked before anything changes: a refused
            // partition count leaves the configs as they were.
            let current = log.topic_config(&name)?;
            if let Some(n) = partitions {
                if n <= current.partition_count() {
                    return Err(format!(
                        "topic {name:?} has {} partitions; --partitions can only add some (Kafka \
                         cannot remove partitions either)",
                        current.partition_count()
                    )
                    .into());
                }
            }
            let cfg = match configs.is_empty() {
                true => None,
                false => Some(with_configs(current, &configs)?),
            };
            if let Some(n) = partitions {
                log.create_partitions(&name, n)?;
            }
            if let Some(cfg) = cfg {
                let n = log.topic_config(&name)?.partition_count();
                log.alter_topic_config(&name, cfg.partitions(n))?;
            }
            log.close()?;
            eprintln!("altered topic {name:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(dir: &std::path::Path, name: &str) -> Res<()> {
    let log = open::reader(dir)?;
    let cfg = log.topic_config(name)?;
    println!("topic\t{name}");
    println!("partitions\t{}", cfg.partition_count());
    for (k, v) in cfg.kafka_configs() {
        println!("{k}\t{v}");
    }
    println!();
    println!("partition\tstart\tend\tdurable\tbytes\tsegments");
    for p in 0..cfg.partition_count() {
        let i = log.partition_info(&TopicPartition::new(name, p))?;
        println!(
            "{p}\t{}\t{}\t{}\t{}\t{}",
            i.start_offset, i.end_offset, i.durable_offset, i.size_bytes, i.segments
        );
    }
    Ok(())
}
