//! `streamlog`: operate a log directory from the shell, as Kafka's
//! `kafka-topics`, `kafka-console-producer`/`-consumer`,
//! `kafka-consumer-groups` and `kafka-dump-log` do for a cluster.
//!
//! Every command takes the log directory as its first positional argument
//! after the command words. Read-only commands (`topics list`/`describe`,
//! `consume` without `--group`, `groups list`/`describe`, `groups
//! reset-offsets --dry-run`, `dump`, `verify`) open the log read-only: they
//! never write a byte, never create a log, and work while another process
//! holds the log open for writing. The others take the log's lock.
//!
//! Exit codes: 0 success; 1 corruption found or records missing; 2 a usage
//! error, an I/O error, or a refused operation.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod consume;
mod groups;
mod inspect;
mod mirror;
mod open;
mod produce;
mod render;
mod serve;
mod topics;

/// What a command ends with: an exit code, or an error printed to stderr
/// with exit code 2.
type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Operate a streamlog log directory: topics, produce, consume, consumer
/// groups, dump and verify, and serve it to Kafka clients.
///
/// Exit codes: 0 success; 1 corruption found or records missing; 2 usage
/// error, I/O error or a refused operation.
#[derive(Parser)]
#[command(name = "streamlog", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List, create, delete, describe and alter topics.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Append records read from stdin (one per line).
    Produce(produce::ProduceArgs),
    /// Print records of a topic, from a position, optionally following
    /// new ones.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// Print every batch and record of a segment file (`.log`), like
    /// kafka-dump-log.
    Dump(inspect::DumpArgs),
    /// Check every file of a log directory; exit code 1 on corruption.
    Verify(inspect::VerifyArgs),
    /// Serve the log to Kafka clients over Kafka's wire protocol until
    /// SIGINT or SIGTERM.
    Serve(serve::ServeArgs),
    /// Copy the log into a Kafka cluster (--to), or a cluster's topics
    /// into the log (--from), exactly once.
    Mirror(mirror::MirrorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish,
    /// powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        // Like other Unix tools, stop quietly when the reader of our output
        // goes away (`streamlog consume ... | head`). Not for `serve`,
        // whose sockets must not kill it.
        // SAFETY: setting a signal's disposition to its default is
        // async-signal-safe and touches no Rust state.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Topics(c) => topics::run(c),
        Command::Produce(a) => produce::run(a),
        Command::Consume(a) => consume::run(a),
        Command::Groups(c) => groups::run(c),
        Command::Dump(a) => inspect::dump(a),
        Command::Verify(a) => inspect::verify(a),
        Command::Serve(a) => serve::run(a),
        Command::Mirror(a) => mirror::run(a),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "streamlog", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // A closed pipe (`streamlog consume ... | head`) is not an error.
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("streamlog: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
