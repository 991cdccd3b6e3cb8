//! `streamlog mirror`: a Log into a Kafka cluster (`--to`), or a Kafka
//! cluster's topics into a Log (`--from`), exactly once (the
//! `streamlog-bridge` crate).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use streamlog_bridge::{MirrorFromKafka, MirrorToKafka};

/// `streamlog mirror DIR --to BOOTSTRAP` or `streamlog mirror --from
/// BOOTSTRAP --topics a,b DIR`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("side").required(true).args(["to", "from"])))]
pub struct MirrorArgs {
    /// The log directory: the source with --to (the application may keep
    /// it open), the destination with --from (created if missing).
    dir: std::path::PathBuf,
    /// Copy the log into the Kafka cluster at this bootstrap address
    /// (host:port[,host:port...]).
    #[arg(long, value_name = "BOOTSTRAP")]
    to: Option<String>,
    /// Copy topics of the Kafka cluster at this bootstrap address into the
    /// log.
    #[arg(long, value_name = "BOOTSTRAP")]
    from: Option<String>,
    /// Only these topics (comma-separated; default: every topic that is
    /// not internal).
    #[arg(long, value_delimiter = ',')]
    topics: Option<Vec<String>>,
    /// With --to: translate only these groups' offsets (comma-separated;
    /// default: every group).
    #[arg(long, value_delimiter = ',')]
    groups: Option<Vec<String>>,
    /// Keep copying new records until SIGINT or SIGTERM.
    #[arg(long)]
    follow: bool,
    /// With --to: follow until the log's application has closed it, then
    /// copy the tail, translate every group's offsets and report whether
    /// consumers can switch to Kafka.
    #[arg(long)]
    cutover: bool,
    /// The mirror's id: its transactional id, and its progress topic is
    /// ID.progress. Run one mirror per id.
    #[arg(long, default_value = "streamlog-mirror")]
    id: String,
    /// With --to: the replication factor of the topics it creates
    /// (default: the cluster's).
    #[arg(long, value_name = "N")]
    replication_factor: Option<i32>,
    /// A librdkafka setting for its clients (repeatable), e.g.
    /// -X security.protocol=ssl.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    client: Vec<String>,
    /// Print a line after each transaction.
    #[arg(long, short)]
    verbose: bool,
}

/// Runs `mirror`; exit code 1 when a cut-over could not finish.
pub fn run(a: MirrorArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let stop = Arc::new(AtomicBool::new(false));
    if a.follow || a.cutover {
        let set = crate::serve::block_stop_signals();
        let stop = stop.clone();
        std::thread::spawn(move || {
            crate::serve::wait_for_stop(&set);
            stop.store(true, Ordering::SeqCst);
        });
    }
    let mut client = Vec::new();
    for kv in &a.client {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("-X {kv}: expected KEY=VALUE"))?;
        client.push((k.to_owned(), v.to_owned()));
    }
    if let Some(bootstrap) = &a.from {
        if a.cutover || a.groups.is_some() || a.replication_factor.is_some() {
            return Err("--cutover, --groups and --replication-factor go with --to".into());
        }
        let mut m = MirrorFromKafka::new(bootstrap, &a.dir)
            .id(&a.id)
            .follow(a.follow)
            .stop_flag(stop)
            .verbose(a.verbose);
        if let Some(t) = &a.topics {
            m = m.topics(t.clone());
        }
        for (k, v) in client {
            m = m.client_config(k, v);
        }
        let r = m.run()?;
        println!(
            "copied {} records from {bootstrap} in {} transactions{}",
            r.records,
            r.transactions,
            created(&r.topics_created)
        );
        return Ok(ExitCode::SUCCESS);
    }
    let bootstrap = a.to.as_deref().unwrap_or_default();
    let mut m = MirrorToKafka::new(&a.dir, bootstrap)
        .id(&a.id)
        .follow(a.follow)
        .cutover(a.cutover)
        .stop_flag(stop)
        .verbose(a.verbose);
    if let Some(t) = &a.topics {
        m = m.topics(t.clone());
    }
    if let Some(g) = &a.groups {
        m = m.groups(g.clone());
    }
    if let Some(n) = a.replication_factor {
        m = m.replication_factor(n);
    }
    for (k, v) in client {
        m = m.client_config(k, v);
    }
    let r = m.run()?;
    println!(
        "copied {} records to {bootstrap} in {} transactions{}{}",
        r.records,
        r.transactions,
        created(&r.topics_created),
        rate(r.records, r.copying)
    );
    if r.lost_to_retention > 0 {
        println!(
            "{} offsets were deleted by retention before they were copied",
            r.lost_to_retention
        );
    }
    for g in &r.groups {
        let offsets: Vec<String> = g
            .offsets
            .iter()
            .map(|(tp, s, t)| format!("{tp} {s}->{t}"))
            .collect();
        let state = if g.active_on_target {
            "left alone: it has active members on the cluster".to_owned()
        } else if let Some(e) = &g.error {
            e.clone()
        } else if !g.pending.is_empty() {
            format!(
                "{} partitions not copied up to their offset yet",
                g.pending.len()
            )
        } else {
            "translated".to_owned()
        };
        println!("group {}: {state}; {}", g.group, offsets.join(", "));
    }
    if a.cutover {
        if r.cut_over {
            println!("cut over: the log has no writer, every record and group offset is on the cluster; consumers can switch to Kafka with nothing re-delivered");
        } else {
            println!("cut-over not finished: see the groups above");
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn created(topics: &[String]) -> String {
    if topics.is_empty() {
        String::new()
    } else {
        format!("; created topics {}", topics.join(", "))
    }
}

/// ", N records/s while copying" (from the first read of the Log to the
/// last commit: with `--follow`, the waits for new records too), or
/// nothing when nothing was copied.
fn rate(records: u64, copying: std::time::Duration) -> String {
    if records == 0 || copying.is_zero() {
        return String::new();
    }
    format!(
        ", {:.0} records/s while copying",
        records as f64 / copying.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn the_rate_is_records_over_the_copying_time() {
        assert_eq!(
            super::rate(5_000, Duration::from_millis(250)),
            ", 20000 records/s while copying"
        );
        assert_eq!(super::rate(0, Duration::from_secs(1)), "");
        assert_eq!(super::rate(10, Duration::ZERO), "");
    }
}
