//! The Rust `rdkafka` crate (librdkafka) against a `Server` in this
//! process: produce, fetch, groups, idempotence, and one log through two
//! doors (records and committed offsets seen from both sides, and a group
//! refused to the second kind of member).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::TopicPartitionList;
use streamlog::{ConsumerConfig, Error, Log, OffsetReset, Record, TopicConfig, TopicPartition};
use streamlog_server::{Server, ServerConfig};

fn serve(partitions: u32) -> (Log, Server, String) {
    let log = Log::temporary().unwrap();
    let server = Server::start(
        log.clone(),
        "127.0.0.1:0",
        ServerConfig::new().default_partitions(partitions),
    )
    .unwrap();
    let addr = server.local_addr().to_string();
    (log, server, addr)
}

fn producer(addr: &str, idempotent: bool) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("enable.idempotence", idempotent.to_string())
        .set("linger.ms", "2")
        .create()
        .unwrap()
}

fn consumer(addr: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("group.protocol", "classic")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap()
}

/// Polls until `n` records arrived (or 30 s passed).
fn collect(c: &BaseConsumer, n: usize) -> Vec<(i32, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < n && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            out.push((
                m.partition(),
                m.offset(),
                m.payload().unwrap_or(&[]).to_vec(),
            ));
        }
    }
    out
}

#[test]
fn an_idempotent_rdkafka_producer_is_read_in_process() {
    let (log, _server, addr) = serve(1);
    let p = producer(&addr, true);
    for i in 0..500 {
        let v = format!("v{i}");
        let h = OwnedHeaders::new().insert(Header {
            key: "n",
            value: Some(&format!("{i}")),
        });
        p.send(BaseRecord::to("remote").key("k").payload(&v).headers(h))
            .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let mut c = log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
    c.assign(&[TopicPartition::new("remote", 0)]).unwrap();
    let mut got = Vec::new();
    while got.len() < 500 {
        let recs = c.poll(Duration::from_secs(5)).unwrap();
        assert!(!recs.is_empty(), "only {} records arrived", got.len());
        for r in recs.iter() {
            assert_eq!(r.key(), Some(&b"k"[..]));
            assert_eq!(r.header("n"), Some(r.value().unwrap()[1..].as_ref()));
            got.push((r.offset(), r.value().unwrap().to_vec()));
        }
    }
    let want: Vec<_> = (0..500u64)
        .map(|i| (i, format!("v{i}").into_bytes()))
        .collect();
    assert_eq!(got, want, "every record once, in order");
}

#[test]
fn rdkafka_reads_what_an_in_process_producer_wrote() {
    let (log, _server, addr) = serve(1);
    log.create_topic("local", TopicConfig::new().partitions(2))
        .unwrap();
    let p = log.producer();
    for i in 0..100u32 {
        p.send_to("local", i % 2, Record::new(format!("{i}").as_bytes()))
            .unwrap();
    }
    let c = consumer(&addr, "readers");
    c.subscribe(&["local"]).unwrap();
    let got = collect(&c, 100);
    let mut values: Vec<u32> = got
        .iter()
        .map(|(_, _, v)| std::str::from_utf8(v).unwrap().parse().unwrap())
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..100).collect::<Vec<_>>());
    for (p, _, v) in &got {
        let n: i32 = std::str::from_utf8(v).unwrap().parse().unwrap();
        assert_eq!(*p, n % 2, "the partition chosen in-process is kept");
    }
}

