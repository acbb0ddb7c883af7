//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use lnaddr::NodeAddr;

/// Keeps a Lightning node connected to its peers: BOLT 8 over TCP, one
/// worker per persistent peer with backoff, and lnd's peer lifecycle.
///
/// With no subcommand it runs `demo`: peers on 127.0.0.1 kept connected
/// through churn, with a summary of what held.
#[derive(Debug, Parser)]
#[command(
    name = "lnconnd",
    version,
    propagate_version = true,
    args_conflicts_with_subcommands = true
)]
pub(crate) struct Cli {
    /// Print one JSON object per line, each with an `event` field.
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// The demo's options, for `lnconnd` with no subcommand.
    #[command(flatten)]
    pub(crate) demo: DemoArgs,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Self-contained demo on 127.0.0.1 (the default): in-process peers
    /// restarted, moved and dialing us while we keep connected to them.
    Demo(DemoArgs),
    /// Dial a Lightning node, complete BOLT 8, exchange `init`, answer pings;
    /// with a daemon running in the data directory, ask it to (with `--perm`
    /// it keeps the peer connected, across restarts too).
    Connect(ConnectArgs),
    /// Accept BOLT 8 connections, exchange `init`, answer pings.
    Listen(ListenArgs),
    /// Run the daemon: keep the data directory's persistent peers
    /// connected, listen, and serve the control socket that `getinfo`,
    /// `peers` and the other commands talk to.
    ///
    /// Every option can also be set in `config.toml` in the data
    /// directory, under the same name with underscores (`log_format =
    /// "json"`), with the retry tuning in its `[peers]` table and the
    /// control socket's limits in `[rpc]` (see the README); the command line
    /// wins. SIGTERM or `lnconnd stop` ends it.
    Run(RunArgs),
    /// Ask the daemon who it is (its key, listen addresses, counts).
    Getinfo(DaemonArgs),
    /// List the daemon's peers: state, addresses in the order they will be
    /// tried, last error, next attempt, and why a peer is not connected.
    Peers(PeersArgs),
    /// Make the daemon close a peer's connection and stop reconnecting it.
    Disconnect(PeerArgs),
    /// Make the daemon stop keeping a peer connected (the connection, if
    /// any, stays up until it ends).
    Forget(PeerArgs),
    /// Make the daemon refuse a peer's inbound connections (for good, or
    /// for `--duration` seconds).
    Ban(BanArgs),
    /// Lift a ban.
    Unban(PeerArgs),
    /// Print the daemon's events as they happen, until Ctrl-C.
    Events(DaemonArgs),
    /// Stop the daemon.
    Stop(DaemonArgs),
    /// Send any JSON-RPC request to the daemon (like `lightning-cli`).
    Call(CallArgs),
}

