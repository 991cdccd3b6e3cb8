//! The Kafka server against Apache Kafka on the same machine (`--only
//! server`): `streamlog serve` and Kafka 4.x (KRaft, one node that is
//! broker and controller, from the Maven Central jars that
//! `tests/interop/fetch_kafka.sh` fetches), each in its own process with
//! default durability (no fsync per write), driven by the same clients:
//! librdkafka through the `rdkafka` crate, and Kafka's own
//! `ProducerPerformance` and `ConsumerPerformance` (kafka-tools). Also the
//! loopback limit (a plain socket copying the same bytes) and the time
//! from a server's start to its first acknowledged produce.
//!
//! How Kafka is started: `kafka.tools.StorageTool format --standalone` on a
//! fresh directory (not timed), then `java -Xmx1g kafka.Kafka
//! server.properties` with listeners on loopback, `num.partitions=1`,
//! replication factors 1 and `group.initial.rebalance.delay.ms=0`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::{pct, Dirs, Report, Scale};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A server process, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_streamlog(bin: &Path, dir: &Path) -> (Proc, String) {
    let mut child = Command::new(bin)
        .args(["serve", dir.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("streamlog serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").expect("listening on").to_string();
    (Proc(child), addr)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn classpath() -> String {
    format!("{}/target/interop/kafka-libs/*", repo().display())
}

/// Formats a fresh KRaft directory for one node and returns the command
/// that starts it, and its bootstrap address.
fn kafka_command(dir: &Path) -> (Command, String) {
    std::fs::create_dir_all(dir).unwrap();
    let (port, cport) = (free_port(), free_port());
    let props = format!(
        "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.bootstrap.servers=127.0.0.1:{cport}\n\
         listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\nlog.dirs={}\n\
         num.partitions=1\noffsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\nshare.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\ngroup.initial.rebalance.delay.ms=0\n",
        dir.join("data").display()
    );
    let conf = dir.join("server.properties");
    std::fs::write(&conf, props).unwrap();
    let status = Command::new("java")
        .args(["-cp", &classpath(), "kafka.tools.StorageTool", "format", "-t", "c3RyZWFtbG9nLWJlbmNo", "-c"])
        .arg(&conf)
        .arg("--standalone")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "kafka storage format failed");
    let mut cmd = Command::new("java");
    cmd.args(["-Xmx1g", "-Xms1g", "-cp", &classpath(), "kafka.Kafka"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    (cmd, format!("127.0.0.1:{port}"))
}

fn producer(addr: &str, linger_ms: u32) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("acks", "1")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .create()
        .unwrap()
}

/// Produces one record and waits for its acknowledgement (retrying while
/// the server is not up yet); returns when it was acknowledged.
fn first_produce(addr: &str, deadline: Instant) -> Instant {
    let p = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("acks", "1")
        .set("linger.ms", "0")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "50")
        .set("message.timeout.ms", "60000")
        .create::<BaseProducer>()
        .unwrap();
    p.send(BaseRecord::<(), _>::to("first").payload("x")).unwrap();
    while Instant::now() < deadline {
        if p.flush(Duration::from_millis(5)).is_ok() {
            return Instant::now();
        }
    }
    panic!("no produce acknowledged");
}

/// Records/s produced by librdkafka: `n` records of `size` bytes, acks=1.
fn rd_produce(addr: &str, topic: &str, n: u64, size: usize) -> f64 {
    let p = producer(addr, 5);
    let value = vec![b'x'; size];
    let t0 = Instant::now();
    for _ in 0..n {
        loop {
            match p.send(BaseRecord::<(), _>::to(topic).payload(&value[..])) {
                Ok(()) => break,
                Err((_, _)) => {
                    p.poll(Duration::from_millis(1));
                }
            }
        }
    }
    p.flush(Duration::from_secs(120)).unwrap();
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Records/s consumed by librdkafka from the start of partition 0, from
/// the first record on; `backoff_ms`: its `fetch.queue.backoff.ms` (how
/// long it waits once its queue holds `queued.min.messages`; default 1000).
fn rd_consume(addr: &str, topic: &str, n: u64, backoff_ms: u32) -> f64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", backoff_ms.to_string())
        // librdkafka's default fetch sizes: with 10 MiB partition fetches its
        // queue passes `queued.min.messages` at once and it backs off for
        // `fetch.queue.backoff.ms` (1 s), against any server.
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    // Timed from the first record: the client's start (metadata, the
    // offset lookup) is not the server's throughput.
    let mut t0 = None;
    let mut got = 0;
    while got < n {
        if let Some(m) = c.poll(Duration::from_secs(10)) {
            m.unwrap();
            t0.get_or_insert_with(Instant::now);
            got += 1;
        } else {
            panic!("consume stalled at {got} of {n}");
        }
    }
    (n - 1) as f64 / t0.map_or(f64::MAX, |t| t.elapsed().as_secs_f64())
}

/// p50 and p99 (µs) from a librdkafka produce (linger 0) to a librdkafka
/// consumer's poll, one record every 2 ms.
fn rd_latency(addr: &str, topic: &str, samples: usize) -> (f64, f64) {
    let p = producer(addr, 0);
    // The topic exists and the consumer is positioned at its end first.
    p.send(BaseRecord::<(), _>::to(topic).payload("warm")).unwrap();
    p.flush(Duration::from_secs(30)).unwrap();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "latency")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::End).unwrap();
    c.assign(&tpl).unwrap();
    let base = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let addr2 = addr.to_string();
    let topic2 = topic.to_string();
    let sender = std::thread::spawn(move || {
        let p = producer(&addr2, 0);
        std::thread::sleep(Duration::from_millis(500));
        while !s2.load(Ordering::Relaxed) {
            let ns = base.elapsed().as_nanos() as u64;
            let _ = p.send(BaseRecord::<(), _>::to(&topic2).payload(&ns.to_be_bytes()[..]));
            p.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_millis(2));
        }
        p.flush(Duration::from_secs(10)).unwrap();
    });
    let mut lat = Vec::with_capacity(samples);
    let deadline = Instant::now() + Duration::from_secs(120);
    while lat.len() < samples && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            if let Some(v) = m.payload().filter(|v| v.len() == 8) {
                let sent = u64::from_be_bytes(v.try_into().unwrap());
                let now = base.elapsed().as_nanos() as u64;
                lat.push(now.saturating_sub(sent) as f64 / 1000.0);
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let (p50, p99, _) = pct(lat);
    (p50, p99)
}

