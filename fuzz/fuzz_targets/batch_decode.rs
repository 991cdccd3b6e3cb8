//! `internals::decode` on arbitrary bytes, of either layout (Kafka's v2,
//! streamlog's v1), must never panic; a batch it accepts must re-encode to
//! the same bytes (uncompressed) or to a batch that decodes to the same
//! records (zstd).
#![no_main]

use libfuzzer_sys::fuzz_target;
use streamlog::internals::{decode, encode, DecodedBatch};

const CODEC_MASK: u16 = 0b111;
const CODEC_NONE: u16 = 0;
const CODEC_ZSTD: u16 = 4;
/// v1: bytes 48..64 as its encoder writes them: producer id -1, producer
/// epoch -1, reserved 0, base sequence -1.
const CANONICAL_PRODUCER: [u8; 16] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff,
];

fn check(data: &[u8]) {
    let Ok(b) = decode(data) else {
        return; // a typed error is fine
    };
    assert!(b.total_len <= data.len(), "total_len beyond the input");
    assert_eq!(
        b.records.len() as u64 <= u64::from(b.last_offset_delta) + 1,
        true
    );
    match b.attributes & CODEC_MASK {
        CODEC_NONE => {
            let again = encode(&b);
            if b.version == 1 {
                assert_eq!(
                    data[48..64],
                    CANONICAL_PRODUCER,
                    "v1 accepts only -1 in the producer fields"
                );
            }
            assert!(
                again == data[..b.total_len],
                "uncompressed batch does not re-encode to its own bytes\n\
                 decoded:    {b:?}\ninput:      {:02x?}\nre-encoded: {again:02x?}",
                &data[..b.total_len]
            );
        }
        CODEC_ZSTD => {
            let again = encode(&b);
            let b2 = match decode(&again) {
                Ok(b2) => b2,
                Err(e) => panic!("re-encoded zstd batch does not decode: {e:?}\n{b:?}"),
            };
            assert_eq!(
                same_content(&b),
                same_content(&b2),
                "zstd round trip changed the batch"
            );
        }
        c => panic!("decode accepted unknown codec {c}"),
    }
}

/// Everything except the CRC and the size (zstd output may differ).
fn same_content(b: &DecodedBatch) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        b.version,
        b.base_offset,
        b.leader_epoch,
        b.producer,
        b.last_offset_delta,
        b.attributes,
        b.base_timestamp,
        b.max_timestamp,
        &b.records,
    )
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = streamlog_fuzz::fix_crcs(data) {
        check(&fixed);
    }
});
