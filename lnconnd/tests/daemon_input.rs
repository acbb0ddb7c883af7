//! Bad input on the daemon's control socket and at its startup: each is a
//! JSON-RPC error or a closed socket, the daemon keeps serving, and the
//! store is left as it was.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;

use common::daemon::*;
use common::lnconnd;
use serde_json::Value;

/// A raw client of the control socket.
struct Raw {
    write: UnixStream,
    read: BufReader<UnixStream>,
}

impl Raw {
    fn open(dir: &DataDir) -> Raw {
        let write = UnixStream::connect(dir.socket()).expect("connect to the socket");
        write.set_read_timeout(Some(SAFETY)).expect("timeout");
        let read = BufReader::new(write.try_clone().expect("clone"));
        Raw { write, read }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).expect("send");
    }

    /// The next line, parsed; `None` at end of stream.
    fn reply(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = self
            .read
            .read_line(&mut line)
            .expect("read (not a timeout)");
        (n > 0).then(|| serde_json::from_str(&line).expect("a JSON reply"))
    }

    fn call(&mut self, line: &str) -> Value {
        self.send(format!("{line}\n").as_bytes());
        self.reply().expect("a reply")
    }

    /// Reads to the end of the stream: whether the daemon closed it (a
    /// reset counts: it closed with our bytes still unread).
    fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.read.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

fn error_code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("an error: {v}"))
}

/// A valid key of no peer here.
const OTHER: &str = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7";

const GETINFO: &str = r#"{"jsonrpc":"2.0","id":1,"method":"getinfo"}"#;

const LIMITS: &str = "[rpc]\nmax_clients = 4\nidle_timeout = \"300ms\"\nmax_request_bytes = 4096\n";

#[test]
fn bad_requests_get_errors_and_change_nothing() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = DataDir::new("input", &format!("{FAST}{LIMITS}"));
    let daemon = Daemon::start(&dir);
    let peer = Peer::start(&rt, 7, "127.0.0.1:0".parse().expect("addr"));
    cli(&dir, &["connect", "--perm", &peer.node()]);
    cli(&dir, &["ban", OTHER]);
    let store = stored_by_users(&dir.0);
    assert_eq!(store.len(), 3, "a peer, its address and a ban: {store:?}");

    let mut c = Raw::open(&dir);
    // Each error leaves the connection usable.
    let cases = [
        ("{not json", -32700),
        ("[1, 2]", -32600),
        (r#"{"jsonrpc":"2.0","id":2}"#, -32600),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"nosuchmethod"}"#,
            -32601,
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"connect","params":{"id":5}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"connect","params":{"id":"x","perm":"yes"}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"connect","params":["zz@127.0.0.1:1"]}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"ban","params":{"id":["x"]}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"forget","params":{"id":"02ab"}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"unban","params":"x"}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"listpeers","params":{"id":"x","extra":1}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":5,"method":"getinfo","params":{"verbose":true}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":6,"method":"disconnect","params":{"id":"028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7"}}"#,
            404,
        ),
    ];
    for (line, code) in cases {
        let r = c.call(line);
        assert_eq!(error_code(&r), code, "{line}: {r}");
        assert_eq!(
            c.call(GETINFO)["result"]["id"],
            daemon.pubkey(),
            "still serving"
        );
    }

    // Not UTF-8: an error, then the connection is closed.
    let mut c = Raw::open(&dir);
    c.send(b"\xff\xfe{}\n");
    assert_eq!(error_code(&c.reply().expect("a reply")), -32700);
    assert!(c.closed());

    // Larger than the cap: an error, then closed, before the line ends.
    let mut c = Raw::open(&dir);
    let huge = vec![b'x'; 64 * 1024];
    // The daemon may close while this is still being written.
    let _ = c.write.write_all(&huge);
    assert_eq!(error_code(&c.reply().expect("a reply")), -32001);
    assert!(c.closed());

    // Silent: closed after the idle timeout, with nothing sent.
    let mut c = Raw::open(&dir);
    assert_eq!(c.reply(), None, "closed without a word");

    // Many at once: the first four hold their slots (subscribers are never
    // idle), the rest are told so and closed; once they leave, service
    // resumes.
    let mut held: Vec<Raw> = (0..4)
        .map(|_| {
            let mut c = Raw::open(&dir);
            let r = c.call(r#"{"jsonrpc":"2.0","id":1,"method":"subscribe"}"#);
            assert_eq!(r["result"]["subscribed"], true, "{r}");
            c
        })
        .collect();
    for _ in 0..20 {
        let mut c = Raw::open(&dir);
        assert_eq!(error_code(&c.reply().expect("told")), -32002);
        assert!(c.closed());
    }
    held.clear();
    let mut served = false;
    for _ in 0..10_000 {
        let mut c = Raw::open(&dir);
        c.send(format!("{GETINFO}\n").as_bytes());
        match c.reply() {
            Some(r) if r.get("result").is_some() => {
                served = true;
                break;
            }
            // Slots are freed as the daemon sees each subscriber go.
            Some(r) => assert_eq!(error_code(&r), -32002),
            None => {}
        }
    }
    assert!(served, "served again once the clients left");

    assert_eq!(
        stored_by_users(&dir.0),
        store,
        "nothing changed in the store"
    );
    let list = cli(&dir, &["peers"]);
    let ids: Vec<&str> = (list["peers"].as_array().expect("peers").iter())
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{list}");
    assert!(
        ids.contains(&peer.pubkey().as_str()) && ids.contains(&OTHER),
        "{list}"
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());
    peer.kill(&rt);
}

