//! Metadata files (the topic registry, the partition checkpoint and the
//! session marker): UTF-8 text, one item per line, framed by a header line naming the kind and
//! version and a trailer line holding the CRC32 of everything before it.
//!
//! ```text
//! streamlog-<kind> 1
//! <line>
//! ...
//! crc32 <8 lowercase hex digits>
//! ```

/// The metadata file version this build writes and reads.
pub(crate) const META_VERSION: u32 = 1;

/// Why a metadata file was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MetaError {
    Corrupt(String),
    UnsupportedVersion(u32),
}

/// Encodes the lines of a metadata file of kind `kind`.
pub(crate) fn encode(kind: &str, lines: &[String]) -> Vec<u8> {
    let mut out = format!("streamlog-{kind} {META_VERSION}\n");
    for l in lines {
        debug_assert!(!l.contains('\n'));
        out.push_str(l);
        out.push('\n');
    }
    let crc = crc32fast::hash(out.as_bytes());
    out.push_str(&format!("crc32 {crc:08x}\n"));
    out.into_bytes()
}

/// Decodes a metadata file of kind `kind`, checking header and CRC.
pub(crate) fn decode(kind: &str, bytes: &[u8]) -> Result<Vec<String>, MetaError> {
    let text = std::str::from_utf8(bytes).map_err(|_| MetaError::Corrupt("not UTF-8".into()))?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or_else(|| MetaError::Corrupt("missing trailer line".into()))?;
    let (body, trailer) = text.split_at(body_end);
    let mut lines = body.lines();
    let header = lines.next().unwrap_or_default();
    let expected = format!("streamlog-{kind} ");
    let Some(version) = header.strip_prefix(&expected) else {
        return Err(MetaError::Corrupt(format!(
            "header {header:?} is not {expected:?}<version>"
        )));
    };
    let version: u32 = version
        .parse()
        .map_err(|_| MetaError::Corrupt(format!("bad version in header {header:?}")))?;
    let stored = trailer
        .trim_end_matches('\n')
        .strip_prefix("crc32 ")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or_else(|| MetaError::Corrupt(format!("bad trailer {trailer:?}")))?;
    let computed = crc32fast::hash(body.as_bytes());
    if stored != computed {
        return Err(MetaError::Corrupt(format!(
            "CRC mismatch: stored {stored:08x}, computed {computed:08x}"
        )));
    }
    if version != META_VERSION {
        return Err(MetaError::UnsupportedVersion(version));
    }
    Ok(lines.map(str::to_owned).collect())
}

/// The one line of the session marker: `boot <boot id>`.
const SESSION_KIND: &str = "session";

/// Encodes the session marker naming the boot the log was opened on, or
/// `None` for an id that cannot be one line.
pub(crate) fn encode_session(boot_id: &str) -> Option<Vec<u8>> {
    let ok = !boot_id.is_empty() && !boot_id.contains(['\n', '\r']);
    ok.then(|| encode(SESSION_KIND, &[format!("boot {boot_id}")]))
}

/// The boot id a session marker names; `None` if the file is damaged, torn
/// or of another version, which recovery treats as "another boot".
pub(crate) fn decode_session(bytes: &[u8]) -> Option<String> {
    let lines = decode(SESSION_KIND, bytes).ok()?;
    match &lines[..] {
        [line] => line.strip_prefix("boot ").map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_bytes_and_round_trips() {
        let bytes = encode("topics", &["topic a partitions=1".into()]);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let crc = crc32fast::hash(b"streamlog-topics 1\ntopic a partitions=1\n");
        assert_eq!(
            text,
            format!("streamlog-topics 1\ntopic a partitions=1\ncrc32 {crc:08x}\n")
        );
        assert_eq!(
            decode("topics", &bytes).unwrap(),
            vec!["topic a partitions=1"]
        );
        assert_eq!(
            decode("topics", &encode("topics", &[])).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn rejects_damage_wrong_kind_and_new_versions() {
        let mut bytes = encode("topics", &["x".into()]);
        assert!(decode("checkpoint", &bytes).is_err());
        bytes[20] ^= 1;
        assert!(matches!(
            decode("topics", &bytes),
            Err(MetaError::Corrupt(_))
        ));
        assert!(decode("topics", b"").is_err());
        assert!(decode("topics", &[0u8; 64]).is_err());
        let body = "streamlog-topics 2\n";
        let v2 = format!("{body}crc32 {:08x}\n", crc32fast::hash(body.as_bytes()));
        assert_eq!(
            decode("topics", v2.as_bytes()),
            Err(MetaError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn pins_session_marker_bytes() {
        let bytes = encode_session("8cc40b0a-ea27-479a-9789-dcde13d97510").unwrap();
        let body = "streamlog-session 1\nboot 8cc40b0a-ea27-479a-9789-dcde13d97510\n";
        let crc = crc32fast::hash(body.as_bytes());
        assert_eq!(crc, 0x5740_22fa, "FORMAT.md §9.1 quotes this CRC");
        assert_eq!(bytes, format!("{body}crc32 {crc:08x}\n").into_bytes());
        assert_eq!(
            decode_session(&bytes).as_deref(),
            Some("8cc40b0a-ea27-479a-9789-dcde13d97510")
        );
        // A torn marker (any prefix short of the trailer's final newline)
        // or a damaged one names no boot.
        for n in 0..bytes.len() - 1 {
            assert_eq!(decode_session(&bytes[..n]), None, "prefix of {n} bytes");
        }
        let mut bad = bytes.clone();
        bad[30] ^= 1;
        assert_eq!(decode_session(&bad), None);
        assert_eq!(decode_session(&encode("session", &[])), None);
        assert_eq!(encode_session(""), None);
        assert_eq!(encode_session("a\nb"), None);
    }
}
