//! Kafka request frames from the network, decoded by the server's own
//! decoders: any bytes decode or are refused with a typed error, without a
//! panic and without an allocation sized by a length read off the wire
//! (libFuzzer's `-malloc_limit_mb`, 2 GiB by default here as `-rss_limit_mb`,
//! catches one). A decoded request is walked in full, so that every
//! borrowed field is read.

#![no_main]

use libfuzzer_sys::fuzz_target;
use streamlog_server::wire::{self, FrameError, Request};

fuzz_target!(|data: &[u8]| {
    match wire::decode(data) {
        Ok((header, req)) => {
            assert!(wire::find_api(header.api_key).is_some());
            // Every field borrows from the frame: their bytes fit in it.
            let bytes = format!("{req:?}").len();
            assert!(bytes < 64 + data.len() * 64, "{bytes} for a {}-byte frame", data.len());
            if let Request::Produce(p) = req {
                let total: usize = p
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .map(|(_, r)| r.map_or(0, <[u8]>::len))
                    .sum();
                assert!(total <= data.len());
            }
        }
        Err(FrameError::TooShort) => assert!(data.len() < 8),
        Err(_) => {}
    }
});