/// How the daemon writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct DataDirArgs {
    /// The daemon's data directory: key, config.toml, peer store and
    /// control socket [default: $XDG_DATA_HOME/lnconnd or
    /// ~/.local/share/lnconnd].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) data: DataDirArgs,
    /// Accept peers here (repeat for several) [default: 0.0.0.0:9735].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Vec<SocketAddr>,
    /// A SOCKS5 proxy for onion addresses (Tor's is 127.0.0.1:9050).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) proxy: Option<SocketAddr>,
    /// Send every address through --proxy, not only onion addresses.
    #[arg(long)]
    pub(crate) proxy_all: bool,
    /// Fresh SOCKS5 credentials on each connection (a Tor circuit each).
    #[arg(long)]
    pub(crate) stream_isolation: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (off by default).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<SocketAddr>,
    /// Log format; levels come from RUST_LOG (default: info).
    #[arg(long, value_enum)]
    pub(crate) log_format: Option<LogFormat>,
    /// Use this node key (mode 0600, 64 hex characters or 32 bytes) rather
    /// than the data directory's own.
    #[arg(long, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    #[command(flatten)]
    pub(crate) data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PeersArgs {
    /// Only this peer (its public key).
    #[arg(value_name = "PUBKEY")]
    pub(crate) id: Option<String>,
    #[command(flatten)]
    pub(crate) data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(crate) struct BanArgs {
    /// The peer's public key.
    #[arg(value_name = "PUBKEY")]
    pub(crate) id: String,
    /// Lift the ban after this many seconds (default: never).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    pub(crate) duration: Option<f64>,
    #[command(flatten)]
    pub(crate) data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PeerArgs {
    /// The peer's public key.
    #[arg(value_name = "PUBKEY")]
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The method (getinfo, connect, listpeers, ...).
    pub(crate) method: String,
    /// Its parameters as one JSON object or array (default: none).
    #[arg(value_name = "JSON")]
    pub(crate) params: Option<String>,
    #[command(flatten)]
    pub(crate) data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many in-process peers to run.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub(crate) peers: u16,
    /// How long to churn them (e.g. 20s, 1500ms, 2m).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Seed for the churn and the backoff jitter (random if absent).
    #[arg(long)]
    pub(crate) seed: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct KeyArgs {
    /// Our node's secret key, 64 hex characters (random if absent).
    #[arg(long, value_name = "HEX", conflicts_with = "key_file")]
    pub(crate) key: Option<String>,
    /// A file holding our node's secret key (64 hex characters or 32 bytes).
    #[arg(long, value_name = "PATH")]
    pub(crate) key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The node: `<pubkey>@<host>[:<port>]` (port 9735 if left out).
    #[arg(value_name = "PUBKEY@HOST:PORT")]
    pub(crate) node: NodeAddr,
    /// Keep the connection up: reconnect with backoff until Ctrl-C.
    #[arg(long)]
    pub(crate) perm: bool,
    /// Exit with status 0 once the remote's `init` arrives.
    #[arg(long)]
    pub(crate) exit_after_init: bool,
    /// Give up a one-off connect (TCP and handshake) after this long, at
    /// most 24h [default: 30s, or 120s with --proxy, since Tor is slow;
    /// through a daemon: its `peers.connect_timeout`, which also bounds
    /// this]. With --perm through a daemon: how long to wait for the
    /// connection [default: 60s].
    #[arg(long, value_parser = parse_connect_timeout)]
    pub(crate) timeout: Option<Duration>,
    /// A SOCKS5 proxy for onion addresses (Tor's is 127.0.0.1:9050).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) proxy: Option<SocketAddr>,
    /// Send every address through --proxy, not only onion addresses (DNS
    /// names are then resolved by the proxy).
    #[arg(long, requires = "proxy")]
    pub(crate) proxy_all: bool,
    /// Fresh SOCKS5 credentials on each connection, so Tor builds a circuit
    /// for each.
    #[arg(long, requires = "proxy")]
    pub(crate) stream_isolation: bool,
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    /// Dial from this process even if a daemon runs (implied by
    /// --exit-after-init, --proxy, --key and --key-file).
    #[arg(long)]
    pub(crate) direct: bool,
    /// With a daemon: return once it has the request, without waiting for
    /// the connection.
    #[arg(long)]
    pub(crate) no_wait: bool,
    #[command(flatten)]
    pub(crate) data: DataDirArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:9735")]
    pub(crate) bind: SocketAddr,
    /// Send every custom message (type >= 32768) back unchanged.
    #[arg(long)]
    pub(crate) echo: bool,
    #[command(flatten)]
    pub(crate) key: KeyArgs,
}

/// A positive, finite number of seconds (`nan`, `inf`, 0 and negative
/// refused: a ban's `--duration` of `nan` was sent as no duration, a
/// permanent ban).
pub(crate) fn parse_secs(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number of seconds")),
    }
}

/// The longest `connect --timeout`, as the daemon takes it.
pub(crate) const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(86_400);

/// A [`parse_duration`] of at most [`MAX_CONNECT_TIMEOUT`].
fn parse_connect_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > MAX_CONNECT_TIMEOUT {
        return Err(format!("{s:?} is longer than 24h"));
    }
    Ok(d)
}

/// Reads `20s`, `1500ms`, `2m`, `1h` or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 20s or 500ms"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("unknown unit {unit:?}: use ms, s, m or h")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 86_400.0 * 365.0 {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_duration_is_a_positive_finite_number() {
        use clap::Parser;
        let id = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7";
        for bad in ["nan", "NaN", "inf", "-inf", "infinity", "0", "-5", "soon"] {
            let r = Cli::try_parse_from(["lnconnd", "ban", id, "--duration", bad]);
            assert!(r.is_err(), "--duration {bad} refused");
        }
        let ok = Cli::try_parse_from(["lnconnd", "ban", id, "--duration", "90.5"]).expect("ok");
        match ok.command {
            Some(Command::Ban(a)) => assert_eq!(a.duration, Some(90.5)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_connect_timeout_is_at_most_a_day() {
        use clap::Parser;
        let node =
            "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7@127.0.0.1:9735";
        assert!(Cli::try_parse_from(["lnconnd", "connect", node, "--timeout", "48h"]).is_err());
        assert!(Cli::try_parse_from(["lnconnd", "connect", node, "--timeout", "24h"]).is_ok());
    }

    #[test]
    fn durations_read_with_units() {
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