#[test]
fn a_live_daemon_holds_its_socket_and_a_stale_one_is_replaced() {
    let dir = DataDir::new("socket", "listen = [\"127.0.0.1:0\"]\n");
    let first = Daemon::start(&dir);
    let out = lnconnd()
        .args(["run", "--data-dir", dir.path()])
        .output()
        .expect("run a second daemon");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already running"), "{err}");
    // The first still serves; `stop` ends it.
    let r = cli(&dir, &["stop"]);
    assert_eq!(r["result"], "shutting down", "{r}");
    let (status, last) = first.wait();
    assert!(status.success(), "{last}");
    assert!(!dir.socket().exists());

    // A socket nobody answers on (a daemon that was killed) is removed.
    drop(std::os::unix::net::UnixListener::bind(dir.socket()).expect("a stale socket"));
    assert!(dir.socket().exists());
    let again = Daemon::start(&dir);
    assert_eq!(cli(&dir, &["getinfo"])["id"], again.pubkey());
    let (status, _) = again.terminate();
    assert!(status.success());
}

/// `lnconnd stop && lnconnd run` never runs two daemons on one data dir:
/// `stop` returns once the old daemon released the directory's lock, a
/// `run` while the lock is held (a daemon still shutting down) is refused
/// and touches nothing, and the old daemon's exit leaves the new one's
/// socket alone.
#[test]
fn stop_then_run_never_overlaps_two_daemons() {
    let dir = DataDir::new("restart", "listen = [\"127.0.0.1:0\"]\n");
    let first = Daemon::start(&dir);
    let r = cli(&dir, &["stop"]);
    assert_eq!(r["result"], "shutting down", "{r}");
    // `stop` has returned: the old daemon no longer holds the lock.
    let lock = std::fs::File::options()
        .read(true)
        .write(true)
        .open(dir.0.join("lnconnd.lock"))
        .expect("the daemon's lock file");
    lock.try_lock()
        .expect("the lock is free once `stop` returned");
    // Held (as by a daemon still shutting down): a `run` is refused.
    let out = lnconnd()
        .args(["run", "--data-dir", dir.path()])
        .output()
        .expect("run a second daemon");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("still shutting down"), "{err}");
    assert!(!dir.socket().exists(), "the refused daemon bound nothing");
    drop(lock);

    let second = Daemon::start(&dir);
    let (status, last) = first.wait();
    assert!(status.success(), "{last}");
    assert!(
        dir.socket().exists(),
        "the old daemon's exit kept the new socket"
    );
    assert_eq!(cli(&dir, &["getinfo"])["id"], second.pubkey());
    let (status, _) = second.terminate();
    assert!(status.success());
    assert!(!dir.socket().exists(), "its own socket is removed");
}

