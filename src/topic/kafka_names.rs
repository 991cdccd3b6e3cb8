//! A topic's settings under Kafka's names (`retention.ms`,
//! `cleanup.policy`, ...): how the Kafka server and the command line read
//! and show [`TopicConfig`].

use std::time::Duration;

use super::config::{CleanupPolicy, Compression, TopicConfig};
use crate::error::{Error, Result};

/// Kafka's topic config names that map onto [`TopicConfig`], in the order
/// [`TopicConfig::kafka_configs`] lists them.
pub const KAFKA_CONFIG_NAMES: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "delete.retention.ms",
    "index.interval.bytes",
    "max.message.bytes",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.ms",
];

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

impl TopicConfig {
    /// Sets one setting by its Kafka name (`retention.ms`, `cleanup.policy`,
    /// `compression.type`, ... : see [`KAFKA_CONFIG_NAMES`]). `-1` means
    /// "no limit" for `retention.ms` and `retention.bytes`;
    /// `compression.type` accepts `producer` and `uncompressed` (batches
    /// are stored as sent) and `zstd`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an unknown name or a value out of range
    /// (the message names the setting and what it accepts).
    ///
    /// # Example
    /// ```
    /// use streamlog::{CleanupPolicy, TopicConfig};
    /// let cfg = TopicConfig::new()
    ///     .set_kafka_config("cleanup.policy", "compact")?
    ///     .set_kafka_config("retention.ms", "-1")?;
    /// assert_eq!(cfg.kafka_config("cleanup.policy").as_deref(), Some("compact"));
    /// # Ok::<(), streamlog::Error>(())
    /// ```
    pub fn set_kafka_config(mut self, name: &str, value: &str) -> Result<Self> {
        let bad = |accepts: &str| Error::InvalidConfig {
            what: format!("{name}={value:?} is not accepted: {accepts}"),
        };
        let num = |accepts: &str| value.trim().parse::<i64>().map_err(|_| bad(accepts));
        let non_negative =
            |accepts: &str| num(accepts).and_then(|v| u64::try_from(v).map_err(|_| bad(accepts)));
        let ms = |accepts: &str| non_negative(accepts).map(Duration::from_millis);
        match name {
            "cleanup.policy" => {
                let mut parts: Vec<&str> = value.split(',').map(str::trim).collect();
                parts.sort_unstable();
                parts.dedup();
                self.cleanup_policy = match parts.as_slice() {
                    ["delete"] => CleanupPolicy::Delete,
                    ["compact"] => CleanupPolicy::Compact,
                    ["compact", "delete"] => CleanupPolicy::CompactAndDelete,
                    _ => return Err(bad("delete, compact or compact,delete")),
                }
            }
            "compression.type" => {
                self.compression = match value.trim() {
                    "producer" | "uncompressed" | "none" => Compression::None,
                    "zstd" => Compression::Zstd(3),
                    _ => return Err(bad("producer, uncompressed or zstd")),
                }
            }
            "delete.retention.ms" => self.delete_retention = ms("milliseconds")?,
            "index.interval.bytes" => self.index_interval_bytes = non_negative("bytes")?,
            "max.message.bytes" => self.max_record_bytes = non_negative("bytes")?,
            "min.cleanable.dirty.ratio" => {
                self.min_cleanable_dirty_ratio = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| bad("a ratio from 0 to 1"))?
            }
            "min.compaction.lag.ms" => self.min_compaction_lag = ms("milliseconds")?,
            "retention.bytes" => {
                self.retention_bytes = match num("bytes, or -1 for no limit")? {
                    -1 => None,
                    v => Some(u64::try_from(v).map_err(|_| bad("bytes, or -1 for no limit"))?),
                }
            }
            "retention.ms" => {
                self.retention = match num("milliseconds, or -1 for no limit")? {
                    -1 => None,
                    v => Some(Duration::from_millis(
                        u64::try_from(v).map_err(|_| bad("milliseconds, or -1 for no limit"))?,
                    )),
                }
            }
            "segment.bytes" => self.segment_bytes = non_negative("bytes")?,
            "segment.index.bytes" => self.segment_index_bytes = non_negative("bytes")?,
            "segment.ms" => self.segment_age = ms("milliseconds")?,
            _ => {
                return Err(Error::InvalidConfig {
                    what: format!(
                        "{name} is not a topic setting streamlog knows; known: {}",
                        KAFKA_CONFIG_NAMES.join(", ")
                    ),
                })
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// One setting's value under its Kafka name, as Kafka shows it; `None`
    /// for a name that does not map onto streamlog's settings.
    ///
    /// # Example
    /// ```
    /// let cfg = streamlog::TopicConfig::new();
    /// assert_eq!(cfg.kafka_config("retention.ms").as_deref(), Some("-1"));
    /// ```
    pub fn kafka_config(&self, name: &str) -> Option<String> {
        Some(match name {
            "cleanup.policy" => match self.cleanup_policy {
                CleanupPolicy::Delete => "delete".into(),
                CleanupPolicy::Compact => "compact".into(),
                CleanupPolicy::CompactAndDelete => "compact,delete".into(),
            },
            "compression.type" => match self.compression {
                Compression::None => "producer".into(),
                Compression::Zstd(_) => "zstd".into(),
            },
            "delete.retention.ms" => millis(self.delete_retention),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_record_bytes.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "min.compaction.lag.ms" => millis(self.min_compaction_lag),
            "retention.bytes" => self
                .retention_bytes
                .map_or_else(|| "-1".into(), |b| b.to_string()),
            "retention.ms" => self.retention.map_or_else(|| "-1".into(), millis),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "segment.ms" => millis(self.segment_age),
            _ => return None,
        })
    }

    /// Every setting under its Kafka name, with its value.
    ///
    /// # Example
    /// ```
    /// let all = streamlog::TopicConfig::new().kafka_configs();
    /// assert!(all.iter().any(|(k, v)| *k == "cleanup.policy" && v == "delete"));
    /// ```
    pub fn kafka_configs(&self) -> Vec<(&'static str, String)> {
        KAFKA_CONFIG_NAMES
            .iter()
            .filter_map(|k| self.kafka_config(k).map(|v| (*k, v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_through_its_value() {
        let cfg = TopicConfig::new()
            .retention(Duration::from_secs(60))
            .retention_bytes(1 << 20)
            .cleanup_policy(CleanupPolicy::CompactAndDelete)
            .compression(Compression::Zstd(3));
        let mut back = TopicConfig::new();
        for (k, v) in cfg.kafka_configs() {
            back = back.set_kafka_config(k, &v).unwrap();
        }
        assert_eq!(back, cfg);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = TopicConfig::new()
            .set_kafka_config("retention.ms", "soon")
            .unwrap_err();
        assert!(e.to_string().contains("retention.ms"), "{e}");
        assert!(TopicConfig::new()
            .set_kafka_config("compression.type", "gzip")
            .is_err());
        assert!(TopicConfig::new().set_kafka_config("no.such", "1").is_err());
        assert!(TopicConfig::new()
            .set_kafka_config("segment.bytes", "1")
            .is_err());
    }
}
