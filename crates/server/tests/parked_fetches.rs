//! Hundreds of connections parked in long-poll fetches: no thread spins
//! while they wait (the process uses almost no CPU), an append wakes every
//! one of them at once, and memory stays bounded per connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use streamlog::{Log, Record, TopicConfig};
use streamlog_server::{Server, ServerConfig};

const CONNECTIONS: usize = 300;

fn fetch_frame(offset: i64, wait_ms: i32) -> Vec<u8> {
    let req = FetchRequest::default()
        .with_max_wait_ms(wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(11)
        .with_correlation_id(1)
        .encode(&mut b, 1)
        .unwrap();
    req.encode(&mut b, 11).unwrap();
    let mut out = (b.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&b);
    out
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: rusage is plain data, and getrusage fills the struct it is
    // given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
fn hundreds_of_parked_fetches_cost_no_cpu_and_wake_on_one_append() {
    let log = Log::temporary().unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    let server = Server::start(log.clone(), "127.0.0.1:0", ServerConfig::new()).unwrap();
    let rss_before = rss_bytes();
    let mut conns: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|_| {
            let mut s = TcpStream::connect(server.local_addr()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(&fetch_frame(0, 20_000)).unwrap();
            s
        })
        .collect();
    // Let every request reach its park.
    std::thread::sleep(Duration::from_millis(1000));
    let cpu0 = cpu_time();
    std::thread::sleep(Duration::from_secs(2));
    let parked_cpu = cpu_time() - cpu0;
    assert!(
        parked_cpu < Duration::from_millis(200),
        "{CONNECTIONS} parked fetches used {parked_cpu:?} of CPU in 2 s"
    );
    let grown = rss_bytes().saturating_sub(rss_before);
    assert!(
        grown < CONNECTIONS as u64 * (1 << 20),
        "{CONNECTIONS} parked connections grew the process by {grown} bytes"
    );
    let t0 = Instant::now();
    log.producer().send("t", Record::new(b"wake up")).unwrap();
    for s in &mut conns {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        assert!(
            body.windows(7).any(|w| w == b"wake up"),
            "a fetch answered without the record"
        );
    }
    let woke = t0.elapsed();
    // Far below the 20 s they would otherwise wait.
    assert!(woke < Duration::from_secs(10), "woke after {woke:?}");
    drop(conns);
    server.shutdown();
}