/// Runs one of Kafka's perf tools; returns its records/s.
fn java_tool(class: &str, args: &[String], column: usize) -> f64 {
    let out = Command::new("java")
        .args(["-Xmx512m", "-cp", &classpath(), class])
        .args(args)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // ProducerPerformance: "N records sent, R records/sec (...)" last line;
    // ConsumerPerformance: a CSV line whose column `column` is nMsg.sec.
    for line in text.lines().rev() {
        if class.ends_with("ProducerPerformance") {
            if let Some(i) = line.find(" records/sec") {
                let head = &line[..i];
                if let Some(v) = head.rsplit(", ").next().and_then(|x| x.trim().parse().ok()) {
                    return v;
                }
            }
        } else if let Some(v) = line.split(',').nth(column).and_then(|x| x.trim().parse().ok()) {
            return v;
        }
    }
    panic!("{class} printed no rate: {text}");
}

fn java_produce(addr: &str, topic: &str, n: u64, size: usize) -> f64 {
    let args: Vec<String> = [
        "--topic", topic, "--num-records", &n.to_string(), "--record-size", &size.to_string(),
        "--throughput", "-1", "--producer-props", &format!("bootstrap.servers={addr}"), "acks=1",
        "linger.ms=5", "batch.size=262144", "buffer.memory=268435456",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    java_tool("org.apache.kafka.tools.ProducerPerformance", &args, 0)
}

fn java_consume(addr: &str, topic: &str, n: u64) -> f64 {
    let args: Vec<String> = ["--bootstrap-server", addr, "--topic", topic, "--messages", &n.to_string(), "--timeout", "60000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    java_tool("org.apache.kafka.tools.ConsumerPerformance", &args, 5)
}

/// Records/s a plain loopback socket carries when the same bytes (records
/// of `size`, in 64 KiB writes) go through it: the machine's limit.
fn loopback(n: u64, size: usize) -> f64 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let total = n * size as u64;
    let reader = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0u64;
        while got < total {
            let k = s.read(&mut buf).unwrap();
            assert!(k > 0);
            got += k as u64;
        }
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let chunk = vec![b'x'; 1 << 16];
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let k = (total - sent).min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..k]).unwrap();
        sent += k as u64;
    }
    reader.join().unwrap();
    n as f64 / t0.elapsed().as_secs_f64()
}

/// CPU seconds (user + system) the process `pid` has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit(") ").next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

/// A rate, and the server's CPU seconds per million records meanwhile.
#[derive(Clone, Copy)]
struct Rate {
    rps: f64,
    cpu_per_m: f64,
}

struct Side {
    rd_produce: Rate,
    rd_consume: Rate,
    rd_consume_10: Rate,
    java_produce: Rate,
    java_consume: Rate,
}

fn timed(pid: u32, n: u64, f: impl FnOnce() -> f64) -> Rate {
    let c0 = cpu_seconds(pid);
    let rps = f();
    Rate { rps, cpu_per_m: (cpu_seconds(pid) - c0) / n as f64 * 1e6 }
}

fn measure(pid: u32, addr: &str, tag: &str, n: u64, size: usize) -> Side {
    let (a, b) = (format!("{tag}-rd-{size}"), format!("{tag}-java-{size}"));
    let rd_produce = timed(pid, n, || rd_produce(addr, &a, n, size));
    let consume_default = timed(pid, n, || rd_consume(addr, &a, n, 1000));
    let rd_consume_10 = timed(pid, n, || rd_consume(addr, &a, n, 10));
    let rd_consume = consume_default;
    let java_produce = timed(pid, n, || java_produce(addr, &b, n, size));
    let java_consume = timed(pid, n, || java_consume(addr, &b, n));
    Side { rd_produce, rd_consume, rd_consume_10, java_produce, java_consume }
}

