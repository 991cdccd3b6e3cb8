//! The bridge's error type.

/// What can go wrong moving records between a Log and a Kafka cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Log side failed.
    #[error(transparent)]
    Log(#[from] streamlog::Error),
    /// The Kafka cluster or the client failed; `doing` says at what.
    #[error("Kafka: could not {doing}: {source}")]
    Kafka {
        /// What the bridge was doing.
        doing: String,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Topics that exist on the side copied to differ from their source;
    /// nothing was copied.
    #[error("the target does not match the source: {}", problems.join("; "))]
    TargetMismatch {
        /// One line per difference.
        problems: Vec<String>,
    },
    /// A target partition holds records the mirror did not write, so
    /// copying into it would mix them with the source's.
    #[error("{what}")]
    TargetNotEmpty {
        /// Which partition, and what it holds.
        what: String,
    },
    /// A source record the target cannot hold; the mirror stopped before it.
    #[error("{what}")]
    Unmirrorable {
        /// Which record, and why.
        what: String,
    },
    /// A newer mirror with the same id took over (Kafka fenced this one);
    /// this one copied nothing more.
    #[error("fenced: another mirror with transactional id {id} took over")]
    Fenced {
        /// The transactional id.
        id: String,
    },
    /// Something did not finish in time.
    #[error("timed out {what}")]
    Timeout {
        /// What was waited for.
        what: String,
    },
    /// Bad options.
    #[error("{what}")]
    Invalid {
        /// What is wrong.
        what: String,
    },
}

impl Error {
    /// Whether trying again later may succeed: the cluster was briefly
    /// unreachable or a leader was moving (a broker restarting, say).
    pub fn is_transient(&self) -> bool {
        use rdkafka::error::KafkaError as K;
        match self {
            Error::Timeout { .. } => true,
            Error::Kafka { source, .. } => match source {
                K::MetadataFetch(_) | K::OffsetFetch(_) | K::GroupListFetch(_) => true,
                K::AdminOp(c) => crate::kafka::transient(&K::MessageConsumption(*c)),
                K::Transaction(t) => !t.is_fatal() && t.is_retriable(),
                e => crate::kafka::transient(e),
            },
            _ => false,
        }
    }

    pub(crate) fn kafka(doing: &str, source: rdkafka::error::KafkaError) -> Error {
        Error::Kafka {
            doing: doing.to_owned(),
            source,
        }
    }
}

/// The bridge's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
