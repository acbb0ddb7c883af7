//! `lnconnd run` end to end on 127.0.0.1: 20 perm peers added through the
//! CLI, half of them killed and retried, metrics scraped, the daemon
//! restarted from its store and stopped with SIGTERM.

mod common;

use std::collections::HashSet;

use common::daemon::*;
use serde_json::Value;

fn peers(dir: &DataDir) -> Vec<Value> {
    let v = cli(dir, &["peers"]);
    v["peers"].as_array().expect("a peer list").clone()
}

fn by_id<'a>(list: &'a [Value], id: &str) -> &'a Value {
    list.iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed"))
}

#[test]
fn twenty_perm_peers_kept_through_kills_and_a_restart() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = DataDir::new("e2e", FAST);
    let daemon = Daemon::start(&dir);
    let ours = daemon.pubkey().to_owned();

    // 20 peers, added through the CLI; each `connect` waits until connected.
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let mut live: Vec<Peer> = (1..=20).map(|i| Peer::start(&rt, i, any)).collect();
    for p in &live {
        let r = cli(&dir, &["connect", "--perm", &p.node()]);
        assert_eq!(r["connected"], true, "{r}");
        assert_eq!(r["id"], p.pubkey());
    }
    let list = peers(&dir);
    assert_eq!(list.len(), 20);
    for p in &live {
        let v = by_id(&list, &p.pubkey());
        assert_eq!(v["state"], "connected", "{v}");
        assert_eq!(v["persistent"], "perm", "{v}");
        assert_eq!(v["direction"], "outbound", "{v}");
        assert_eq!(v["addresses"][0], p.addr.to_string(), "{v}");
        assert_eq!(v["why_not_connected"], Value::Null, "{v}");
    }

    // Kill half: each is reported down with a reason and dialed again.
    let mut events = Events::subscribe(&dir);
    let killed: Vec<Peer> = live.drain(..10).collect();
    let killed_ids: Vec<String> = killed.iter().map(Peer::pubkey).collect();
    let addrs: Vec<_> = killed.iter().map(|p| (p.secret, p.addr)).collect();
    for p in killed {
        p.kill(&rt);
    }
    events.until_each(&killed_ids, |e| e["event"] == "dial_failed");
    let list = peers(&dir);
    for id in &killed_ids {
        let v = by_id(&list, id);
        assert_eq!(v["connected"], false, "{v}");
        assert!(
            v["state"] == "waiting" || v["state"] == "dialing",
            "retried: {v}"
        );
        assert_eq!(v["last_error"]["category"], "network", "{v}");
        let why = v["why_not_connected"].as_str().expect("a reason");
        assert!(why.contains("connect failed"), "{why}");
        assert!(v["attempts"].as_u64() >= Some(1), "{v}");
    }
    for p in &live {
        assert_eq!(by_id(&list, &p.pubkey())["state"], "connected");
    }
    let m = scrape(daemon.metrics());
    assert!(sample(&m, "lnconnd_dials_started_total") >= 30.0, "{m}");
    assert!(
        sample(&m, "lnconnd_dials_failed_total{category=\"network\"}") >= 10.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "lnconnd_connections_total{direction=\"outbound\"}"),
        20.0
    );
    assert_eq!(
        sample(&m, "lnconnd_disconnections_total{direction=\"outbound\"}"),
        10.0
    );
    assert_eq!(sample(&m, "lnconnd_peers{state=\"connected\"}"), 10.0);
    assert_eq!(sample(&m, "lnconnd_reconnect_latency_seconds_count"), 0.0);

    // The killed peers come back at their addresses: reconnected, and the
    // latency from disconnect to connection is recorded.
    let revived: Vec<Peer> = addrs
        .iter()
        .zip(1..)
        .map(|((_, addr), i)| Peer::start(&rt, i, *addr))
        .collect();
    events.until_each(&killed_ids, |e| e["event"] == "connected");
    live.extend(revived);
    let m = scrape(daemon.metrics());
    assert_eq!(
        sample(&m, "lnconnd_reconnect_latency_seconds_count"),
        10.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "lnconnd_peers{state=\"connected\"}"),
        20.0,
        "{m}"
    );
    drop(events);

    // SIGTERM: a clean stop, the socket gone, the store holding all 20.
    let (status, last) = daemon.terminate();
    assert!(status.success(), "{status:?} {last}");
    assert_eq!(last["event"], "stopped");
    assert_eq!(last["clean"], true);
    assert!(!dir.socket().exists(), "the socket is removed");
    let stored: HashSet<String> = stored_peers(&dir.0).into_iter().collect();
    let all: HashSet<String> = live.iter().map(Peer::pubkey).collect();
    assert_eq!(stored, all);
    let last_good = stored_last_good(&dir.0);
    for p in &live {
        assert_eq!(last_good.get(&p.pubkey()), Some(&p.addr.to_string()));
    }

    // Restart: the same node, all 20 back from the store with no re-add.
    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.pubkey(), ours, "the key is kept in the data dir");
    assert_eq!(daemon.started["stored_peers"], 20);
    let mut events = Events::subscribe(&dir);
    let list = peers(&dir);
    let waiting: Vec<String> = list
        .iter()
        .filter(|p| p["connected"] != true)
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .collect();
    events.until_each(&waiting, |e| e["event"] == "connected");
    let list = peers(&dir);
    assert_eq!(list.len(), 20);
    for p in &live {
        let v = by_id(&list, &p.pubkey());
        assert_eq!(v["state"], "connected", "{v}");
        assert_eq!(v["persistent"], "perm", "{v}");
        assert_eq!(v["address"], p.addr.to_string(), "{v}");
        assert_eq!(v["addresses"][0], p.addr.to_string(), "{v}");
    }
    drop(events);
    // A bare key is dialed at its stored address.
    let params = format!(r#"{{"id":"{}","perm":true}}"#, live[0].pubkey());
    let r = cli(&dir, &["call", "connect", &params]);
    assert_eq!(r["address"], live[0].addr.to_string(), "{r}");
    let (status, last) = daemon.terminate();
    assert!(status.success(), "{status:?} {last}");
    for p in live {
        p.kill(&rt);
    }
}

