//! Opening a log from the command line: read-only for the commands that
//! only look, with the writer's lock for those that change it, and never
//! creating a log by accident (a mistyped directory is an error).

use std::path::Path;

use streamlog::{Error, Log, LogReader};

use crate::Res;

/// Whether `dir` holds a streamlog log: a log writes `.lock` when it is
/// first opened and `topics.registry` once it has a topic.
pub fn is_log(dir: &Path) -> bool {
    dir.join(".lock").is_file() || dir.join("topics.registry").is_file()
}

/// Checks that `dir` is an existing log directory.
pub fn existing(dir: &Path) -> Res<()> {
    if !dir.exists() {
        return Err(format!("{}: no such directory", dir.display()).into());
    }
    if !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()).into());
    }
    if !is_log(dir) {
        return Err(format!(
            "{}: not a streamlog log directory (no .lock or topics.registry); \
             `streamlog topics create DIR NAME` starts a new log",
            dir.display()
        )
        .into());
    }
    Ok(())
}

/// Opens the log read-only: works while another process writes it.
pub fn reader(dir: &Path) -> Res<LogReader> {
    existing(dir)?;
    Ok(Log::open_read_only(dir)?)
}

/// Opens the log for writing (takes its lock). Only `create` may make a
/// new log in a missing or empty directory.
pub fn writer(dir: &Path, create: bool) -> Res<Log> {
    if !create || is_log(dir) {
        existing(dir)?;
    } else if dir.exists() && !dir.is_dir() {
        return Err(format!("{}: not a directory", dir.display()).into());
    } else if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(format!(
            "{}: not empty and not a streamlog log directory; a new log starts in a missing \
             or empty directory",
            dir.display()
        )
        .into());
    }
    Log::open(dir).map_err(|e| match e {
        Error::Locked { .. } => {
            let by = match lock_holder(dir) {
                Some(pid) => format!("process {pid}"),
                None => "another process".to_string(),
            };
            format!(
                "{}: the log is open for writing by {by}; this command changes the log and \
                 needs it to itself (read-only commands work on a live log)",
                dir.display()
            )
            .into()
        }
        e => e.into(),
    })
}

/// Removes the log `Log::open` just made in `dir` (which was empty, or
/// missing unless `existed`), after its first command failed.
pub fn remove_new_log(dir: &Path, existed: bool) -> Res<()> {
    if !existed {
        std::fs::remove_dir_all(dir)?;
        return Ok(());
    }
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

/// The process holding the log's lock, from `/proc/locks` (Linux): looked
/// up without touching the lock, so a starting writer never fails because
/// a tool looked.
pub fn lock_holder(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir.join(".lock")).ok()?;
    let (ino, dev) = (meta.ino(), meta.dev());
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let f: Vec<&str> = line.split_whitespace().collect();
        let (pid, id) = (f.get(4)?, f.get(5)?);
        let mut parts = id.split(':');
        let maj = u32::from_str_radix(parts.next()?, 16).ok()?;
        let min = u32::from_str_radix(parts.next()?, 16).ok()?;
        let i: u64 = parts.next()?.parse().ok()?;
        (i == ino && maj == major && min == minor)
            .then(|| pid.parse().ok())
            .flatten()
    })
}
