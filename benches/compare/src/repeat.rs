//! What makes one table comparable with another: the machine it ran on,
//! and with `--repeat N`, the range (min / median / max) of each of
//! streamlog's ratios over N full passes, so that a README figure is a
//! range from one session rather than the best run.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cost::Cost;
use crate::{Kind, Report, Res};

/// The measure a row's ratios compare, and whether higher is better.
fn measure(kind: Kind, r: &Res) -> Option<(f64, bool)> {
    match kind {
        Kind::Rate => r.rps.map(|x| (x, true)),
        Kind::Mbps => r.mbps.map(|x| (x, true)),
        Kind::P99 => r.p99.map(|x| (x, false)),
        Kind::Time => r.p50.map(|x| (x, false)),
        Kind::Mem => r.mbps.map(|x| (x, false)),
    }
}

/// streamlog's ratio to each peer in each row of one pass, oriented so
/// that above 1 means streamlog did better; for the durable rows also
/// streamlog at N threads against streamlog at one.
fn ratios(rep: &Report) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let sl = |row: &crate::Row| {
        row.cells
            .iter()
            .find(|(e, _)| e == "streamlog")
            .and_then(|(_, r)| r.as_ref().and_then(|r| measure(row.kind, r)))
    };
    for row in &rep.rows {
        let Some((mine, higher)) = sl(row) else { continue };
        for (peer, r) in &row.cells {
            if peer == "streamlog" {
                continue;
            }
            if let Some((theirs, _)) = r.as_ref().and_then(|r| measure(row.kind, r)) {
                let x = if higher { mine / theirs } else { theirs / mine };
                out.push((format!("{} × {peer}", row.workload), x));
            }
        }
        // "durable 100 B 16t (...)" against "durable 100 B 1t (...)".
        if let Some((head, tail)) = row.workload.split_once("t (") {
            if let Some((size, threads)) = head.rsplit_once(' ') {
                if row.workload.starts_with("durable") && threads != "1" {
                    let one = format!("{size} 1t ({tail}");
                    let base = rep.rows.iter().find(|r| r.workload == one).and_then(sl);
                    if let Some((b, _)) = base {
                        out.push((format!("{} × streamlog 1 thread", row.workload), mine / b));
                    }
                }
            }
        }
    }
    out
}

/// The ratios of every pass so far.
#[derive(Default)]
pub struct Ranges {
    order: Vec<String>,
    seen: BTreeMap<String, Vec<f64>>,
    /// Each engine's cost per record in each row that measures it.
    cost_order: Vec<String>,
    costs: BTreeMap<String, Vec<Cost>>,
    passes: usize,
}

impl Ranges {
    pub fn add(&mut self, rep: &Report) {
        self.passes += 1;
        for (k, x) in ratios(rep) {
            if !self.seen.contains_key(&k) {
                self.order.push(k.clone());
            }
            self.seen.entry(k).or_default().push(x);
        }
        for row in &rep.rows {
            for (engine, r) in &row.cells {
                if let Some(c) = r.and_then(|r| r.cost) {
                    let k = format!("{} · {engine}", row.workload);
                    if !self.costs.contains_key(&k) {
                        self.cost_order.push(k.clone());
                    }
                    self.costs.entry(k).or_default().push(c);
                }
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "streamlog's ratios over {} full passes (min / median / max; above 1: streamlog better)\n",
            self.passes
        );
        for k in &self.order {
            let mut v = self.seen[k].clone();
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            out.push_str(&format!(
                "  {k:<80} {:>6.2} / {:>6.2} / {:>6.2}\n",
                v[0],
                v[v.len() / 2],
                v[v.len() - 1]
            ));
        }
        out.push_str(&format!(
            "\nCost per record over {} full passes, min–max: user ns, system ns, minor page faults per 1000 records\n",
            self.passes
        ));
        for k in &self.cost_order {
            let v = &self.costs[k];
            let span = |f: fn(&Cost) -> f64, digits: usize| {
                let lo = v.iter().map(f).fold(f64::INFINITY, f64::min);
                let hi = v.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
                format!("{lo:.digits$}–{hi:.digits$}")
            };
            out.push_str(&format!(
                "  {k:<80} user {:>11}  sys {:>11}  faults {:>11}\n",
                span(|c| c.user_ns, 0),
                span(|c| c.sys_ns, 0),
                span(|c| c.minor_per_k, 1)
            ));
        }
        out
    }
}

/// Whether this machine is a guest whose virtio balloon reports free pages
/// to the host (`VIRTIO_BALLOON_F_REPORTING`, feature bit 5): the host
/// then drops what backs them, and the guest's next use of such a page
/// waits for the host to fault in and zero a fresh one.
pub fn free_page_reporting() -> bool {
    let Ok(devices) = std::fs::read_dir("/sys/bus/virtio/devices") else {
        return false;
    };
    devices.flatten().any(|d| {
        let read = |f: &str| std::fs::read_to_string(d.path().join(f)).unwrap_or_default();
        read("device").trim() == "0x0005" && read("features").as_bytes().get(5) == Some(&b'1')
    })
}

/// CPU model, cores, kernel and the file system of `dir`, and whether the
/// guest reports free pages to its host.
pub fn machine(dir: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let kernel = run("uname", &["-sr"]);
    // `stat -f` names ext4 "ext2/ext3" (one magic number); findmnt does not.
    let fs = match run("findmnt", &["-n", "-o", "FSTYPE", "-T", &dir.display().to_string()]) {
        f if f.is_empty() => run("stat", &["-f", "-c", "%T", &dir.display().to_string()]),
        f => f,
    };
    // Whether ext4 keeps a journal decides what an fdatasync into new
    // blocks writes besides the data (a journal commit, or the extent
    // blocks in place): jbd2 lists the devices it journals.
    let fs = if fs == "ext4" {
        let source = run("findmnt", &["-n", "-o", "SOURCE", "-T", &dir.display().to_string()]);
        let dev = source.rsplit('/').next().unwrap_or_default().to_string();
        let journaled = std::fs::read_dir("/proc/fs/jbd2")
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(&format!("{dev}-"))))
            .unwrap_or(false);
        format!("ext4 ({})", if journaled { "with a journal" } else { "no journal" })
    } else {
        fs
    };
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<u64>().ok()))
        .map_or(String::new(), |kb| format!(", {:.0} GiB memory", kb as f64 / (1 << 20) as f64));
    // See `src/bin/pages.rs`: on such a guest a new page-cache page cost
    // up to ten times more, at the host's whim, most likely the largest
    // share of the write rows' noise there.
    let pages = if free_page_reporting() { "; the guest reports free pages to its host" } else { "" };
    format!("machine: {model}, {cores} CPUs{mem}, {kernel}, temp dir on {fs}{pages}")
}
