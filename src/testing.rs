//! Test seams, behind the default-off `internals` feature: the simulated
//! file system (power cuts, process kills, a full disk, failed fsyncs) and
//! a failure-injecting wrapper over the real one, and the calls that open a
//! [`Log`] on them. The crate's own crash and fault tests in `tests/` use
//! these; so can a user's. Not a stable API: it follows the I/O seam, not
//! semver.
//!
//! # Example
//! ```
//! use streamlog::testing::{open_sim, SimFs};
//! use streamlog::{LogOptions, Record, SyncPolicy, TopicPartition};
//!
//! let fs = SimFs::new(None, 1);
//! let log = open_sim(&fs, "/log", LogOptions::new().sync(SyncPolicy::EveryWrite))?;
//! log.create_topic("t", Default::default())?;
//! log.producer().send("t", Record::new(b"durable"))?;
//! let image = fs.cut_now(); // the power goes out
//! drop(log);
//! let rebooted = SimFs::from_image(&image, None, 2);
//! let log = open_sim(&rebooted, "/log", LogOptions::new())?;
//! assert_eq!(log.partition_info(&TopicPartition::new("t", 0))?.end_offset, 1);
//! # Ok::<(), streamlog::Error>(())
//! ```

use std::path::Path;
use std::sync::Arc;

pub use crate::io::faulty::FaultyFs;
pub use crate::io::sim::{Image, SimFs};

use crate::error::Result;
use crate::io::FileSystem;
use crate::log::open::open_on;
use crate::log::options::LogOptions;
use crate::log::state::Log;

/// Appends of this many bytes or more are written with `pwrite`, smaller
/// ones copied into the mapping (ARCHITECTURE.md, the append's data flow).
pub const WRITE_THROUGH_BYTES: usize = crate::storage::mapped::WRITE_THROUGH_FILE;

/// Opens (creating if needed) the log in `dir` on the simulated file
/// system `fs`.
///
/// # Errors
/// As [`LogOptions::open`].
pub fn open_sim(fs: &SimFs, dir: impl AsRef<Path>, opts: LogOptions) -> Result<Log> {
    open_on(
        Arc::new(fs.clone()) as Arc<dyn FileSystem>,
        dir.as_ref(),
        opts,
        false,
    )
}

/// Opens (creating if needed) the log in `dir` on the real file system
/// behind the failure-injecting `fs`.
///
/// # Errors
/// As [`LogOptions::open`].
pub fn open_faulty(fs: &Arc<FaultyFs>, dir: impl AsRef<Path>, opts: LogOptions) -> Result<Log> {
    open_on(
        Arc::new(fs.clone()) as Arc<dyn FileSystem>,
        dir.as_ref(),
        opts,
        false,
    )
}
