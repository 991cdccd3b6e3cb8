//! How bytes, records and times look on the command line, and how they are
//! read back: one convention for `produce`, `consume` and `dump`.
//!
//! - **JSON** (`--format json`, `--json`): one object per line. Bytes are a
//!   JSON string when they are valid UTF-8, else `{"base64": "..."}`
//!   (standard alphabet, padded); a null key or value is `null`. Headers
//!   are an object `{"name": value}`, or, when a name repeats, an array of
//!   `[name, value]` pairs; `produce --format json` accepts both.
//! - **Text**: bytes as UTF-8 with control characters and backslashes
//!   escaped as in Rust (`\n`, `\t`, `\u{1b}`); bytes that are not UTF-8
//!   as `base64:...`; null as `null`.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::Res;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Bytes (or null) as JSON.
pub fn json_bytes(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_owned()),
            Err(_) => json!({ "base64": B64.encode(b) }),
        },
    }
}

/// JSON back to bytes: a string, `{"base64": ...}` or `null`.
pub fn bytes_from_json(v: &Value, what: &str) -> Res<Option<Vec<u8>>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.as_bytes().to_vec())),
        Value::Object(m) if m.len() == 1 && m.contains_key("base64") => {
            let s = m["base64"]
                .as_str()
                .ok_or_else(|| format!("{what}: \"base64\" must be a string"))?;
            Ok(Some(
                B64.decode(s)
                    .map_err(|e| format!("{what}: bad base64: {e}"))?,
            ))
        }
        _ => Err(
            format!("{what}: expected a string, {{\"base64\": \"...\"}} or null, found {v}").into(),
        ),
    }
}

/// Headers as JSON: an object, or `[name, value]` pairs when a name
/// repeats (an object would lose one of them).
pub fn json_headers(headers: &[(String, Option<Vec<u8>>)]) -> Value {
    let mut names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        Value::Array(
            headers
                .iter()
                .map(|(k, v)| json!([k, json_bytes(v.as_deref())]))
                .collect(),
        )
    } else {
        let mut m = Map::new();
        for (k, v) in headers {
            m.insert(k.clone(), json_bytes(v.as_deref()));
        }
        Value::Object(m)
    }
}

/// JSON back to headers (an object or an array of pairs).
pub fn headers_from_json(v: &Value) -> Res<Vec<(String, Option<Vec<u8>>)>> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| Ok((k.clone(), bytes_from_json(v, &format!("header {k:?}"))?)))
            .collect(),
        Value::Array(a) => a
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(k), v]) => {
                    Ok((k.clone(), bytes_from_json(v, &format!("header {k:?}"))?))
                }
                _ => Err(format!("headers: expected [name, value] pairs, found {pair}").into()),
            })
            .collect(),
        _ => Err(format!("headers: expected an object or an array, found {v}").into()),
    }
}

/// Bytes (or null) as one field of a text line.
pub fn text_bytes(b: Option<&[u8]>) -> String {
    match b {
        None => "null".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => s.escape_debug().to_string(),
            Err(_) => format!("base64:{}", B64.encode(b)),
        },
    }
}

/// Headers as one field of a text line: `name=value` pairs joined by `,`.
pub fn text_headers(headers: &[(String, Option<Vec<u8>>)]) -> String {
    let pairs: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("{}={}", k.escape_debug(), text_bytes(v.as_deref())))
        .collect();
    pairs.join(",")
}

/// A time given as milliseconds since the epoch or in RFC 3339
/// (`2026-12-05T10:00:00Z`, `2026-12-05T10:00:00.5+01:00`).
pub fn parse_time(s: &str) -> Res<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            format!("{s:?} is neither milliseconds since the epoch nor an RFC 3339 time: {e}")
        })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// One consumed record, owned: what `consume` prints.
pub struct Printed {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// How `consume` prints records.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `TOPIC-PARTITION<TAB>OFFSET<TAB>TIMESTAMP<TAB>KEY<TAB>HEADERS<TAB>VALUE`.
    Text,
    /// One JSON object per record: topic, partition, offset, timestamp,
    /// key, headers, value.
    Json,
    /// The value's bytes, then a newline (nothing for a null value).
    Raw,
}

impl Printed {
    /// Writes the record in `format`, ending with a newline.
    pub fn write(&self, format: Format, out: &mut impl std::io::Write) -> std::io::Result<()> {
        match format {
            Format::Json => {
                let v = json!({
                    "topic": self.topic,
                    "partition": self.partition,
                    "offset": self.offset,
                    "timestamp": self.timestamp,
                    "key": json_bytes(self.key.as_deref()),
                    "headers": json_headers(&self.headers),
                    "value": json_bytes(self.value.as_deref()),
                });
                writeln!(out, "{v}")
            }
            Format::Text => {
                writeln!(
                    out,
                    "{}-{}\t{}\t{}\t{}\t{}\t{}",
                    self.topic,
                    self.partition,
                    self.offset,
                    self.timestamp,
                    text_bytes(self.key.as_deref()),
                    text_headers(&self.headers),
                    text_bytes(self.value.as_deref())
                )
            }
            Format::Raw => {
                if let Some(v) = &self.value {
                    out.write_all(v)?;
                }
                out.write_all(b"\n")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_json() {
        for b in [
            None,
            Some(&b"plain"[..]),
            Some(&[0xff, 0, 1][..]),
            Some(&b""[..]),
        ] {
            let v = json_bytes(b);
            assert_eq!(bytes_from_json(&v, "x").unwrap().as_deref(), b);
        }
        assert_eq!(json_bytes(Some(&[0xff])), json!({"base64": "/w=="}));
    }

    #[test]
    fn repeated_header_names_keep_every_value() {
        let h = vec![
            ("a".to_string(), Some(b"1".to_vec())),
            ("a".to_string(), None),
        ];
        let v = json_headers(&h);
        assert!(v.is_array());
        assert_eq!(headers_from_json(&v).unwrap(), h);
        let one = vec![("a".to_string(), Some(vec![0xfe]))];
        assert_eq!(headers_from_json(&json_headers(&one)).unwrap(), one);
    }

    #[test]
    fn times_in_ms_or_rfc3339() {
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z").unwrap(), 1500);
        assert_eq!(parse_time("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn text_escapes_what_would_break_a_line() {
        assert_eq!(text_bytes(Some(b"a\tb\n")), "a\\tb\\n");
        assert_eq!(text_bytes(None), "null");
        assert_eq!(text_bytes(Some(&[0xff])), "base64:/w==");
    }
}
