//! Runs the `lnconnd` binary: the demo, `listen` and `connect` against each
//! other on 127.0.0.1, and every kind of bad input.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

#[test]
fn demo_holds_its_invariants() {
    let out = run(&[
        "demo",
        "--duration",
        "5s",
        "--peers",
        "8",
        "--json",
        "--seed",
        "11",
    ]);
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let lines = json_lines(&out);
    assert!(
        lines.iter().all(|l| l["event"].is_string()),
        "every line has an event"
    );
    let summary = lines.last().expect("a summary line");
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["invariants_held"], true, "{summary:#}");
    assert_eq!(summary["peers"].as_array().map(Vec::len), Some(8));
}

#[test]
fn connect_exits_after_init_from_listen() {
    let listening = Listening::start(&[]);
    let out = run(&["connect", &listening.node, "--exit-after-init", "--json"]);
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let lines = json_lines(&out);
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "init" && l["features"] == ""),
        "{lines:#?}"
    );
}

#[test]
fn perm_connect_exits_after_init_too() {
    let listening = Listening::start(&["--echo"]);
    let out = run(&["connect", &listening.node, "--perm", "--exit-after-init"]);
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("init received"), "{text}");
}

#[test]
fn malformed_pubkey_is_a_usage_error() {
    let out = run(&["connect", "02abcd@127.0.0.1:9735"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad public key"), "{}", stderr(&out));
}

#[test]
fn missing_at_sign_is_a_usage_error() {
    let out = run(&["connect", "127.0.0.1:9735"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("<pubkey>@<host>"), "{}", stderr(&out));
}

const KEY: &str = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7";

#[test]
fn missing_port_defaults_to_9735() {
    // Nothing listens on 127.0.0.2:9735: the error names the default port.
    let out = run(&["connect", &format!("{KEY}@127.0.0.2"), "--timeout", "5s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("127.0.0.2:9735") && err.contains("connect failed"),
        "{err}"
    );
}

#[test]
fn host_that_does_not_resolve_is_a_clear_failure() {
    let out = run(&[
        "connect",
        &format!("{KEY}@no-such-host.invalid:9735"),
        "--timeout",
        "10s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("connect failed"), "{}", stderr(&out));
}

#[test]
fn bad_port_is_a_usage_error() {
    let out = run(&["connect", &format!("{KEY}@127.0.0.1:99999")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("bad port"), "{}", stderr(&out));
}

#[test]
fn bad_key_file_is_a_usage_error() {
    let dir = std::env::temp_dir().join(format!("lnconnd-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.key");
    std::fs::write(&bad, "not a key").expect("write");
    let out = run(&["listen", "--key-file", bad.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("64 hex characters"),
        "{}",
        stderr(&out)
    );
    let missing = dir.join("missing.key");
    let out = run(&[
        "listen",
        "--key-file",
        missing.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read key file"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_key_hex_is_a_usage_error() {
    let out = run(&["connect", &format!("{KEY}@127.0.0.1:9735"), "--key", "00"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("64 hex characters"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn wrong_key_fails_the_handshake_with_its_act() {
    // The listener is not the node with KEY: act two fails to authenticate.
    let listening = Listening::start(&[]);
    let addr = listening.node.split_once('@').expect("pubkey@addr").1;
    let out = run(&["connect", &format!("{KEY}@{addr}"), "--timeout", "10s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("handshake failed") && err.contains("act two"),
        "{err}"
    );
}

#[test]
fn demo_options_work_without_the_subcommand() {
    let out = run(&["--duration", "2s", "--peers", "2", "--json", "--seed", "3"]);
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let lines = json_lines(&out);
    assert_eq!(
        lines.last().map(|l| l["event"].clone()),
        Some("summary".into())
    );
}

#[test]
fn help_reads_well() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["demo", "connect", "listen", "--json"] {
        assert!(text.contains(word), "{text}");
    }
}

#[test]
fn sigterm_stops_the_demo_with_a_summary() {
    let mut child = lnconnd()
        .args([
            "demo",
            "--duration",
            "10m",
            "--peers",
            "4",
            "--json",
            "--seed",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the started line");
    assert!(line.contains("\"started\""), "{line}");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read the rest");
    let status = child.wait().expect("wait");
    let summary: Value =
        serde_json::from_str(rest.lines().last().expect("a summary")).expect("JSON");
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["interrupted"], true);
    assert_eq!(
        summary["invariants"]["no_dial_after_stop"], true,
        "{summary:#}"
    );
    assert_eq!(status.success(), summary["invariants_held"] == true);
}

/// `listen --json` reports a refused inbound handshake: its act, the spec's
/// failure code and the remote address.
#[test]
fn listen_json_prints_a_failed_inbound_handshake() {
    use std::io::Write;
    use std::sync::mpsc;
    use std::time::Duration;

    let mut child = lnconnd()
        .args(["listen", "--bind", "127.0.0.1:0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn listen");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || -> Value {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a line from listen");
        serde_json::from_str(&line).expect("JSON")
    };
    let listening = next();
    assert_eq!(listening["event"], "listening", "{listening}");
    let addr = listening["addr"].as_str().expect("addr").to_owned();
    let mut client = std::net::TcpStream::connect(&addr).expect("connect");
    let mut act_one = [0u8; 50];
    act_one[0] = 1; // a version BOLT 8 does not know
    client.write_all(&act_one).expect("act one");
    let failed = next();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(failed["event"], "handshake_failed", "{failed}");
    assert_eq!(failed["code"], "ACT1_BAD_VERSION", "{failed}");
    assert_eq!(failed["act"], 1, "{failed}");
    assert_eq!(failed["category"], "peer", "{failed}");
    assert_eq!(
        failed["remote_addr"],
        client.local_addr().expect("local addr").to_string(),
        "{failed}"
    );
}