#[test]
fn banned_peers_dialing_in_are_refused_and_counted() {
    use brontide::{DialConfig, NodeKeyPair, PublicKey, SecretKey};
    use std::str::FromStr;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = DataDir::new("ban", FAST);
    let daemon = Daemon::start(&dir);
    let ours = PublicKey::from_str(daemon.pubkey()).expect("key");
    let at: std::net::SocketAddr = daemon.started["listen"][0]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("listen address");
    let them = NodeKeyPair::new(SecretKey::from_slice(&[9; 32]).expect("key"));
    let id = them.public_key().to_string();
    let dial = || {
        rt.block_on(brontide::dial(
            at,
            &them,
            &ours,
            &DialConfig::default(),
            &brontide::CancellationToken::new(),
        ))
        .expect("the handshake completes")
    };

    let r = cli(&dir, &["ban", &id]);
    assert_eq!(r["banned"], true, "{r}");
    let mut events = Events::subscribe(&dir);
    let refused = dial();
    events.until_each(std::slice::from_ref(&id), |e| {
        e["event"] == "refused_banned"
    });
    drop(refused);
    let m = scrape(daemon.metrics());
    assert_eq!(
        sample(
            &m,
            "lnconnd_inbound_handshakes_total{outcome=\"refused_banned\"}"
        ),
        1.0
    );
    let v = cli(&dir, &["peers", &id]);
    assert_eq!(v["peers"][0]["banned"], true, "{v}");

    cli(&dir, &["unban", &id]);
    let kept = dial();
    events.until_each(std::slice::from_ref(&id), |e| e["event"] == "connected");
    let m = scrape(daemon.metrics());
    assert_eq!(
        sample(&m, "lnconnd_inbound_handshakes_total{outcome=\"accepted\"}"),
        1.0
    );
    let v = cli(&dir, &["peers", &id]);
    assert_eq!(v["peers"][0]["direction"], "inbound", "{v}");
    assert_eq!(v["peers"][0]["state"], "connected", "{v}");
    assert_eq!(v["peers"][0]["persistent"], Value::Null, "{v}");
    drop(kept);

    // A bad act one (version 1): failed, counted by its spec code.
    {
        use std::io::Write;
        let mut bad = std::net::TcpStream::connect(at).expect("connect");
        let mut act = [0u8; 50];
        act[0] = 1;
        bad.write_all(&act).expect("send act one");
    }
    let failed = (0..1000)
        .map(|_| events.next())
        .find(|e| e["event"] == "inbound_failed")
        .expect("the failure reported");
    assert_eq!(failed["code"], "ACT1_BAD_VERSION", "{failed}");
    let m = scrape(daemon.metrics());
    assert_eq!(
        sample(&m, "lnconnd_inbound_handshakes_total{outcome=\"failed\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "lnconnd_inbound_handshake_failures_total{code=\"ACT1_BAD_VERSION\"}"
        ),
        1.0,
        "{m}"
    );
    drop(events);
    let (status, _) = daemon.terminate();
    assert!(status.success());
}

#[test]
fn one_off_connect_forget_and_disconnect_through_the_daemon() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = DataDir::new("ops", FAST);
    let daemon = Daemon::start(&dir);
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let (a, b) = (Peer::start(&rt, 31, any), Peer::start(&rt, 32, any));

    // One-off: connected, not persistent, not stored.
    let r = cli(&dir, &["connect", &a.node()]);
    assert_eq!(
        (r["connected"].clone(), r["perm"].clone()),
        (true.into(), false.into()),
        "{r}"
    );
    let v = cli(&dir, &["peers", &a.pubkey()]);
    assert_eq!(v["peers"][0]["persistent"], Value::Null, "{v}");
    assert!(stored_peers(&dir.0).is_empty());

    // Forget a perm peer: no longer stored nor persistent, still connected.
    cli(&dir, &["connect", "--perm", &b.node()]);
    assert_eq!(stored_peers(&dir.0), vec![b.pubkey()]);
    let r = cli(&dir, &["forget", &b.pubkey()]);
    assert_eq!(r["was_persistent"], true, "{r}");
    assert!(stored_peers(&dir.0).is_empty());
    let v = cli(&dir, &["peers", &b.pubkey()]);
    assert_eq!(v["peers"][0]["state"], "connected", "{v}");
    assert_eq!(v["peers"][0]["persistent"], Value::Null, "{v}");

    // A bare key needs a stored address: B's went with `forget`.
    let params = format!(r#"{{"id":"{}","perm":true}}"#, b.pubkey());
    let out = common::lnconnd()
        .args(["call", "connect", &params, "--data-dir", dir.path()])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no known address") && err.contains("code 400"),
        "{err}"
    );

    // Disconnect: the connection is closed and nothing redials it.
    for p in [&a, &b] {
        cli(&dir, &["disconnect", &p.pubkey()]);
    }
    let v = cli(&dir, &["peers"]);
    assert_eq!(v["peers"], serde_json::json!([]), "{v}");
    let out = common::lnconnd()
        .args(["disconnect", &a.pubkey(), "--data-dir", dir.path()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not connected") && err.contains("code 404"),
        "{err}"
    );
    // A one-off dial that fails is an error, and counted like the workers'.
    let gone = Peer::start(&rt, 33, any);
    let gone_node = gone.node();
    gone.kill(&rt);
    let out = common::lnconnd()
        .args(["connect", &gone_node, "--data-dir", dir.path()])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("connect failed") && err.contains("code 401"),
        "{err}"
    );
    let m = scrape(daemon.metrics());
    assert_eq!(
        sample(&m, "lnconnd_connections_total{direction=\"outbound\"}"),
        2.0
    );
    assert_eq!(sample(&m, "lnconnd_dials_started_total"), 3.0, "{m}");
    assert_eq!(
        sample(&m, "lnconnd_dials_failed_total{category=\"network\"}"),
        1.0,
        "{m}"
    );

    let (status, _) = daemon.terminate();
    assert!(status.success());
    a.kill(&rt);
    b.kill(&rt);
}