#[test]
fn a_remote_group_commits_offsets_that_the_log_sees() {
    let (log, _server, addr) = serve(4);
    log.create_topic("g", TopicConfig::new().partitions(4))
        .unwrap();
    let (a, b) = (consumer(&addr, "grp"), consumer(&addr, "grp"));
    a.subscribe(&["g"]).unwrap();
    b.subscribe(&["g"]).unwrap();
    let owned = |c: &BaseConsumer| -> BTreeSet<i32> {
        c.assignment()
            .unwrap()
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect()
    };
    // Both members settle first, so that no rebalance refuses a commit.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (owned(&a).len() + owned(&b).len() != 4 || owned(&a).is_empty() || owned(&b).is_empty())
        && Instant::now() < deadline
    {
        for c in [&a, &b] {
            assert!(c.poll(Duration::from_millis(50)).is_none_or(|m| m.is_ok()));
        }
    }
    let p = producer(&addr, false);
    for i in 0..40 {
        p.send(
            BaseRecord::<(), _>::to("g")
                .partition(i % 4)
                .payload(&format!("{i}")),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(10)).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 40 && Instant::now() < deadline {
        for c in [&a, &b] {
            if let Some(m) = c.poll(Duration::from_millis(50)) {
                let m = m.unwrap();
                got.push(m.offset());
                c.commit_message(&m, CommitMode::Sync).unwrap();
            }
        }
    }
    assert_eq!(got.len(), 40);
    let (pa, pb) = (owned(&a), owned(&b));
    assert!(
        pa.is_disjoint(&pb) && pa.len() + pb.len() == 4,
        "{pa:?} {pb:?}"
    );
    // The commits are the log's: ten records per partition, committed past
    // the last one.
    let committed = log.committed_offsets("grp");
    assert_eq!(committed.len(), 4);
    assert!(
        committed.iter().all(|(_, o)| o.offset() == 10),
        "{committed:?}"
    );
    // An in-process consumer cannot join the group while remote members
    // hold it.
    let mut local = log.consumer(ConsumerConfig::new().group("grp"));
    assert!(matches!(
        local.subscribe(&["g"]),
        Err(Error::GroupInUse { .. })
    ));
    // rdkafka reads the committed offsets back.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("g", 0);
    let c = a.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    assert_eq!(
        c.elements()[0].offset(),
        rdkafka::Offset::Offset(10),
        "OffsetFetch"
    );
}

#[test]
fn a_group_held_in_process_refuses_remote_members() {
    let (log, _server, addr) = serve(1);
    log.create_topic("t", TopicConfig::new()).unwrap();
    let mut local = log.consumer(ConsumerConfig::new().group("shared"));
    local.subscribe(&["t"]).unwrap();
    local.poll(Duration::from_millis(10)).unwrap();
    let remote = consumer(&addr, "shared");
    remote.subscribe(&["t"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = false;
    while Instant::now() < deadline && !refused {
        if let Some(Err(e)) = remote.poll(Duration::from_millis(100)) {
            refused = e.to_string().contains("Inconsistent group protocol")
                || e.to_string().contains("INCONSISTENT_GROUP_PROTOCOL");
        }
        assert!(remote.assignment().unwrap().count() == 0);
    }
    assert!(refused, "the remote member was never told");
    // The in-process member still owns its partition and reads.
    assert_eq!(local.assignment(), [TopicPartition::new("t", 0)]);
}

/// Copies a directory tree (the committed fixture) to `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

type Row = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    i64,
    Vec<(String, Vec<u8>)>,
);

#[test]
fn a_log_in_the_older_layout_is_served_in_kafkas() {
    // The committed format-v1 fixture: plain, zstd-compressed and compacted
    // batches in streamlog's first layout, converted on the way out.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/v1");
    let dir = std::env::temp_dir().join(format!("streamlog-v1-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&fixture, &dir);
    let log = Log::open(&dir).unwrap();
    let server = Server::start(log.clone(), "127.0.0.1:0", ServerConfig::new()).unwrap();
    let addr = server.local_addr().to_string();
    for topic in log.topics().into_iter().filter(|t| !t.starts_with("__")) {
        let parts = log.topic_config(&topic).unwrap().partition_count();
        for p in 0..parts {
            let tp = TopicPartition::new(topic.as_str(), p);
            // In-process, the reference.
            let mut c =
                log.consumer(ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest));
            c.assign(std::slice::from_ref(&tp)).unwrap();
            let mut want: Vec<Row> = Vec::new();
            loop {
                let recs = c.poll(Duration::ZERO).unwrap();
                if recs.is_empty() {
                    break;
                }
                for r in recs.iter() {
                    let hs = r
                        .headers()
                        .map(|(k, v)| (k.to_owned(), v.to_vec()))
                        .collect();
                    want.push((
                        r.offset() as i64,
                        r.key().map(<[u8]>::to_vec),
                        r.value().map(<[u8]>::to_vec),
                        r.timestamp(),
                        hs,
                    ));
                }
            }
            // Through the server, with librdkafka.
            let remote: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &addr)
                .set("group.id", "v1-reader")
                .set("enable.auto.commit", "false")
                .set("check.crcs", "true")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&topic, p as i32, rdkafka::Offset::Beginning)
                .unwrap();
            remote.assign(&tpl).unwrap();
            let mut got: Vec<Row> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while got.len() < want.len() && Instant::now() < deadline {
                if let Some(m) = remote.poll(Duration::from_millis(100)) {
                    let m = m.unwrap();
                    let hs = m
                        .headers()
                        .map(|h| {
                            use rdkafka::message::Headers;
                            h.iter()
                                .map(|x| (x.key.to_owned(), x.value.unwrap_or(&[]).to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    got.push((
                        m.offset(),
                        m.key().map(<[u8]>::to_vec),
                        m.payload().map(<[u8]>::to_vec),
                        m.timestamp().to_millis().unwrap_or(-1),
                        hs,
                    ));
                }
            }
            assert!(!want.is_empty(), "{tp:?} has records");
            assert_eq!(got, want, "{tp:?}");
        }
    }
    server.shutdown();
    log.close().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
