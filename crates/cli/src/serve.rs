//! `streamlog serve DIR --listen ADDR`: the log served to Kafka clients
//! until SIGINT or SIGTERM, then closed cleanly.

use std::process::ExitCode;

use streamlog::Log;
use streamlog_server::{Server, ServerConfig};

/// Blocks SIGINT and SIGTERM in this thread and every thread started after
/// it, so that only `wait_for_stop`'s `sigwait` receives them.
pub(crate) fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before
    // use, and pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

pub(crate) fn wait_for_stop(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` was initialised by block_stop_signals; sigwait writes
    // the signal number into `sig`.
    unsafe { while libc::sigwait(set, &mut sig) != 0 {} }
    sig
}

/// `streamlog serve DIR --listen ADDR`: serve the log (created if the
/// directory holds none) to Kafka clients.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The log directory (created if missing).
    dir: std::path::PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9092")]
    listen: String,
    /// Partitions of auto-created topics.
    #[arg(long, value_name = "N")]
    partitions: Option<u32>,
    /// Refuse produce and metadata requests for unknown topics instead of
    /// creating them.
    #[arg(long)]
    no_auto_create_topics: bool,
}

/// Runs `serve`: prints `listening on ADDR` once it accepts connections,
/// stops on SIGINT or SIGTERM and closes the log.
pub fn run(a: ServeArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let set = block_stop_signals();
    let log = Log::open(&a.dir)?;
    let listen = a.listen.as_str();
    let mut config = ServerConfig::new().auto_create_topics(!a.no_auto_create_topics);
    if let Some(n) = a.partitions {
        config = config.default_partitions(n);
    }
    let server = Server::start(log.clone(), listen, config)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    println!("listening on {}", server.local_addr());
    use std::io::Write;
    std::io::stdout().flush()?;
    let sig = wait_for_stop(&set);
    eprintln!(
        "streamlog: {} received; stopping",
        if sig == libc::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        }
    );
    server.shutdown();
    log.close()?;
    Ok(ExitCode::SUCCESS)
}
