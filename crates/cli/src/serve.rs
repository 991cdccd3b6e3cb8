//! `streamlog serve DIR --listen ADDR`: the log served to Kafka clients
//! until SIGINT or SIGTERM, then closed cleanly.

use std::process::ExitCode;

use streamlog::Log;
use streamlog_server::{Server, ServerConfig};

/// Blocks SIGINT and SIGTERM in this thread and every thread started after
/// it, so that only `wait_for_stop`'s `sigwait` receives them.
fn block_stop_signals() -> libc::sigset_t {
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

fn wait_for_stop(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` was initialised by block_stop_signals; sigwait writes
    // the signal number into `sig`.
    unsafe { while libc::sigwait(set, &mut sig) != 0 {} }
    sig
}

/// Runs `serve DIR --listen ADDR [--partitions N] [--no-auto-create-topics]`.
pub fn serve(
    dir: &str,
    listen: &str,
    partitions: Option<u32>,
    auto_create: bool,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let set = block_stop_signals();
    let log = Log::open(dir)?;
    let mut config = ServerConfig::new().auto_create_topics(auto_create);
    if let Some(n) = partitions {
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
