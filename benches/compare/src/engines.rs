//! The engines behind one small interface: append a batch, append one record
//! (which must reach the kernel before returning), read everything back.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;
#[allow(unused_imports)]
use redb::ReadableDatabase;

use streamlog::{
    Compression, ConsumerConfig, Log, LogOptions, OffsetReset, Producer, Record, SyncPolicy,
    TopicConfig, TopicPartition,
};

pub const ENGINES: [&str; 6] = ["raw", "streamlog", "commitlog", "redb-none", "redb-default", "fjall"];

/// Durability asked of each append.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// OS-buffered: no fsync.
    Buffered,
    /// fdatasync (or the engine's equivalent) before an append returns.
    Durable,
}

pub trait Store: Send {
    /// Appends one batch of records.
    fn append_batch(&mut self, vals: &[&[u8]]);
    /// Appends one record; it is in the kernel (or the mapped file) on return.
    fn append_one(&mut self, v: &[u8]);
    /// Writes out any user-space buffer.
    fn finish(&mut self) {}
    /// Reads every record from the start, verifying checksums where the
    /// engine has them. Returns (records, payload bytes).
    fn read_all(&mut self) -> (u64, u64);
    /// [`read_all`](Self::read_all) with the settings a user gets by
    /// default, where the engine has any (streamlog: `ConsumerConfig::new()`,
    /// 500 records a poll).
    fn read_all_defaults(&mut self) -> (u64, u64) {
        self.read_all()
    }
}

pub fn open_store(engine: &str, dir: &Path, mode: Mode, partitions: u32) -> Box<dyn Store> {
    std::fs::create_dir_all(dir).unwrap();
    match engine {
        "raw" => Box::new(Raw::open(dir, mode)),
        "streamlog" => Box::new(Sl::open(dir, mode, Compression::None, partitions)),
        "commitlog" => Box::new(Cl::open(dir, mode)),
        "redb-none" => Box::new(Rdb::open(dir, redb::Durability::None)),
        "redb-default" => Box::new(Rdb::open(dir, redb::Durability::Immediate)),
        "fjall" => Box::new(Fj::open(dir, mode)),
        _ => panic!("unknown engine {engine}"),
    }
}

// ---------------------------------------------------------------- raw

pub const RAW_BUF: usize = 1 << 20;

pub struct Raw {
    f: File,
    path: PathBuf,
    buf: Vec<u8>,
    durable: bool,
}

impl Raw {
    pub fn open(dir: &Path, mode: Mode) -> Raw {
        let path = dir.join("raw.log");
        let f = OpenOptions::new().create(true).append(true).open(&path).unwrap();
        Raw { f, path, buf: Vec::with_capacity(RAW_BUF + 4096), durable: mode == Mode::Durable }
    }
    fn put(buf: &mut Vec<u8>, v: &[u8]) {
        buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(v).to_le_bytes());
        buf.extend_from_slice(v);
    }
    fn sync(&self) {
        if self.durable {
            let rc = unsafe { libc::fdatasync(self.f.as_raw_fd()) };
            assert_eq!(rc, 0);
        }
    }
}

impl Store for Raw {
    fn append_batch(&mut self, vals: &[&[u8]]) {
        for v in vals {
            Self::put(&mut self.buf, v);
            if self.buf.len() >= RAW_BUF {
                self.f.write_all(&self.buf).unwrap();
                self.buf.clear();
            }
        }
        if self.durable {
            self.f.write_all(&self.buf).unwrap();
            self.buf.clear();
            self.sync();
        }
    }
    fn append_one(&mut self, v: &[u8]) {
        // One write() per record: the record is in the kernel on return.
        self.buf.clear();
        Self::put(&mut self.buf, v);
        self.f.write_all(&self.buf).unwrap();
        self.buf.clear();
        self.sync();
    }
    fn finish(&mut self) {
        if !self.buf.is_empty() {
            self.f.write_all(&self.buf).unwrap();
            self.buf.clear();
        }
    }
    fn read_all(&mut self) -> (u64, u64) {
        self.finish();
        raw_read(&self.path)
    }
}

/// A 4 KiB-aligned heap buffer.
pub struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
}
unsafe impl Send for AlignedBuf {}
impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(len, 4096).unwrap();
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        AlignedBuf { ptr, len }
    }
    pub fn as_mut(&mut self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}
impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, 4096).unwrap();
        unsafe { std::alloc::dealloc(self.ptr, layout) }
    }
}

