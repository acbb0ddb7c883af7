//! `lnconnd`: keeps a Lightning node connected to its peers.
//!
//! The command-line program of the workspace: `demo` (the default) runs a
//! self-contained show of the whole stack on 127.0.0.1; `connect` dials a
//! real node; `listen` accepts connections; `run` is the daemon, and
//! `getinfo`, `peers`, `connect`, `disconnect`, `forget`, `ban`, `unban`,
//! `events`, `stop` and `call` talk to it. The BOLT 1 layer here (`init`,
//! `ping`/`pong`) is the example application, not library API.

mod cli;
mod connect;
mod daemon;
mod demo;
mod keys;
mod listen;
mod node;
mod output;
mod peer;
mod wire;

use std::process::ExitCode;
use std::sync::Arc;

use brontide::NodeKeyPair;
use clap::Parser;

use crate::cli::{Cli, Command, KeyArgs};
use crate::output::Output;

/// Why the program stops with a failure.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// Bad input from the user (exit status 2, as for a usage error).
    #[error("{0}")]
    Usage(String),
    /// Something failed at run time (exit status 1).
    #[error("{0}")]
    Runtime(String),
}

impl From<keys::KeyError> for Failure {
    fn from(e: keys::KeyError) -> Self {
        Failure::Usage(e.to_string())
    }
}

/// An error and its causes, each printed once: `a: b: c`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Our node key from `--key`, `--key-file`, or fresh.
pub(crate) fn load_key(args: &KeyArgs) -> Result<NodeKeyPair, Failure> {
    Ok(match (&args.key, &args.key_file) {
        (Some(hex), _) => keys::from_hex(hex)?,
        (None, Some(path)) => keys::from_file(path)?,
        (None, None) => keys::random().map_err(|e| Failure::Runtime(e.to_string()))?,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon sets up its own logs, in the format its config asks for.
    if !matches!(cli.command, Some(Command::Run(_))) {
        init_tracing();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Demo(cli.demo));
    let live = matches!(command, Command::Demo(_));
    let out = Arc::new(Output::new(cli.json, live));
    let result = runtime.block_on(async {
        let mut interrupt = node::Interrupt::install();
        let out = Arc::clone(&out);
        match command {
            Command::Demo(args) => demo::run(args, out, &mut interrupt).await,
            Command::Connect(args) => match daemon::client::route(&args) {
                Ok(Some(socket)) => daemon::client::connect(args, socket, out).await,
                Ok(None) => connect::run(args, out, &mut interrupt).await,
                Err(e) => Err(e),
            },
            Command::Listen(args) => listen::run(args, out, &mut interrupt).await,
            Command::Run(args) => daemon::run(args, out, &mut interrupt).await,
            command => daemon::client::run(command, out, &mut interrupt).await,
        }
    });
    out.finish();
    // Tasks still winding down (handshakes in progress) are not waited for.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            if cli.json {
                let line = serde_json::json!({ "event": "error", "error": e.to_string() });
                print_line(&line.to_string());
            }
            eprintln!("error: {e}");
            match e {
                Failure::Usage(_) => ExitCode::from(2),
                Failure::Runtime(_) => ExitCode::FAILURE,
            }
        }
    }
}

/// Prints a line on stdout; a closed stdout (piped into `head`) is not
/// worth a panic, the line is dropped.
pub(crate) fn print_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Logs go to stderr, filtered by `RUST_LOG` (default: warnings).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
