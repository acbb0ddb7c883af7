//! The daemon's settings: the config file in the data directory (TOML),
//! overridden by the command line, validated once at startup.
//!
//! Every option of `lnconnd run` has a key of the same name (dashes become
//! underscores); the tuning of the peer workers and of the control socket
//! lives in the `[peers]` and `[rpc]` tables and has no command-line flag.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cli::{parse_duration, LogFormat, RunArgs};

/// The config file's name inside the data directory.
pub(crate) const CONFIG_FILE: &str = "config.toml";

/// A config file or a command line that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the
    /// wrong type (the parser's message names the key).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A key has a value of the right type that is not acceptable.
    #[error("{path}: key `{key}`: {message}")]
    Value {
        /// The file (or "command line").
        path: String,
        /// The key, dotted (`peers.backoff_min`).
        key: &'static str,
        /// Why.
        message: String,
    },
}

/// The file as written: every field optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<Vec<String>>,
    proxy: Option<String>,
    proxy_all: Option<bool>,
    stream_isolation: Option<bool>,
    metrics: Option<String>,
    log_format: Option<String>,
    key_file: Option<PathBuf>,
    shutdown_timeout: Option<String>,
    #[serde(default)]
    peers: PeersFile,
    #[serde(default)]
    rpc: RpcFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeersFile {
    backoff_min: Option<String>,
    backoff_max: Option<String>,
    stable_after: Option<String>,
    reconnect_cap: Option<String>,
    reconnect_rounds: Option<u16>,
    connect_timeout: Option<String>,
    max_dials_in_flight: Option<usize>,
    startup_batch: Option<usize>,
    startup_spread: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RpcFile {
    max_clients: Option<usize>,
    idle_timeout: Option<String>,
    max_request_bytes: Option<usize>,
}

/// Everything the daemon runs with, validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) listen: Vec<SocketAddr>,
    pub(crate) proxy: Option<SocketAddr>,
    pub(crate) proxy_all: bool,
    pub(crate) stream_isolation: bool,
    pub(crate) metrics: Option<SocketAddr>,
    pub(crate) log_format: LogFormat,
    /// A key file the user brought; `None`: the data directory's own.
    pub(crate) key_file: Option<PathBuf>,
    /// The whole shutdown (connections, tasks, store) is bounded by this.
    pub(crate) shutdown_timeout: Duration,
    pub(crate) peers: PeerTuning,
    pub(crate) rpc: RpcLimits,
}

/// How the peer workers retry (see `server::Config`).
#[derive(Debug, Clone)]
pub(crate) struct PeerTuning {
    pub(crate) policy: backoff::Policy,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_dials_in_flight: NonZeroUsize,
    pub(crate) startup_batch: usize,
    pub(crate) startup_spread: Duration,
}

/// Bounds on the control socket's clients.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RpcLimits {
    /// Clients served at once; more are told so and closed.
    pub(crate) max_clients: usize,
    /// A client that sends no complete request for this long is closed.
    pub(crate) idle_timeout: Duration,
    /// A request line longer than this is refused and the client closed.
    pub(crate) max_request_bytes: usize,
}

impl Settings {
    /// Default listen address: BOLT's port on every interface.
    pub(crate) const DEFAULT_LISTEN: &'static str = "0.0.0.0:9735";
    /// Default bound on the whole shutdown.
    pub(crate) const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default one-dial timeout (connect and handshake).
    pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default number of control clients at once.
    pub(crate) const DEFAULT_MAX_CLIENTS: usize = 32;
    /// The most control clients at once that may be configured: each is
    /// a file descriptor (and far below what a semaphore can count).
    pub(crate) const MAX_MAX_CLIENTS: usize = 65_536;
    /// Default idle time before a control client is closed.
    pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default cap on one request: 1 MiB.
    pub(crate) const DEFAULT_MAX_REQUEST_BYTES: usize = 1 << 20;

    /// Reads `<data dir>/config.toml` (absent: defaults) and applies the
    /// command line over it.
    pub(crate) fn load(data_dir: &Path, args: &RunArgs) -> Result<Settings, ConfigError> {
        let path = data_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        Settings::from_toml(&path, &text, args)
    }

