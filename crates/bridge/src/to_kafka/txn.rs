//! The mirror's Kafka transactions: delivery reports, and what a failed
//! call means for the loop.

use std::sync::Mutex;

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::ProducerContext;

use crate::error::Error;

/// Delivery reports of one transaction's records, by index.
#[derive(Default)]
pub(super) struct Deliveries {
    pub(super) results: Mutex<Vec<Option<Result<i64, KafkaError>>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let r = match result {
            Ok(m) => Ok(m.offset()),
            Err((e, _)) => Err(e.clone()),
        };
        if let Some(slot) = self
            .results
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(index)
        {
            *slot = Some(r);
        }
    }
}

/// How a failed transaction goes on.
pub(super) enum Retry {
    /// Aborted; read the same records again and retry.
    Later(Error),
    /// The mirror cannot go on.
    Never(Error),
}

impl From<Error> for Retry {
    fn from(e: Error) -> Retry {
        Retry::Never(e)
    }
}

impl std::fmt::Display for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retry::Later(e) | Retry::Never(e) => e.fmt(f),
        }
    }
}

/// A transactional call's error: fenced, fatal, or abortable.
pub(super) fn classify(id: &str, what: &str, e: KafkaError) -> Retry {
    match txn_error(id, what, e) {
        e @ Error::Fenced { .. } => Retry::Never(e),
        Error::Kafka { doing, source } => {
            let fatal = matches!(&source, KafkaError::Transaction(t) if t.is_fatal());
            let e = Error::Kafka { doing, source };
            if fatal {
                Retry::Never(e)
            } else {
                Retry::Later(e)
            }
        }
        e => Retry::Never(e),
    }
}

/// [`Error::Fenced`] for a fenced producer, else [`Error::Kafka`].
pub(super) fn txn_error(id: &str, what: &str, e: KafkaError) -> Error {
    let code = e.rdkafka_error_code();
    if matches!(
        code,
        Some(RDKafkaErrorCode::ProducerFenced)
            | Some(RDKafkaErrorCode::InvalidProducerEpoch)
            | Some(RDKafkaErrorCode::Fenced)
            | Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed)
    ) {
        return Error::Fenced { id: id.to_owned() };
    }
    Error::kafka(what, e)
}