/// Two listeners with one key: a peer reachable at two addresses.
struct TwoAddrPeer {
    first: Peer,
    second: Peer,
}

#[test]
fn after_a_restart_each_peer_is_dialed_first_at_its_last_good_address() {
    const PEERS: u8 = 20;
    const MOVED: usize = 5;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // One dial at a time per peer: the first address tried is the one
    // connected to, unless it fails.
    let dir = DataDir::new(
        "lastgood",
        &FAST.replace("[peers]\n", "[peers]\nmax_dials_in_flight = 1\n"),
    );
    let daemon = Daemon::start(&dir);
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let stay: Vec<TwoAddrPeer> = (40..40 + PEERS)
        .map(|i| TwoAddrPeer {
            first: Peer::start(&rt, i, any),
            second: Peer::start(&rt, i, any),
        })
        .collect();
    // Connected at the first address; the second given after, so it is
    // the first among the user-given ones.
    for p in &stay {
        let r = cli(&dir, &["connect", "--perm", &p.first.node()]);
        assert_eq!(r["address"], p.first.addr.to_string(), "{r}");
        let r = cli(&dir, &["connect", "--perm", &p.second.node()]);
        assert_eq!(r["connected"], true, "{r}");
        assert_eq!(
            r["address"],
            p.first.addr.to_string(),
            "still at the first: {r}"
        );
    }
    let (status, _) = daemon.terminate();
    assert!(status.success());
    let last_good = stored_last_good(&dir.0);
    for p in &stay {
        assert_eq!(
            last_good.get(&p.first.pubkey()),
            Some(&p.first.addr.to_string())
        );
    }

    // Five peers move: no longer listening at their last good address.
    let mut stay = stay;
    let moved: Vec<TwoAddrPeer> = stay.drain(..MOVED).collect();
    let moved: Vec<Peer> = moved
        .into_iter()
        .map(|p| {
            p.first.kill(&rt);
            p.second
        })
        .collect();

    let daemon = Daemon::start(&dir);
    assert_eq!(daemon.started["stored_peers"], u64::from(PEERS));
    let mut events = Events::subscribe(&dir);
    let waiting: Vec<String> = (cli(&dir, &["peers"])["peers"].as_array())
        .expect("peers")
        .iter()
        .filter(|p| p["connected"] != true)
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .collect();
    events.until_each(&waiting, |e| e["event"] == "connected");
    drop(events);
    let list = peers(&dir);
    assert_eq!(list.len(), usize::from(PEERS));
    // The others: dialed first at their last good address (not at the
    // user-given address listed first), and connected there.
    for p in &stay {
        let v = by_id(&list, &p.first.pubkey());
        assert_eq!(v["state"], "connected", "{v}");
        assert_eq!(v["address"], p.first.addr.to_string(), "{v}");
        assert_eq!(v["addresses"][0], p.first.addr.to_string(), "{v}");
    }
    // The moved ones: reached at their other address.
    for p in &moved {
        let v = by_id(&list, &p.pubkey());
        assert_eq!(v["state"], "connected", "{v}");
        assert_eq!(v["address"], p.addr.to_string(), "{v}");
    }
    let (status, _) = daemon.terminate();
    assert!(status.success());
    // Their new last good address is stored.
    let last_good = stored_last_good(&dir.0);
    for p in &moved {
        assert_eq!(last_good.get(&p.pubkey()), Some(&p.addr.to_string()));
    }
    for p in moved {
        p.kill(&rt);
    }
    for p in stay {
        p.first.kill(&rt);
        p.second.kill(&rt);
    }
}

