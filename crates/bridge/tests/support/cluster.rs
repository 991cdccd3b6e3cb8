//! A real Apache Kafka 4.x cluster on loopback for the bridge's tests:
//! three KRaft nodes (each broker and controller), replication factor 3,
//! `min.insync.replicas` 2, from the Maven Central jars that
//! `tests/interop/fetch_kafka.sh` fetches (it is run here when they are
//! missing; it needs Java 17 and Maven). Each JVM gets SIGKILL when this
//! process dies, so a failed test leaves no broker behind.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The directory of Kafka's jars, fetched if missing.
pub fn kafka_libs() -> PathBuf {
    let root = repo_root();
    let libs = root.join("target/interop/kafka-libs");
    if !libs.join(".complete").exists() {
        let ok = Command::new("bash")
            .arg(root.join("tests/interop/fetch_kafka.sh"))
            .status()
            .expect("run tests/interop/fetch_kafka.sh (needs bash, Java 17 and Maven)");
        assert!(ok.success(), "fetching Kafka's jars failed");
    }
    libs
}

/// A Java command with Kafka's jars on the class path; it dies with us.
pub fn java(main: &str) -> Command {
    let mut cmd = Command::new("java");
    cmd.arg("-cp")
        .arg(format!("{}/*", kafka_libs().display()))
        .arg(main);
    die_with_parent(&mut cmd);
    cmd
}

/// Makes the child get SIGKILL when this process exits.
pub fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child
    // between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct Node {
    id: u32,
    props: PathBuf,
    out: PathBuf,
    child: Option<Child>,
}

/// A running three-node cluster. Dropping it kills every node and removes
/// its files.
pub struct Cluster {
    dir: PathBuf,
    nodes: Vec<Node>,
    /// `host:port,...` of every broker.
    pub bootstrap: String,
    /// How long the start took.
    pub started_in: Duration,
}

impl Cluster {
    /// Formats and starts a fresh cluster; returns once every broker
    /// serves metadata and a replicated topic can be created.
    pub fn start() -> Cluster {
        let t0 = Instant::now();
        let libs = kafka_libs();
        let dir = std::env::temp_dir().join(format!(
            "streamlog-kafka-{}-{}",
            std::process::id(),
            t0.elapsed().as_nanos() ^ u128::from(free_port())
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let voters: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, c))| format!("{}@127.0.0.1:{c}", i + 1))
            .collect();
        let mut nodes = Vec::new();
        for (i, (port, cport)) in ports.iter().enumerate() {
            let id = i as u32 + 1;
            let ndir = dir.join(format!("n{id}"));
            std::fs::create_dir_all(&ndir).expect("node dir");
            let props = ndir.join("server.properties");
            std::fs::write(
                &props,
                format!(
                    "process.roles=broker,controller\n\
                     node.id={id}\n\
                     listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
                     advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
                     controller.listener.names=CONTROLLER\n\
                     listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
                     inter.broker.listener.name=PLAINTEXT\n\
                     controller.quorum.voters={}\n\
                     log.dirs={}\n\
                     num.partitions=1\n\
                     default.replication.factor=3\n\
                     min.insync.replicas=2\n\
                     offsets.topic.replication.factor=3\n\
                     offsets.topic.num.partitions=3\n\
                     transaction.state.log.replication.factor=3\n\
                     transaction.state.log.min.isr=2\n\
                     transaction.state.log.num.partitions=3\n\
                     group.initial.rebalance.delay.ms=0\n\
                     log.flush.interval.messages=9223372036854775807\n\
                     unclean.leader.election.enable=false\n",
                    voters.join(","),
                    ndir.join("data").display()
                ),
            )
            .expect("write server.properties");
            let status = java("kafka.tools.StorageTool")
                .args(["format", "-t", "c3RyZWFtbG9nLWJyaWRnZQ", "-c"])
                .arg(&props)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("run Kafka's StorageTool");
            assert!(status.success(), "formatting node {id} failed");
            nodes.push(Node {
                id,
                props,
                out: ndir.join("out.log"),
                child: None,
            });
        }
        let _ = libs;
        let bootstrap = ports
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            dir,
            nodes,
            bootstrap,
            started_in: Duration::ZERO,
        };
        for i in 0..3 {
            c.spawn(i);
        }
        c.wait_brokers(3);
        c.started_in = t0.elapsed();
        c
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let out = std::fs::File::create(&node.out).expect("node log");
        let child = Command::new("java")
            .args(["-Xmx512m", "-Xms128m", "-XX:+UseSerialGC", "-cp"])
            .arg(format!("{}/*", kafka_libs().display()))
            .arg("kafka.Kafka")
            .arg(&node.props)
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .stdin(Stdio::null())
            .pre_exec_die();
        node.child = Some(child);
    }

    /// Waits until `n` brokers serve metadata.
    pub fn wait_brokers(&self, n: usize) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("log_level", "0")
            .create()
            .expect("metadata client");
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(md) = consumer.fetch_metadata(None, Duration::from_secs(5)) {
                if md.brokers().len() >= n {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not start in 120 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILLs node `id` (1..=3).
    pub fn kill(&mut self, id: u32) {
        let node = self.nodes.iter_mut().find(|n| n.id == id).expect("node");
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `id` again after [`kill`](Self::kill).
    pub fn restart(&mut self, id: u32) {
        let i = self.nodes.iter().position(|n| n.id == id).expect("node");
        self.spawn(i);
    }

    /// The node id leading `topic`'s `partition`.
    pub fn leader_of(&self, topic: &str, partition: i32) -> u32 {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("log_level", "0")
            .create()
            .expect("metadata client");
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        md.topics()[0]
            .partitions()
            .iter()
            .find(|p| p.id() == partition)
            .expect("partition")
            .leader() as u32
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

trait SpawnDying {
    fn pre_exec_die(&mut self) -> Child;
}

impl SpawnDying for Command {
    fn pre_exec_die(&mut self) -> Child {
        die_with_parent(self);
        self.spawn().expect("start a Kafka node (java)")
    }
}