    fn from_toml(path: &Path, text: &str, args: &RunArgs) -> Result<Settings, ConfigError> {
        let shown = path.display().to_string();
        let file: File = basic_toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        let bad = |key: &'static str, message: String| ConfigError::Value {
            path: shown.clone(),
            key,
            message,
        };
        let addr = |key: &'static str, s: &str| {
            s.parse::<SocketAddr>()
                .map_err(|_| bad(key, format!("{s:?} is not an address like 127.0.0.1:9735")))
        };
        let duration = |key: &'static str, s: &Option<String>, default: Duration| match s {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|e| bad(key, e)),
        };

        let listen = if !args.listen.is_empty() {
            args.listen.clone()
        } else {
            let list = file
                .listen
                .clone()
                .unwrap_or_else(|| vec![Self::DEFAULT_LISTEN.into()]);
            list.iter()
                .map(|s| addr("listen", s))
                .collect::<Result<_, _>>()?
        };
        let proxy = match (args.proxy, &file.proxy) {
            (Some(p), _) => Some(p),
            (None, Some(s)) => Some(addr("proxy", s)?),
            (None, None) => None,
        };
        let proxy_all = args.proxy_all || file.proxy_all.unwrap_or(false);
        let stream_isolation = args.stream_isolation || file.stream_isolation.unwrap_or(false);
        if proxy.is_none() && proxy_all {
            return Err(bad("proxy_all", "needs `proxy`".into()));
        }
        if proxy.is_none() && stream_isolation {
            return Err(bad("stream_isolation", "needs `proxy`".into()));
        }
        let metrics = match (args.metrics, &file.metrics) {
            (Some(m), _) => Some(m),
            (None, Some(s)) => Some(addr("metrics", s)?),
            (None, None) => None,
        };
        let log_format = match (args.log_format, &file.log_format) {
            (Some(f), _) => f,
            (None, Some(s)) => match s.as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => {
                    return Err(bad(
                        "log_format",
                        format!("{s:?} is not \"pretty\" or \"json\""),
                    ))
                }
            },
            (None, None) => LogFormat::Pretty,
        };
        // A relative path in the file is relative to the data directory.
        let in_file = (file.key_file.clone()).map(|k| match path.parent() {
            Some(dir) if k.is_relative() => dir.join(k),
            _ => k,
        });
        let key_file = args.key_file.clone().or(in_file);
        let shutdown_timeout = duration(
            "shutdown_timeout",
            &file.shutdown_timeout,
            Self::DEFAULT_SHUTDOWN_TIMEOUT,
        )?;

        let p = &file.peers;
        let min = duration(
            "peers.backoff_min",
            &p.backoff_min,
            backoff::Policy::DEFAULT_MIN,
        )?;
        let max = duration(
            "peers.backoff_max",
            &p.backoff_max,
            backoff::Policy::DEFAULT_MAX,
        )?;
        let stable = duration(
            "peers.stable_after",
            &p.stable_after,
            backoff::Policy::DEFAULT_STABLE,
        )?;
        let cap = duration(
            "peers.reconnect_cap",
            &p.reconnect_cap,
            backoff::Reconnect::DEFAULT_CAP,
        )?;
        // No rounds: no reconnect phase, lnd's schedule alone.
        let reconnect = match p
            .reconnect_rounds
            .unwrap_or(backoff::Reconnect::DEFAULT_ROUNDS)
        {
            0 => backoff::Reconnect::OFF,
            rounds => backoff::Reconnect::new(cap, rounds)
                .map_err(|e| bad("peers.reconnect_cap", e.to_string()))?,
        };
        let policy = backoff::Policy::new(min, max)
            .map_err(|e| bad("peers.backoff_min", e.to_string()))?
            .with_stable(stable)
            .with_reconnect(reconnect);
        let connect_timeout = duration(
            "peers.connect_timeout",
            &p.connect_timeout,
            Self::DEFAULT_CONNECT_TIMEOUT,
        )?;
        let max_dials_in_flight = match p.max_dials_in_flight {
            None => conn_worker::Config::DEFAULT_MAX_DIALS_IN_FLIGHT,
            Some(n) => NonZeroUsize::new(n)
                .ok_or_else(|| bad("peers.max_dials_in_flight", "must be at least 1".into()))?,
        };
        let startup_batch = p
            .startup_batch
            .unwrap_or(server::Config::DEFAULT_STARTUP_BATCH);
        let startup_spread = match p.startup_spread.as_deref() {
            None => server::Config::DEFAULT_STARTUP_SPREAD,
            // No spread at all: every stored peer is dialed at once ("0",
            // "0s", "0ms", "0m"...).
            Some(s) if is_zero(s) => Duration::ZERO,
            Some(s) => {
                let d = parse_duration(s).map_err(|e| bad("peers.startup_spread", e))?;
                // The node spreads the stored peers over whole seconds: a
                // sub-second spread would be none, 1.9s would be 1s.
                if d.subsec_nanos() != 0 {
                    return Err(bad(
                        "peers.startup_spread",
                        format!("{s:?} is not 0 or a whole number of seconds"),
                    ));
                }
                d
            }
        };

        let r = &file.rpc;
        let max_clients = r.max_clients.unwrap_or(Self::DEFAULT_MAX_CLIENTS);
        if !(1..=Self::MAX_MAX_CLIENTS).contains(&max_clients) {
            return Err(bad(
                "rpc.max_clients",
                format!("must be between 1 and {}", Self::MAX_MAX_CLIENTS),
            ));
        }
        let idle_timeout = duration(
            "rpc.idle_timeout",
            &r.idle_timeout,
            Self::DEFAULT_IDLE_TIMEOUT,
        )?;
        let max_request_bytes = r
            .max_request_bytes
            .unwrap_or(Self::DEFAULT_MAX_REQUEST_BYTES);
        if !(1024..=64 << 20).contains(&max_request_bytes) {
            return Err(bad(
                "rpc.max_request_bytes",
                "must be between 1024 and 67108864".into(),
            ));
        }

        Ok(Settings {
            listen,
            proxy,
            proxy_all,
            stream_isolation,
            metrics,
            log_format,
            key_file,
            shutdown_timeout,
            peers: PeerTuning {
                policy,
                connect_timeout,
                max_dials_in_flight,
                startup_batch,
                startup_spread,
            },
            rpc: RpcLimits {
                max_clients,
                idle_timeout,
                max_request_bytes,
            },
        })
    }
}