#[test]
fn a_corrupt_or_newer_store_stops_the_start_and_is_left_untouched() {
    let dir = DataDir::new("corrupt", FAST);
    let path = dir.0.join("peers.sqlite");
    let garbage: Vec<u8> = (0..16_384u32).map(|i| (i * 7 + 3) as u8).collect();
    // A store of schema version 99 ("lnps" is the peer store's application id).
    let newer = dir.0.join("newer.sqlite");
    let db = rusqlite::Connection::open(&newer).expect("create");
    db.execute_batch(
        "PRAGMA application_id = 1819177075; PRAGMA user_version = 99; CREATE TABLE t(x);",
    )
    .expect("write");
    drop(db);
    let newer = std::fs::read(&newer).expect("read");
    for (bytes, why) in [
        (garbage, "corrupt database file"),
        (newer, "schema version 99 is newer"),
    ] {
        std::fs::write(&path, &bytes).expect("write the file");
        let out = common::lnconnd()
            .args(["run", "--data-dir", dir.path(), "--json"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&path.display().to_string()),
            "names the file: {err}"
        );
        assert!(err.contains(why), "says why ({why}): {err}");
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "byte-identical");
        assert!(!dir.socket().exists(), "no socket left behind");
    }
}

#[test]
fn bans_expire_when_due_and_permanent_ones_survive_a_restart() {
    let dir = DataDir::new("banexp", FAST);
    let daemon = Daemon::start(&dir);
    let short = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798".to_owned();
    let forever = "028d7500dd4c12685d1f568b4c2b5048e8534b873319f3a8daa612b469132ec7f7".to_owned();

    // Bad expiries are refused, nothing stored.
    for params in [
        format!(r#"{{"id":"{short}","duration":-1}}"#),
        format!(r#"{{"id":"{short}","until":1}}"#),
        format!(r#"{{"id":"{short}","duration":5,"until":99999999999}}"#),
    ] {
        let out = common::lnconnd()
            .args(["call", "ban", &params, "--data-dir", dir.path()])
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("code -32602"), "{params}: {err}");
    }
    assert!(stored_by_users(&dir.0).is_empty());

    let mut events = Events::subscribe(&dir);
    let r = cli(&dir, &["ban", &forever]);
    assert_eq!(r["permanent"], true, "{r}");
    let r = cli(&dir, &["ban", &short, "--duration", "0.2"]);
    assert_eq!(r["permanent"], false, "{r}");
    assert!(r["until_unix"].as_u64().is_some(), "{r}");
    events.until_each(std::slice::from_ref(&short), |e| {
        e["event"] == "ban_expired"
    });
    drop(events);
    let v = cli(&dir, &["peers", &short]);
    assert_eq!(
        v["peers"],
        serde_json::json!([]),
        "unbanned and unknown: {v}"
    );
    let stored = stored_by_users(&dir.0);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        stored[0].starts_with(&format!("ban {forever}")),
        "{stored:?}"
    );
    let (status, _) = daemon.terminate();
    assert!(status.success());

    let daemon = Daemon::start(&dir);
    let v = cli(&dir, &["peers", &forever]);
    assert_eq!(v["peers"][0]["banned"], true, "{v}");
    assert_eq!(v["peers"][0]["banned_until_unix"], Value::Null, "{v}");
    let (status, _) = daemon.terminate();
    assert!(status.success());
}
