//! The bridge against a real Apache Kafka 4.x cluster: three KRaft brokers
//! on loopback, started here once for every scenario and stopped at the
//! end (a JVM each; see `support/cluster.rs`). Scenarios run one after
//! another; arguments that are not flags select scenarios by name.
//!
//! The kill tests re-run this binary as the mirror process
//! (`BRIDGE_TEST_ROLE`), so that it can be killed with SIGKILL.

mod scenarios;
mod support;

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use support::cluster::Cluster;

fn main() {
    if let Ok(role) = std::env::var("BRIDGE_TEST_ROLE") {
        scenarios::child(&role);
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in scenarios::ALL {
            println!("{name}: test");
        }
        return;
    }
    let chosen: Vec<_> = scenarios::ALL
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    if chosen.is_empty() {
        println!("no scenario selected");
        return;
    }
    let mut cluster = Cluster::start();
    println!(
        "three-broker Kafka cluster (KRaft) up in {:.1} s at {}",
        cluster.started_in.as_secs_f64(),
        cluster.bootstrap
    );
    let mut failed = Vec::new();
    for (name, f) in chosen {
        let t0 = Instant::now();
        println!("scenario {name} ...");
        match std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut cluster))) {
            Ok(()) => println!("scenario {name} ok ({:.1} s)", t0.elapsed().as_secs_f64()),
            Err(_) => {
                println!("scenario {name} FAILED");
                failed.push(*name);
            }
        }
    }
    drop(cluster);
    if !failed.is_empty() {
        eprintln!("failed: {}", failed.join(", "));
        std::process::exit(1);
    }
}