/// Whether a duration's text is zero in any unit (`parse_duration`
/// refuses zero).
fn is_zero(s: &str) -> bool {
    let num = s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic());
    num.parse::<f64>() == Ok(0.0) && parse_duration(&s.replace(num, "1")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> RunArgs {
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            run: RunArgs,
        }
        let mut argv = vec!["run"];
        argv.extend_from_slice(extra);
        Wrap::parse_from(argv).run
    }

    fn load(text: &str, extra: &[&str]) -> Result<Settings, ConfigError> {
        Settings::from_toml(Path::new("/d/config.toml"), text, &args(extra))
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let s = load("", &[]).expect("defaults");
        assert_eq!(
            s.listen,
            vec![Settings::DEFAULT_LISTEN.parse().expect("addr")]
        );
        assert_eq!(s.metrics, None);
        assert_eq!(s.rpc.max_request_bytes, 1 << 20);
        assert_eq!(s.peers.policy, backoff::Policy::default());
    }

    #[test]
    fn command_line_wins_over_the_file() {
        let text = "listen = [\"127.0.0.1:1\"]\nmetrics = \"127.0.0.1:2\"\nlog_format = \"json\"\n";
        let s = load(
            text,
            &["--listen", "127.0.0.1:3", "--metrics", "127.0.0.1:4"],
        )
        .expect("ok");
        assert_eq!(s.listen, vec!["127.0.0.1:3".parse().expect("addr")]);
        assert_eq!(s.metrics, Some("127.0.0.1:4".parse().expect("addr")));
        assert_eq!(
            s.log_format,
            LogFormat::Json,
            "the file's value where the line is silent"
        );
        let s = load("key_file = \"my.key\"", &[]).expect("ok");
        assert_eq!(
            s.key_file,
            Some(PathBuf::from("/d/my.key")),
            "relative to the data dir"
        );
        let s = load("key_file = \"my.key\"", &["--key-file", "other.key"]).expect("ok");
        assert_eq!(s.key_file, Some(PathBuf::from("other.key")));
    }

    /// The README's sample `config.toml` is one this daemon accepts.
    #[test]
    fn the_readmes_sample_config_loads() {
        let readme = include_str!("../../../README.md");
        let start = readme.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let len = readme[start..].find("```").expect("its end");
        let s = load(&readme[start..start + len], &[]).expect("the README's sample loads");
        assert_eq!(s.peers.policy, backoff::Policy::default());
    }

    #[test]
    fn every_tuning_key_is_read() {
        let text = "[peers]\nbackoff_min = \"50ms\"\nbackoff_max = \"2s\"\nstable_after = \"1m\"\n\
                    reconnect_cap = \"1500ms\"\nreconnect_rounds = 3\n\
                    connect_timeout = \"3s\"\nmax_dials_in_flight = 4\nstartup_batch = 100\n\
                    startup_spread = \"0s\"\n[rpc]\nmax_clients = 3\nidle_timeout = \"1s\"\n\
                    max_request_bytes = 4096\n";
        let s = load(text, &[]).expect("ok");
        assert_eq!(s.peers.policy.min(), Duration::from_millis(50));
        assert_eq!(s.peers.policy.max(), Duration::from_secs(2));
        assert_eq!(s.peers.policy.stable(), Duration::from_secs(60));
        let phase = backoff::Reconnect::new(Duration::from_millis(1500), 3).expect("valid");
        assert_eq!(s.peers.policy.reconnect(), phase);
        let off = load("[peers]\nreconnect_rounds = 0\n", &[]).expect("ok");
        assert!(off.peers.policy.reconnect().is_off());
        assert_eq!(s.peers.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.peers.max_dials_in_flight.get(), 4);
        assert_eq!(s.peers.startup_batch, 100);
        assert_eq!(s.peers.startup_spread, Duration::ZERO);
        assert_eq!(s.rpc.max_clients, 3);
        assert_eq!(s.rpc.idle_timeout, Duration::from_secs(1));
        assert_eq!(s.rpc.max_request_bytes, 4096);
    }

    #[test]
    fn the_largest_max_clients_is_one_a_semaphore_holds() {
        let text = format!("[rpc]\nmax_clients = {}\n", Settings::MAX_MAX_CLIENTS);
        let s = load(&text, &[]).expect("the largest accepted");
        // What the control socket builds from it, and would panic on.
        let slots = tokio::sync::Semaphore::new(s.rpc.max_clients);
        assert_eq!(slots.available_permits(), Settings::MAX_MAX_CLIENTS);
    }

    #[test]
    fn startup_spread_is_zero_or_whole_seconds() {
        let spread = |v: &str| {
            load(&format!("[peers]\nstartup_spread = \"{v}\"\n"), &[])
                .map(|s| s.peers.startup_spread)
        };
        for zero in ["0", "0s", "0ms", "0m", "0.0s"] {
            assert_eq!(spread(zero).expect(zero), Duration::ZERO, "{zero}");
        }
        assert_eq!(spread("2000ms").expect("2s"), Duration::from_secs(2));
        assert_eq!(spread("1m").expect("1m"), Duration::from_secs(60));
        // What the node would have taken as no spread, or 1 s.
        for bad in ["500ms", "0.9s", "1.9s", "0x"] {
            let e = spread(bad).expect_err(bad).to_string();
            assert!(e.contains("peers.startup_spread"), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("lisen = []", "lisen"),
            ("metrics = 5", "metrics"),
            ("metrics = \"nowhere\"", "metrics"),
            ("log_format = \"xml\"", "log_format"),
            ("[peers]\nbackoff_min = \"0s\"", "peers.backoff_min"),
            (
                "[peers]\nbackoff_min = \"2s\"\nbackoff_max = \"1s\"",
                "peers.backoff_min",
            ),
            (
                "[peers]\nmax_dials_in_flight = 0",
                "peers.max_dials_in_flight",
            ),
            ("[rpc]\nmax_request_bytes = 1", "rpc.max_request_bytes"),
            ("[rpc]\nmax_clients = 0", "rpc.max_clients"),
            // Above what tokio's semaphore can count (it would panic).
            (
                "[rpc]\nmax_clients = 3000000000000000000",
                "rpc.max_clients",
            ),
            ("[rpc]\nmax_clients = 65537", "rpc.max_clients"),
            ("[rpc]\nidle_timeout = \"soon\"", "rpc.idle_timeout"),
            ("proxy_all = true", "proxy_all"),
        ];
        for (text, key) in cases {
            let e = load(text, &[]).expect_err(text).to_string();
            assert!(
                e.contains(key) && e.starts_with("/d/config.toml"),
                "{text:?}: {e}"
            );
        }
    }
}
