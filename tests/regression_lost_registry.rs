//! Regression (reliability audit, bug 6): a deleted `topics.registry` opened as an empty log, and a later `create_topic` of the same name deleted the old data.
//!
//! Partition directories the registry does not know are reported at open
//! and never removed by `create_topic`; `Log::recover_topic` registers a
//! topic again from its directories.

mod common;

use common::{read_all, TestDir};
use streamlog::{Error, Log, Record, TopicConfig};

fn fill(dir: &std::path::Path) {
    let log = Log::open(dir).unwrap();
    log.create_topic(
        "orders",
        TopicConfig::new().partitions(2).segment_bytes(4096),
    )
    .unwrap();
    let p = log.producer();
    for i in 0..200u32 {
        p.send_to("orders", i % 2, Record::new(format!("v{i}").into_bytes()))
            .unwrap();
    }
    log.close().unwrap();
}

#[test]
fn unknown_partition_directories_are_reported_and_kept() {
    let dir = TestDir::new("lost-registry");
    fill(dir.path());
    std::fs::remove_file(dir.join("topics.registry")).unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert!(log.topics().is_empty());
    let mut unknown = log.recovery_report().unregistered_partitions.clone();
    unknown.sort();
    assert_eq!(unknown, vec![dir.join("orders-0"), dir.join("orders-1")]);
    // Creating the name again does not delete what is there.
    let err = log
        .create_topic("orders", TopicConfig::new().partitions(2))
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnregisteredData { path } if path.starts_with(dir.path())),
        "{err}"
    );
    assert!(log.topics().is_empty());
    // The documented way back: register the topic from its directories.
    assert_eq!(
        log.recover_topic("orders", TopicConfig::new().segment_bytes(4096))
            .unwrap(),
        2
    );
    assert_eq!(log.topic_config("orders").unwrap().partition_count(), 2);
    for p in 0..2u32 {
        let got = read_all(&log, "orders", p, 0);
        assert_eq!(got.len(), 100);
        let want: Vec<Vec<u8>> = (0..200u32)
            .filter(|i| i % 2 == p)
            .map(|i| format!("v{i}").into_bytes())
            .collect();
        assert_eq!(got.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), want);
    }
    // It stays registered, and appends go on after the recovered end.
    let md = log
        .producer()
        .send_to("orders", 0, Record::new(b"next"))
        .unwrap();
    assert_eq!(md.offset(), 100);
    log.close().unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.topics(), vec!["orders".to_owned()]);
    assert!(log.recovery_report().unregistered_partitions.is_empty());
}

#[test]
fn recover_topic_refuses_what_it_cannot_recover() {
    let dir = TestDir::new("recover-refusals");
    fill(dir.path());
    let log = Log::open(dir.path()).unwrap();
    assert!(matches!(
        log.recover_topic("orders", TopicConfig::new()),
        Err(Error::TopicExists { .. })
    ));
    assert!(matches!(
        log.recover_topic("nothing", TopicConfig::new()),
        Err(Error::UnknownTopic { .. })
    ));
    drop(log);
    // A gap in the partition numbers is refused, naming the missing one.
    std::fs::remove_file(dir.join("topics.registry")).unwrap();
    std::fs::rename(dir.join("orders-1"), dir.join("orders-2")).unwrap();
    let log = Log::open(dir.path()).unwrap();
    let err = log.recover_topic("orders", TopicConfig::new()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupted { path, .. } if path.ends_with("orders-1")),
        "{err}"
    );
}

#[test]
fn an_empty_directory_left_by_a_crashed_create_is_still_reused() {
    let dir = TestDir::new("crashed-create");
    {
        let log = Log::open(dir.path()).unwrap();
        log.close().unwrap();
    }
    // What a create that crashed before writing the registry leaves: an
    // empty first segment.
    std::fs::create_dir_all(dir.join("t-0")).unwrap();
    std::fs::write(dir.join("t-0/00000000000000000000.log"), b"").unwrap();
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", TopicConfig::new()).unwrap();
    assert_eq!(
        log.producer()
            .send("t", Record::new(b"x"))
            .unwrap()
            .offset(),
        0
    );
}

#[test]
fn an_empty_path_is_refused_without_touching_the_current_directory() {
    let before: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let err = Log::open("").unwrap_err();
    assert!(matches!(&err, Error::Io { .. }), "{err}");
    let after: Vec<_> = std::fs::read_dir(".")
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
}
