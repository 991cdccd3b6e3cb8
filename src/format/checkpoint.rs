//! The partition checkpoint (FORMAT.md §6): one line per partition inside a
//! metadata file of kind `checkpoint` (see [`meta`](super::meta)).
//!
//! ```text
//! <topic> <partition> <recovery point> <log start> <cleaner point>
//! ```

use std::collections::HashMap;

/// What the partition checkpoint file records for one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// Everything below is on stable storage; recovery scans from here.
    pub recovery_point: u64,
    /// The earliest offset that retention keeps.
    pub log_start: u64,
    /// Compaction has cleaned everything below this offset.
    pub cleaner_point: u64,
}

/// Every partition's checkpoint, by (topic, partition).
pub(crate) type Checkpoints = HashMap<(String, u32), Checkpoint>;

/// Encodes one partition's line.
pub(crate) fn encode_line(topic: &str, partition: u32, cp: &Checkpoint) -> String {
    format!(
        "{topic} {partition} {} {} {}",
        cp.recovery_point, cp.log_start, cp.cleaner_point
    )
}

/// Decodes one line; the error says what is wrong with it.
pub(crate) fn decode_line(line: &str) -> Result<((String, u32), Checkpoint), String> {
    let f: Vec<&str> = line.split(' ').collect();
    let [topic, p, rp, start, cleaned] = f[..] else {
        return Err(format!("line {line:?} does not have 5 fields"));
    };
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("{s:?} is not a number"))
    };
    let p = u32::try_from(num(p)?).map_err(|_| "partition out of range".to_owned())?;
    let cp = Checkpoint {
        recovery_point: num(rp)?,
        log_start: num(start)?,
        cleaner_point: num(cleaned)?,
    };
    Ok(((topic.to_owned(), p), cp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_and_bad_lines_say_why() {
        let cp = Checkpoint {
            recovery_point: 42,
            log_start: 7,
            cleaner_point: 30,
        };
        let line = encode_line("orders", 3, &cp);
        assert_eq!(line, "orders 3 42 7 30");
        assert_eq!(decode_line(&line), Ok((("orders".to_owned(), 3), cp)));
        assert!(decode_line("orders 3 42 7")
            .unwrap_err()
            .contains("5 fields"));
        assert!(decode_line("orders 3 x 7 30")
            .unwrap_err()
            .contains("not a number"));
        assert!(decode_line("orders 4294967296 1 1 1")
            .unwrap_err()
            .contains("out of range"));
    }
}
