//! The topic registry (FORMAT.md §5): one line per topic inside a
//! metadata file of kind `topics` (see [`meta`](super::meta)): the name,
//! then every setting as `key=value`.

use std::time::Duration;

use crate::topic::config::{CleanupPolicy, Compression, TopicConfig};
use crate::topic::name::validate_name;

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Encodes one registry line: the name, then `key=value` settings.
pub(crate) fn encode_line(name: &str, c: &TopicConfig) -> String {
    let opt = |v: Option<u128>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let cleanup = match c.cleanup_policy {
        CleanupPolicy::Delete => "delete",
        CleanupPolicy::Compact => "compact",
        CleanupPolicy::CompactAndDelete => "compact,delete",
    };
    let compression = match c.compression {
        Compression::None => "none".to_owned(),
        Compression::Zstd(l) => format!("zstd:{l}"),
    };
    format!(
        "{name} partitions={} segment_bytes={} segment_age_ms={} index_interval_bytes={} \
         segment_index_bytes={} retention_ms={} retention_bytes={} cleanup_policy={cleanup} \
         compression={compression} max_record_bytes={} delete_retention_ms={} min_compaction_lag_ms={} \
         min_cleanable_dirty_ratio={}",
        c.partitions,
        c.segment_bytes,
        ms(c.segment_age),
        c.index_interval_bytes,
        c.segment_index_bytes,
        opt(c.retention.map(ms)),
        opt(c.retention_bytes.map(u128::from)),
        c.max_record_bytes,
        ms(c.delete_retention),
        ms(c.min_compaction_lag),
        c.min_cleanable_dirty_ratio,
    )
}

/// Decodes a registry line. Every setting must be present and valid.
pub(crate) fn decode_line(line: &str) -> std::result::Result<(String, TopicConfig), String> {
    let mut parts = line.split(' ');
    let name = parts.next().unwrap_or_default().to_owned();
    validate_name(&name).map_err(|e| e.to_string())?;
    let mut c = TopicConfig::default();
    let mut seen = std::collections::BTreeSet::new();
    for kv in parts {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("setting {kv:?} has no '='"))?;
        if !seen.insert(k) {
            return Err(format!("setting {k:?} appears twice"));
        }
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{k}={v:?} is not a number"))
        };
        let opt = |v: &str| if v == "-" { Ok(None) } else { num(v).map(Some) };
        let dur = |v: &str| num(v).map(Duration::from_millis);
        match k {
            "partitions" => c.partitions = u32::try_from(num(v)?).map_err(|e| e.to_string())?,
            "segment_bytes" => c.segment_bytes = num(v)?,
            "segment_age_ms" => c.segment_age = dur(v)?,
            "index_interval_bytes" => c.index_interval_bytes = num(v)?,
            "segment_index_bytes" => c.segment_index_bytes = num(v)?,
            "retention_ms" => c.retention = opt(v)?.map(Duration::from_millis),
            "retention_bytes" => c.retention_bytes = opt(v)?,
            "cleanup_policy" => {
                c.cleanup_policy = match v {
                    "delete" => CleanupPolicy::Delete,
                    "compact" => CleanupPolicy::Compact,
                    "compact,delete" => CleanupPolicy::CompactAndDelete,
                    _ => return Err(format!("unknown cleanup_policy {v:?}")),
                }
            }
            "compression" => {
                c.compression = match v.strip_prefix("zstd:") {
                    Some(l) => {
                        Compression::Zstd(l.parse().map_err(|_| format!("bad zstd level {l:?}"))?)
                    }
                    None if v == "none" => Compression::None,
                    None => return Err(format!("unknown compression {v:?}")),
                }
            }
            "max_record_bytes" => c.max_record_bytes = num(v)?,
            "delete_retention_ms" => c.delete_retention = dur(v)?,
            "min_compaction_lag_ms" => c.min_compaction_lag = dur(v)?,
            "min_cleanable_dirty_ratio" => {
                c.min_cleanable_dirty_ratio = v
                    .parse()
                    .map_err(|_| format!("{k}={v:?} is not a number"))?
            }
            _ => return Err(format!("unknown setting {k:?}")),
        }
    }
    if seen.len() != 13 {
        return Err(format!(
            "topic {name:?} has {} settings, expected 13",
            seen.len()
        ));
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok((name, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Decoding validates the zstd level through zstd's C library, which
    // miri cannot run.
    #[test]
    #[cfg_attr(miri, ignore)]
    fn registry_line_round_trips_and_is_pinned() {
        let c = TopicConfig::new()
            .partitions(3)
            .compression(Compression::Zstd(-2))
            .retention(Duration::from_secs(60))
            .cleanup_policy(CleanupPolicy::CompactAndDelete);
        let line = encode_line("t", &c);
        assert_eq!(
            line,
            "t partitions=3 segment_bytes=1073741824 segment_age_ms=604800000 index_interval_bytes=4096 \
             segment_index_bytes=10485760 retention_ms=60000 retention_bytes=- cleanup_policy=compact,delete \
             compression=zstd:-2 max_record_bytes=1048576 delete_retention_ms=86400000 min_compaction_lag_ms=0 \
             min_cleanable_dirty_ratio=0.5"
        );
        assert_eq!(decode_line(&line), Ok(("t".to_owned(), c)));
        assert!(decode_line("t partitions=3").is_err());
        assert!(decode_line(&format!("{line} extra=1")).is_err());
        assert!(decode_line(&line.replace("t ", "../t ")).is_err());
    }
}