/// Reads a raw log through the page cache into an aligned buffer, checking
/// every record's CRC.
pub fn raw_read(path: &Path) -> (u64, u64) {
    let mut f = File::open(path).unwrap();
    let mut ab = AlignedBuf::new(RAW_BUF * 2);
    let buf = ab.as_mut();
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut have = 0usize;
    loop {
        let got = f.read(&mut buf[have..have + RAW_BUF]).unwrap();
        if got == 0 {
            break;
        }
        have += got;
        let mut pos = 0;
        while pos + 8 <= have {
            let len = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
            if pos + 8 + len > have {
                break;
            }
            let crc = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().unwrap());
            let v = &buf[pos + 8..pos + 8 + len];
            assert_eq!(crc32fast::hash(v), crc, "raw: bad crc");
            n += 1;
            bytes += len as u64;
            pos += 8 + len;
        }
        buf.copy_within(pos..have, 0);
        have -= pos;
    }
    assert_eq!(have, 0, "raw: torn tail");
    (n, bytes)
}

// ---------------------------------------------------------------- streamlog

pub struct Sl {
    pub log: Log,
    prod: Producer,
    partitions: u32,
    next_p: u32,
}

impl Sl {
    pub fn open(dir: &Path, mode: Mode, compression: Compression, partitions: u32) -> Sl {
        let policy = match mode {
            Mode::Buffered => SyncPolicy::OsBuffered,
            Mode::Durable => SyncPolicy::EveryWrite,
        };
        let log = LogOptions::new().sync(policy).open(dir).unwrap();
        if !log.topics().iter().any(|t| t == "t") {
            log.create_topic("t", TopicConfig::new().partitions(partitions).compression(compression))
                .unwrap();
        }
        let prod = log.producer();
        Sl { log, prod, partitions, next_p: 0 }
    }
    pub fn producer(&self) -> Producer {
        self.prod.clone()
    }
}

pub fn sl_read_config() -> ConsumerConfig {
    ConsumerConfig::new()
        .auto_offset_reset(OffsetReset::Earliest)
        .enable_auto_commit(false)
        .max_poll_records(100_000)
        .max_poll_bytes(16 << 20)
        .max_partition_fetch_bytes(16 << 20)
}

impl Store for Sl {
    fn append_batch(&mut self, vals: &[&[u8]]) {
        let recs: Vec<Record<'_>> = vals.iter().map(|v| Record::new(*v)).collect();
        if self.partitions == 1 {
            self.prod.send_batch("t", recs).unwrap();
        } else {
            // One batch per call goes to one partition; spread the calls.
            self.prod.send_batch("t", recs).unwrap();
        }
    }
    fn append_one(&mut self, v: &[u8]) {
        let p = self.next_p;
        self.next_p = (self.next_p + 1) % self.partitions;
        self.prod.send_to("t", p, Record::new(v)).unwrap();
    }
    fn read_all(&mut self) -> (u64, u64) {
        self.read_with(sl_read_config())
    }
    fn read_all_defaults(&mut self) -> (u64, u64) {
        self.read_with(
            ConsumerConfig::new().auto_offset_reset(OffsetReset::Earliest).enable_auto_commit(false),
        )
    }
}

impl Sl {
    fn read_with(&mut self, config: ConsumerConfig) -> (u64, u64) {
        let mut c = self.log.consumer(config);
        let tps: Vec<TopicPartition> =
            (0..self.partitions).map(|p| TopicPartition::new("t", p)).collect();
        c.assign(&tps).unwrap();
        let mut expect = 0;
        for tp in &tps {
            expect += self.log.partition_info(tp).unwrap().end_offset;
        }
        let (mut n, mut bytes) = (0u64, 0u64);
        while n < expect {
            let recs = c.poll(Duration::from_millis(100)).unwrap();
            for r in &recs {
                n += 1;
                bytes += r.value().map_or(0, |v| v.len()) as u64;
            }
        }
        (n, bytes)
    }
}

// ---------------------------------------------------------------- commitlog

pub struct Cl {
    log: commitlog::CommitLog,
    buf: commitlog::message::MessageBuf,
    durable: bool,
}

impl Cl {
    pub fn open(dir: &Path, mode: Mode) -> Cl {
        let mut opts = commitlog::LogOptions::new(dir);
        opts.segment_max_bytes(1 << 30);
        opts.index_max_items(2_000_000);
        opts.message_max_bytes(8 << 20);
        let log = commitlog::CommitLog::new(opts).unwrap();
        Cl { log, buf: Default::default(), durable: mode == Mode::Durable }
    }
    pub fn first(&self) -> usize {
        use commitlog::message::MessageSet;
        let mb = self.log.read(0, commitlog::ReadLimit::max_bytes(1 << 20)).unwrap();
        mb.iter().next().map_or(0, |m| m.payload().len())
    }
}

