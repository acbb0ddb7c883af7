//! `lnconnd connect --proxy`: reaching a `lnconnd listen` through a SOCKS5
//! proxy on 127.0.0.1, a real one (microsocks) and a fake one that maps an
//! onion name to the listener.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use testkit::socks::{FakeSocks5, Microsocks};

const ONION: &str = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";

fn lnconnd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lnconnd"));
    c.stdin(Stdio::null());
    c
}

fn run(args: &[&str]) -> Output {
    lnconnd().args(args).output().expect("run lnconnd")
}

/// Runs lnconnd on a blocking thread, so a fake proxy on this runtime
/// keeps serving.
async fn run_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || lnconnd().args(&args).output().expect("run lnconnd"))
        .await
        .expect("the blocking task ran")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A `listen` process: its public key and address.
struct Listening {
    child: Child,
    pubkey: String,
    addr: String,
}

impl Listening {
    fn start() -> Self {
        let mut child = lnconnd()
            .args(["listen", "--bind", "127.0.0.1:0", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn listen");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("read the listening line");
        let v: Value = serde_json::from_str(&first).expect("JSON");
        assert_eq!(v["event"], "listening", "{first}");
        Listening {
            child,
            pubkey: v["pubkey"].as_str().expect("pubkey").to_owned(),
            addr: v["addr"].as_str().expect("addr").to_owned(),
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_init_received(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\n{}",
        out.status,
        stderr(out)
    );
    let lines = json_lines(out);
    assert!(lines.iter().any(|l| l["event"] == "init"), "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reaches_an_onion_address_through_the_proxy() {
    let listening = Listening::start();
    let fake = FakeSocks5::forwarding_to(listening.addr.parse().expect("addr"))
        .await
        .expect("fake proxy");
    let out = run_async(vec![
        "connect".into(),
        format!("{}@{ONION}:9735", listening.pubkey),
        "--proxy".into(),
        fake.addr().to_string(),
        "--stream-isolation".into(),
        "--exit-after-init".into(),
        "--json".into(),
    ])
    .await;
    assert_init_received(&out);
    let seen = fake.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].atyp, seen[0].host.as_str()), (3, ONION));
    assert_eq!(seen[0].port, 9735);
    assert!(seen[0].credentials.is_some(), "stream isolation asked for");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perm_connect_reaches_an_onion_address_through_the_proxy() {
    let listening = Listening::start();
    let fake = FakeSocks5::forwarding_to(listening.addr.parse().expect("addr"))
        .await
        .expect("fake proxy");
    let out = run_async(vec![
        "connect".into(),
        format!("{}@{ONION}", listening.pubkey),
        "--proxy".into(),
        fake.addr().to_string(),
        "--perm".into(),
        "--exit-after-init".into(),
        "--json".into(),
    ])
    .await;
    assert_init_received(&out);
    let lines = json_lines(&out);
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "connected" && l["addr"] == format!("{ONION}:9735")),
        "{lines:#?}"
    );
    assert_eq!(fake.requests()[0].host, ONION);
}

#[test]
fn connect_reaches_listen_through_microsocks() {
    let Some(proxy) = Microsocks::start(None) else {
        return;
    };
    let listening = Listening::start();
    let node = format!("{}@{}", listening.pubkey, listening.addr);
    let proxy = proxy.addr().to_string();
    let out = run(&[
        "connect",
        &node,
        "--proxy",
        &proxy,
        "--proxy-all",
        "--exit-after-init",
        "--json",
    ]);
    assert_init_received(&out);
}

#[test]
fn proxy_all_really_goes_through_the_proxy() {
    // A proxy that wants a password we do not have: the connect must fail
    // there, which it could not if it went around the proxy.
    let Some(proxy) = Microsocks::start(Some(("user", "pass"))) else {
        return;
    };
    let listening = Listening::start();
    let node = format!("{}@{}", listening.pubkey, listening.addr);
    let proxy = proxy.addr().to_string();
    let out = run(&["connect", &node, "--proxy", &proxy, "--proxy-all"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("authentication"), "{}", stderr(&out));
}

#[test]
fn onion_without_a_proxy_is_refused_with_the_reason() {
    let key = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7";
    for perm in [false, true] {
        let node = format!("{key}@{ONION}:9735");
        let mut args = vec!["connect", &node];
        if perm {
            args.push("--perm");
        }
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("SOCKS5 proxy") && err.contains("--proxy"),
            "{err}"
        );
    }
}

#[test]
fn proxy_options_are_checked() {
    let key = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7";
    let node = format!("{key}@127.0.0.1:9735");
    let out = run(&["connect", &node, "--proxy-all"]);
    assert_eq!(out.status.code(), Some(2), "--proxy-all needs --proxy");
    let out = run(&["connect", &node, "--proxy", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[
        "connect",
        &format!("{key}@expyuzz4wqqyqhjn.onion"),
        "--proxy",
        "127.0.0.1:9050",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("v2"), "{}", stderr(&out));
}