pub fn w_server(rep: &mut Report, dirs: &Dirs, sc: &Scale) {
    let root = repo();
    let ok = Command::new("bash").arg(root.join("tests/interop/fetch_kafka.sh")).status().unwrap().success()
        && Command::new("cargo")
            .args(["build", "--release", "-q", "-p", "streamlog-cli"])
            .current_dir(&root)
            .status()
            .unwrap()
            .success();
    assert!(ok, "could not fetch Kafka's jars or build the streamlog command");
    let bin = root.join("target/release/streamlog");

    // Start to first produce.
    let mut sl_start = Vec::new();
    for _ in 0..sc.pick(3, 5) {
        let d = dirs.fresh("serve-start");
        let t0 = Instant::now();
        let (proc_, addr) = start_streamlog(&bin, &d);
        let t = first_produce(&addr, t0 + Duration::from_secs(30));
        sl_start.push((t - t0).as_secs_f64() * 1000.0);
        drop(proc_);
    }
    let mut k_start = Vec::new();
    for _ in 0..sc.pick(1, 3) {
        let d = dirs.fresh("kafka-start");
        let (mut cmd, addr) = kafka_command(&d);
        let t0 = Instant::now();
        let proc_ = Proc(cmd.spawn().unwrap());
        let t = first_produce(&addr, t0 + Duration::from_secs(120));
        k_start.push((t - t0).as_secs_f64() * 1000.0);
        drop(proc_);
    }
    sl_start.sort_by(f64::total_cmp);
    k_start.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];

    let mut table = String::from(
        "server workload                                         | streamlog serve | Apache Kafka 4.4 | streamlog/Kafka | loopback limit | server CPU s per M records: streamlog / Kafka\n",
    );
    table.push_str(&format!(
        "{:<55} | {:>15.1} | {:>16.1} | {:>15.3} |\n",
        "start to first acknowledged produce (ms)",
        median(&sl_start),
        median(&k_start),
        median(&sl_start) / median(&k_start)
    ));
    for size in [100usize, 1024] {
        let n = sc.pick(200_000, if size == 100 { 2_000_000 } else { 500_000 });
        let limit = loopback(n * 4, size);
        let d = dirs.fresh("serve");
        let (sl_proc, sl_addr) = start_streamlog(&bin, &d);
        let sl = measure(sl_proc.0.id(), &sl_addr, "t", n, size);
        let sl_lat = rd_latency(&sl_addr, &format!("lat-{size}"), sc.pick(1000, 3000));
        drop(sl_proc);
        let d = dirs.fresh("kafka");
        let (mut cmd, k_addr) = kafka_command(&d);
        let k_proc = Proc(cmd.spawn().unwrap());
        first_produce(&k_addr, Instant::now() + Duration::from_secs(120));
        let k = measure(k_proc.0.id(), &k_addr, "t", n, size);
        let k_lat = rd_latency(&k_addr, &format!("lat-{size}"), sc.pick(1000, 3000));
        drop(k_proc);
        let rows = [
            ("produce, librdkafka, acks=1", sl.rd_produce, k.rd_produce),
            ("consume, librdkafka", sl.rd_consume, k.rd_consume),
            ("consume, librdkafka, queue backoff 10 ms", sl.rd_consume_10, k.rd_consume_10),
            ("produce, ProducerPerformance, acks=1", sl.java_produce, k.java_produce),
            ("consume, ConsumerPerformance", sl.java_consume, k.java_consume),
        ];
        for (name, a, b) in rows {
            table.push_str(&format!(
                "{:<55} | {:>15.0} | {:>16.0} | {:>15.2} | {:>14.0} | {:.2} / {:.2}\n",
                format!("{name}, {} (records/s)", if size == 100 { "100 B" } else { "1 KiB" }),
                a.rps,
                b.rps,
                a.rps / b.rps,
                limit,
                a.cpu_per_m,
                b.cpu_per_m
            ));
        }
        table.push_str(&format!(
            "{:<55} | {:>7.0} / {:>5.0} | {:>8.0} / {:>5.0} | {:>7.2} / {:>5.2} |\n",
            format!("produce-to-fetch p50/p99 µs, {}", if size == 100 { "100 B" } else { "1 KiB" }),
            sl_lat.0,
            sl_lat.1,
            k_lat.0,
            k_lat.1,
            sl_lat.0 / k_lat.0,
            sl_lat.1 / k_lat.1
        ));
    }
    eprintln!("{table}");
    rep.note(format!(
        "server (streamlog serve and Kafka each in its own process; clients in this one; {} records per size):\n{table}",
        sc.pick("200,000", "2,000,000 (100 B) / 500,000 (1 KiB)")
    ));
}
