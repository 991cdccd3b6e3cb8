//! `streamlog produce DIR TOPIC`: records from stdin, one per line, like
//! `kafka-console-producer`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;
use streamlog::{Producer, Record};

use crate::render::{bytes_from_json, headers_from_json};
use crate::{open, Res};

/// How `produce` reads its input.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// A line is a value, or `KEY<SEP>VALUE` with `--key-separator`.
    Text,
    /// A line is a JSON object: `{"key":..,"value":..,"headers":{..},
    /// "partition":..,"timestamp":..}`, every field optional; bytes as a
    /// string or `{"base64": "..."}`, null as `null`.
    Json,
}

/// `streamlog produce DIR TOPIC`.
#[derive(clap::Args)]
pub struct ProduceArgs {
    /// The log directory.
    dir: PathBuf,
    /// The topic.
    topic: String,
    /// Split each line at the first SEP into key and value (text input).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Each line starts with headers, `name:value[,name:value...]`, then a
    /// tab (text input).
    #[arg(long)]
    headers: bool,
    /// Send every record to this partition (default: by key, or round
    /// robin for records without a key).
    #[arg(long, value_name = "N")]
    partition: Option<u32>,
    /// A value equal to STR is sent as null: a tombstone in a compacted
    /// topic (text input).
    #[arg(long, value_name = "STR")]
    null_value: Option<String>,
    /// Input format.
    #[arg(long, value_enum, default_value_t = InputFormat::Text)]
    format: InputFormat,
}

/// One record to send, owned.
#[derive(Debug, Default, PartialEq)]
struct Line {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    partition: Option<u32>,
    timestamp: Option<i64>,
}

fn parse_text(a: &ProduceArgs, mut line: &str) -> Res<Line> {
    let mut out = Line::default();
    if a.headers {
        let (h, rest) = line
            .split_once('\t')
            .ok_or("--headers: expected name:value[,name:value...] then a tab")?;
        for pair in h.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair
                .split_once(':')
                .ok_or_else(|| format!("--headers: {pair:?} is not name:value"))?;
            out.headers
                .push((k.to_owned(), Some(v.as_bytes().to_vec())));
        }
        line = rest;
    }
    let value = match a.key_separator.as_deref() {
        Some(sep) => match line.split_once(sep) {
            Some((k, v)) => {
                out.key = Some(k.as_bytes().to_vec());
                v
            }
            None => line,
        },
        None => line,
    };
    out.value = (a.null_value.as_deref() != Some(value)).then(|| value.as_bytes().to_vec());
    Ok(out)
}

fn parse_json(line: &str) -> Res<Line> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["key", "value", "headers", "partition", "timestamp"].contains(&k.as_str()))
    {
        return Err(format!(
            "unknown field {k:?} (expected key, value, headers, partition, timestamp)"
        )
        .into());
    }
    let field = |name: &str| obj.get(name).unwrap_or(&Value::Null);
    let number = |name: &str| -> Res<Option<i64>> {
        match field(name) {
            Value::Null => Ok(None),
            v => Ok(Some(v.as_i64().ok_or_else(|| {
                format!("{name}: expected an integer, found {v}")
            })?)),
        }
    };
    Ok(Line {
        key: bytes_from_json(field("key"), "key")?,
        value: bytes_from_json(field("value"), "value")?,
        headers: headers_from_json(field("headers"))?,
        partition: number("partition")?
            .map(|p| u32::try_from(p).map_err(|_| format!("partition: {p} is out of range")))
            .transpose()?,
        timestamp: number("timestamp")?,
    })
}

fn send(p: &Producer, topic: &str, default_partition: Option<u32>, l: &Line) -> Res<()> {
    let mut r = match &l.value {
        Some(v) => Record::new(&v[..]),
        None => Record::tombstone(l.key.as_deref().ok_or("a null value needs a key")?),
    };
    if let Some(k) = &l.key {
        r = r.key(&k[..]);
    }
    for (k, v) in &l.headers {
        r = match v {
            Some(v) => r.header(k.as_str(), &v[..]),
            None => r.null_header(k.as_str()),
        };
    }
    if let Some(ts) = l.timestamp {
        r = r.timestamp(ts);
    }
    match l.partition.or(default_partition) {
        Some(n) => p.send_to(topic, n, r)?,
        None => p.send(topic, r)?,
    };
    Ok(())
}

pub fn run(a: ProduceArgs) -> Res<ExitCode> {
    let log = open::writer(&a.dir, false)?;
    log.topic_config(&a.topic)?;
    let producer = log.producer();
    let mut n = 0u64;
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        // Lines already read were sent: like Kafka's console producer,
        // this streams, and stops at the first line it cannot send.
        let line = line.map_err(|e| {
            format!(
                "line {}: {e} (text lines must be UTF-8; send other bytes with --format json \
                 and {{\"base64\": ...}})",
                i + 1
            )
        })?;
        let parsed = match a.format {
            InputFormat::Text => parse_text(&a, &line),
            InputFormat::Json => parse_json(&line),
        }
        .map_err(|e| format!("line {}: {e}", i + 1))?;
        send(&producer, &a.topic, a.partition, &parsed)
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        n += 1;
    }
    drop(producer);
    log.close()?;
    eprintln!("produced {n} record{}", if n == 1 { "" } else { "s" });
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        a: ProduceArgs,
    }

    fn args(extra: &[&str]) -> ProduceArgs {
        let mut v = vec!["t", "dir", "topic"];
        v.extend_from_slice(extra);
        T::parse_from(v).a
    }

    #[test]
    fn text_lines_with_headers_key_and_null_marker() {
        let a = args(&["--headers", "--key-separator", "=", "--null-value", "NULL"]);
        let l = parse_text(&a, "h1:a,h2:b\tk=v=w").unwrap();
        assert_eq!(l.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(l.value.as_deref(), Some(&b"v=w"[..]));
        assert_eq!(l.headers.len(), 2);
        assert_eq!(parse_text(&a, "\tk=NULL").unwrap().value, None);
        assert!(parse_text(&a, "no tab").is_err());
    }

    #[test]
    fn json_lines() {
        let l = parse_json(
            r#"{"key":"k","value":{"base64":"/w=="},"headers":{"h":"v"},"partition":1,"timestamp":5}"#,
        )
        .unwrap();
        assert_eq!(l.value.as_deref(), Some(&[0xff][..]));
        assert_eq!((l.partition, l.timestamp), (Some(1), Some(5)));
        assert!(parse_json(r#"{"vaule":"typo"}"#).is_err());
        assert!(parse_json(r#"{"partition":-1}"#).is_err());
        assert!(parse_json("[1]").is_err());
    }
}