#[test]
fn startup_refuses_an_exposed_key_and_a_bad_config() {
    use std::os::unix::fs::PermissionsExt;
    let dir = DataDir::new("refuse", "[peers]\nbackoff_min = \"fast\"\n");
    let out = lnconnd()
        .args(["run", "--data-dir", dir.path()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.toml") && err.contains("peers.backoff_min"),
        "{err}"
    );

    std::fs::write(dir.0.join("config.toml"), "listen = [\"127.0.0.1:0\"]\n").expect("config");
    let key = dir.0.join("mine.key");
    std::fs::write(&key, "11".repeat(32)).expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = lnconnd()
        .args(["run", "--data-dir", dir.path(), "--key-file"])
        .arg(&key)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readable by others"), "{err}");
    assert!(!dir.socket().exists(), "nothing left behind");
}

#[test]
fn connect_to_a_data_dir_without_a_daemon_says_so() {
    let dir = DataDir::new("nodaemon", "");
    let node = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7@127.0.0.1:9735";
    let out = lnconnd()
        .args(["connect", node, "--data-dir", dir.path()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no daemon runs") && err.contains("--direct"),
        "{err}"
    );
    let out = lnconnd()
        .args(["peers", "--data-dir", dir.path()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lnconnd run"), "{err}");
}

#[test]
fn help_lists_the_daemon_commands() {
    let out = lnconnd().arg("--help").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "run",
        "getinfo",
        "peers",
        "disconnect",
        "forget",
        "ban",
        "unban",
        "events",
        "stop",
        "call",
    ] {
        assert!(text.contains(&format!("  {word} ")), "{word} in\n{text}");
    }
    let out = lnconnd().args(["run", "--help"]).output().expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--data-dir",
        "--listen",
        "--proxy",
        "--metrics",
        "--log-format",
        "--key-file",
    ] {
        assert!(text.contains(flag), "{flag} in\n{text}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = DataDir::new(
        "logs",
        "listen = [\"127.0.0.1:0\"]\nlog_format = \"json\"\n",
    );
    let daemon = Daemon::start(&dir);
    cli(&dir, &["stop"]);
    let (status, _) = daemon.wait();
    assert!(status.success());
    let log = std::fs::read_to_string(dir.0.join("daemon.log")).expect("the log");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "lnconnd running"),
        "{log}"
    );
    assert!(lines.iter().all(|l| l["level"].is_string()), "{log}");
}

#[test]
fn call_sends_any_request_and_reports_its_error() {
    let dir = DataDir::new("call", "listen = [\"127.0.0.1:0\"]\n");
    let daemon = Daemon::start(&dir);
    let out = lnconnd()
        .args(["call", "getinfo", "--data-dir", dir.path()])
        .output()
        .expect("run");
    assert!(out.status.success());
    let info: Value = serde_json::from_slice(&out.stdout).expect("pretty JSON");
    assert_eq!(info["id"], daemon.pubkey());
    for (args, want) in [
        (vec!["call", "listpeers", r#"["zz"]"#], "code -32602"),
        (vec!["call", "nosuch"], "code -32601"),
        (vec!["call", "getinfo", "{not json"], "not JSON"),
    ] {
        let out = lnconnd()
            .args(&args)
            .args(["--data-dir", dir.path()])
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

/// The facts of stored peers at startup are not lost: a stored onion
/// address with no proxy configured any more is skipped as the daemon
/// opens its store, before any client could subscribe, and the daemon
/// logs it.
#[test]
fn a_stored_peers_skipped_address_at_startup_is_logged() {
    const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";
    // A proxy nobody runs: the onion address is accepted and stored.
    let dir = DataDir::new(
        "skipped",
        "listen = [\"127.0.0.1:0\"]\nproxy = \"127.0.0.1:1\"\n",
    );
    let first = Daemon::start(&dir);
    let node = format!("{OTHER}@{ONION}:9735");
    let r = cli(&dir, &["connect", "--perm", "--no-wait", &node]);
    assert_eq!(r["id"], OTHER, "{r}");
    assert_eq!(cli(&dir, &["stop"])["result"], "shutting down");
    let (status, _) = first.wait();
    assert!(status.success());
    assert_eq!(stored_peers(&dir.0), [OTHER]);
    // As if the peer had announced it (the node reports the announced
    // addresses it skips).
    let db = rusqlite::Connection::open(dir.0.join("peers.sqlite")).expect("the store");
    let moved = db
        .execute("UPDATE peer_addr SET kind = 'advertised'", [])
        .expect("update");
    assert_eq!(moved, 1);
    drop(db);

    // Without the proxy: the stored address cannot be dialed.
    std::fs::write(dir.0.join("config.toml"), "listen = [\"127.0.0.1:0\"]\n").expect("config");
    let second = Daemon::start(&dir);
    // Every fact the daemon received is logged before it exits.
    let (status, _) = second.terminate();
    assert!(status.success());
    let log = std::fs::read_to_string(dir.0.join("daemon.log")).expect("the log");
    let skipped = log
        .lines()
        .find(|l| l.contains("address skipped"))
        .unwrap_or_else(|| panic!("no skipped address logged:\n{log}"));
    assert!(
        skipped.contains(ONION) && skipped.contains(OTHER),
        "{skipped}"
    );
}

/// A one-off `connect --timeout` through the daemon gives up after it,
/// not after the config's much longer connect timeout (nor the handshake's
/// own act timeout).
#[test]
fn a_one_off_connect_keeps_its_timeout_through_the_daemon() {
    let dir = DataDir::new(
        "oneoff",
        "listen = [\"127.0.0.1:0\"]\n[peers]\nconnect_timeout = \"1h\"\n",
    );
    let _daemon = Daemon::start(&dir);
    // Completes TCP (the kernel's backlog) and never answers the handshake.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let node = format!("{OTHER}@{}", silent.local_addr().expect("addr"));
    let out = lnconnd()
        .args([
            "connect",
            &node,
            "--timeout",
            "1s",
            "--data-dir",
            dir.path(),
        ])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("dial timed out"), "{err}");
    // Refused before it reaches the daemon, which takes at most a day.
    let out = lnconnd()
        .args([
            "connect",
            &node,
            "--timeout",
            "48h",
            "--data-dir",
            dir.path(),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// `lnconnd call` into a closed pipe (`| head -0`) exits without a
/// panic, on success and on the error path alike.
#[test]
fn call_into_a_closed_pipe_does_not_panic() {
    let dir = DataDir::new("epipe", "listen = [\"127.0.0.1:0\"]\n");
    let _daemon = Daemon::start(&dir);
    for (args, code) in [
        (&["call", "getinfo"][..], 0),
        (&["call", "nosuchmethod", "--json"][..], 1),
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = lnconnd()
            .args(args)
            .args(["--data-dir", dir.path()])
            .stdout(writer)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
