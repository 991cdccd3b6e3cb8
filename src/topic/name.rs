//! Topic-name rules (Kafka's) and the internal-topic prefix.

use crate::error::{Error, Result};

/// Topics whose names start with this are internal: hidden from
/// `topics()` and not creatable by users.
pub(crate) const INTERNAL_PREFIX: &str = "__";

/// Checks Kafka's topic-name rules: 1 to 249 characters from
/// `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("the name is empty");
    }
    if name.len() > 249 {
        return bad("the name is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return bad("\".\" and \"..\" are not allowed");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// A user-created topic must also not use the internal prefix.
pub(crate) fn validate_user_name(name: &str) -> Result<()> {
    validate_name(name)?;
    if name.starts_with(INTERNAL_PREFIX) {
        return Err(Error::InvalidTopicName {
            name: name.to_owned(),
            reason: "names starting with \"__\" are reserved for internal topics",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_name_rules() {
        for ok in ["a", "orders", "my-topic_1.v2", &"x".repeat(249)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a b",
            "ü",
            &"x".repeat(250),
            "a\0",
        ] {
            assert!(
                matches!(validate_name(bad), Err(Error::InvalidTopicName { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_user_name("__consumer_offsets").is_err());
    }
}