impl Store for Cl {
    fn append_batch(&mut self, vals: &[&[u8]]) {
        self.buf.clear();
        for v in vals {
            self.buf.push(v).unwrap();
        }
        self.log.append(&mut self.buf).unwrap();
        if self.durable {
            self.log.flush().unwrap();
        }
    }
    fn append_one(&mut self, v: &[u8]) {
        self.log.append_msg(v).unwrap();
        if self.durable {
            self.log.flush().unwrap();
        }
    }
    fn read_all(&mut self) -> (u64, u64) {
        use commitlog::message::MessageSet;
        let (mut n, mut bytes) = (0u64, 0u64);
        let mut off = 0;
        loop {
            let mb = self.log.read(off, commitlog::ReadLimit::max_bytes(1 << 20)).unwrap();
            if mb.len() == 0 {
                break;
            }
            for m in mb.iter() {
                assert!(m.verify_hash(), "commitlog: bad hash");
                n += 1;
                bytes += m.payload().len() as u64;
                off = m.offset() + 1;
            }
        }
        (n, bytes)
    }
}

// ---------------------------------------------------------------- redb

pub const RT: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");

pub struct Rdb {
    pub db: redb::Database,
    dur: redb::Durability,
    next: u64,
}

impl Rdb {
    pub fn open(dir: &Path, dur: redb::Durability) -> Rdb {
        let db = redb::Database::create(dir.join("redb.db")).unwrap();
        let next = {
            let tx = db.begin_read().unwrap();
            match tx.open_table(RT) {
                Ok(t) => {
                    use redb::ReadableTable;
                    t.last().unwrap().map_or(0, |(k, _)| k.value() + 1)
                }
                Err(_) => 0,
            }
        };
        Rdb { db, dur, next }
    }
    pub fn first(&self) -> usize {
        use redb::ReadableTable;
        let tx = self.db.begin_read().unwrap();
        let t = tx.open_table(RT).unwrap();
        t.first().unwrap().map_or(0, |(_, v)| v.value().len())
    }
}

impl Store for Rdb {
    fn append_batch(&mut self, vals: &[&[u8]]) {
        let mut tx = self.db.begin_write().unwrap();
        tx.set_durability(self.dur).unwrap();
        {
            let mut t = tx.open_table(RT).unwrap();
            for v in vals {
                t.insert(self.next, *v).unwrap();
                self.next += 1;
            }
        }
        tx.commit().unwrap();
    }
    fn append_one(&mut self, v: &[u8]) {
        self.append_batch(&[v]);
    }
    fn read_all(&mut self) -> (u64, u64) {
        let tx = self.db.begin_read().unwrap();
        let t = tx.open_table(RT).unwrap();
        let (mut n, mut bytes) = (0u64, 0u64);
        for item in t.range(0u64..).unwrap() {
            let (_k, v) = item.unwrap();
            n += 1;
            bytes += v.value().len() as u64;
        }
        (n, bytes)
    }
}

// ---------------------------------------------------------------- fjall

pub struct Fj {
    pub db: fjall::Database,
    pub ks: fjall::Keyspace,
    next: u64,
    durable: bool,
}

impl Fj {
    pub fn open(dir: &Path, mode: Mode) -> Fj {
        let db = fjall::Database::builder(dir.join("fjall")).open().unwrap();
        let ks = db.keyspace("t", fjall::KeyspaceCreateOptions::default).unwrap();
        let next = ks
            .last_key_value()
            .map_or(0, |g| u64::from_be_bytes(g.key().unwrap()[..8].try_into().unwrap()) + 1);
        Fj { db, ks, next, durable: mode == Mode::Durable }
    }
    pub fn first(&self) -> usize {
        self.ks.first_key_value().map_or(0, |g| g.value().unwrap().len())
    }
}

impl Store for Fj {
    fn append_batch(&mut self, vals: &[&[u8]]) {
        let mut b = self.db.batch();
        for v in vals {
            b.insert(&self.ks, &self.next.to_be_bytes()[..], *v);
            self.next += 1;
        }
        b.commit().unwrap();
        if self.durable {
            self.db.persist(fjall::PersistMode::SyncData).unwrap();
        }
    }
    fn append_one(&mut self, v: &[u8]) {
        self.ks.insert(&self.next.to_be_bytes()[..], v).unwrap();
        self.next += 1;
        if self.durable {
            self.db.persist(fjall::PersistMode::SyncData).unwrap();
        }
    }
    fn read_all(&mut self) -> (u64, u64) {
        let (mut n, mut bytes) = (0u64, 0u64);
        for g in self.ks.iter() {
            let (_k, v) = g.into_inner().unwrap();
            n += 1;
            bytes += v.len() as u64;
        }
        (n, bytes)
    }
}
