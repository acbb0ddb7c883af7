//! The control API: JSON-RPC 2.0, one request object per line, method and
//! parameter names after Core Lightning's where it has them.
//!
//! Methods: `getinfo`, `connect` (`id` as `pubkey[@host[:port]]`, or
//! `id` with `host` and `port`; `perm`, `wait`, `timeout` in seconds: how
//! long a perm connect waits for the connection, how long a one-off dial
//! may take at most besides the config's `peers.connect_timeout`),
//! `disconnect` (`id`), `forget` (`id`), `listpeers` (optional `id`),
//! `ban` (`id`, and `duration` in seconds or `until` in Unix seconds;
//! neither: permanent, stored as an expiry of 2200-01-01), `unban` (`id`),
//! `stop`, and `subscribe`, after which the
//! connection carries `event` notifications until it closes (anything the
//! client sends then ends the subscription). `listpeers` shows a timed
//! ban's end as `banned_until_unix` (`null` for a permanent one). Parameters
//! come by name (an object) or by position (an array, in the order above).
//!
//! Error codes are stable:
//!
//! | code | meaning |
//! |---|---|
//! | -32700 | not JSON (or not UTF-8) |
//! | -32600 | not a JSON-RPC 2.0 request object |
//! | -32601 | unknown method |
//! | -32602 | bad parameters (the message names the parameter) |
//! | -32603 | internal error |
//! | -32001 | request larger than the cap; the connection is closed |
//! | -32002 | too many clients; the connection is closed |
//! | -32003 | the daemon is shutting down |
//! | 400 | no known address for the peer (give `id@host:port`) |
//! | 401 | the dial failed |
//! | 402 | not connected within `timeout` (a perm peer stays persistent) |
//! | 403 | the peer is banned |
//! | 404 | not connected to the peer |
//! | 405 | the peer is our own node |
//! | 406 | the address cannot be dialed (an onion address without a proxy) |
//! | 407 | too many one-off dials in flight (`connect` without `perm` or `wait`) |
//! | 500 | the peer store could not be written; nothing changed |

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::PublicKey;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::engine::{node_at, parse_node, Fact, Next, NodeAddr, OpError, PeerState, PeerView};
use super::Daemon;

/// The stable error codes (see the module doc).
pub(crate) mod code {
    pub(crate) const PARSE_ERROR: i64 = -32700;
    pub(crate) const INVALID_REQUEST: i64 = -32600;
    pub(crate) const METHOD_NOT_FOUND: i64 = -32601;
    pub(crate) const INVALID_PARAMS: i64 = -32602;
    pub(crate) const INTERNAL: i64 = -32603;
    pub(crate) const REQUEST_TOO_LARGE: i64 = -32001;
    pub(crate) const TOO_MANY_CLIENTS: i64 = -32002;
    pub(crate) const SHUTTING_DOWN: i64 = -32003;
    pub(crate) const NO_KNOWN_ADDRESS: i64 = 400;
    pub(crate) const CONNECT_FAILED: i64 = 401;
    pub(crate) const CONNECT_TIMEOUT: i64 = 402;
    pub(crate) const BANNED: i64 = 403;
    pub(crate) const NOT_CONNECTED: i64 = 404;
    pub(crate) const SELF_CONNECT: i64 = 405;
    pub(crate) const UNREACHABLE: i64 = 406;
    pub(crate) const TOO_MANY_DIALS: i64 = 407;
    pub(crate) const STORE_FAILED: i64 = 500;
}

/// How long `connect` waits for a connection when not told.
const DEFAULT_CONNECT_WAIT: Duration = Duration::from_secs(60);

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpcError {
    pub(crate) code: i64,
    pub(crate) message: String,
    pub(crate) data: Option<Value>,
}

impl RpcError {
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }

    fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    fn to_json(&self) -> Value {
        let mut obj = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            obj["data"] = data.clone();
        }
        obj
    }
}

impl From<OpError> for RpcError {
    fn from(e: OpError) -> Self {
        let code = match &e {
            OpError::SelfConnect => code::SELF_CONNECT,
            OpError::AlreadyConnected(_) => code::INTERNAL,
            OpError::NotConnected(_) => code::NOT_CONNECTED,
            OpError::Banned(_) => code::BANNED,
            OpError::Unreachable(_) => code::UNREACHABLE,
            OpError::TimedOut | OpError::DialFailed(..) => code::CONNECT_FAILED,
            OpError::ShutDown => code::SHUTTING_DOWN,
            OpError::Store(_) => code::STORE_FAILED,
        };
        RpcError::new(code, e.to_string())
    }
}

/// A request, parsed.
#[derive(Debug)]
pub(crate) struct Call {
    /// `None` for a notification (no reply is sent).
    pub(crate) id: Option<Value>,
    pub(crate) method: String,
    params: Value,
}

/// Parses one request line. On failure, the id to answer with (`null` if
/// none could be read) and the error.
pub(crate) fn parse(line: &str) -> Result<Call, (Value, RpcError)> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        (
            Value::Null,
            RpcError::new(code::PARSE_ERROR, format!("parse error: {e}")),
        )
    })?;
    let Value::Object(mut obj) = value else {
        let what = if value.is_array() {
            "batches are not supported: send one request object per line"
        } else {
            "a request is a JSON object"
        };
        return Err((Value::Null, RpcError::new(code::INVALID_REQUEST, what)));
    };
    let id = obj.remove("id");
    let reply_id = match &id {
        None | Some(Value::Null) => Value::Null,
        Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
        Some(_) => {
            return Err((
                Value::Null,
                RpcError::new(code::INVALID_REQUEST, "`id` must be a string or a number"),
            ))
        }
    };
    let invalid = |m: &str| (reply_id.clone(), RpcError::new(code::INVALID_REQUEST, m));
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid("`jsonrpc` must be \"2.0\""));
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => return Err(invalid("`method` must be a string")),
    };
    let params = obj.remove("params").unwrap_or(Value::Null);
    Ok(Call { id, method, params })
}

/// A response line (without the newline).
pub(crate) fn response(id: Value, result: Result<Value, RpcError>) -> String {
    match result {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() }),
    }
    .to_string()
}

/// A notification line (without the newline).
pub(crate) fn notification(method: &str, params: Value) -> String {
    json!({ "jsonrpc": "2.0", "method": method, "params": params }).to_string()
}

/// What the connection must do after a call.
pub(crate) enum Outcome {
    /// Send this reply.
    Reply(Result<Value, RpcError>),
    /// Reply, then stream events on this connection.
    Subscribe,
    /// Reply, then stop the daemon.
    Stop,
}

/// Runs a call.
pub(crate) async fn dispatch(d: &Arc<Daemon>, call: &Call) -> Outcome {
    let p = &call.params;
    let result = match call.method.as_str() {
        "stop" => params::<NoParams>(p, &[]).map(|_| Outcome::Stop),
        "subscribe" => params::<NoParams>(p, &[]).map(|_| Outcome::Subscribe),
        _ => Ok(Outcome::Reply(method(d, &call.method, p).await)),
    };
    result.unwrap_or_else(|e| Outcome::Reply(Err(e)))
}

/// Runs a method that answers with one reply.
async fn method(d: &Arc<Daemon>, name: &str, p: &Value) -> Result<Value, RpcError> {
    match name {
        "getinfo" => params::<NoParams>(p, &[]).map(|_| getinfo(d)),
        "listpeers" => listpeers(d, params::<OptIdParams>(p, &["id"])?.id.as_deref()),
        "connect" => {
            connect(
                d,
                params(p, &["id", "host", "port", "perm", "wait", "timeout"])?,
            )
            .await
        }
        "disconnect" => disconnect(d, id_param(p)?).await,
        "forget" => forget(d, id_param(p)?).await,
        "ban" => ban(d, params(p, &["id", "duration", "until"])?).await,
        "unban" => unban(d, id_param(p)?).await,
        m => Err(RpcError::new(
            code::METHOD_NOT_FOUND,
            format!("unknown method {m:?}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdParams {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptIdParams {
    id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BanParams {
    id: String,
    duration: Option<f64>,
    until: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectParams {
    id: String,
    host: Option<String>,
    port: Option<u16>,
    #[serde(default)]
    perm: bool,
    wait: Option<bool>,
    timeout: Option<f64>,
}

/// Reads params given by name (an object), by position (an array, in the
/// order of `names`) or not at all.
fn params<T: DeserializeOwned>(value: &Value, names: &[&str]) -> Result<T, RpcError> {
    let bad = |m: String| RpcError::new(code::INVALID_PARAMS, m);
    let obj = match value {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        Value::Array(list) => {
            if list.len() > names.len() {
                return Err(bad(format!(
                    "{} parameters given, at most {} taken",
                    list.len(),
                    names.len()
                )));
            }
            (names.iter())
                .zip(list)
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect()
        }
        _ => return Err(bad("`params` must be an object or an array".into())),
    };
    serde_json::from_value(Value::Object(obj)).map_err(|e| bad(format!("bad params: {e}")))
}

fn id_param(value: &Value) -> Result<PublicKey, RpcError> {
    pubkey(&params::<IdParams>(value, &["id"])?.id)
}

fn pubkey(s: &str) -> Result<PublicKey, RpcError> {
    let bad = || {
        RpcError::new(
            code::INVALID_PARAMS,
            format!("`id`: {s:?} is not a public key (66 hex characters)"),
        )
    };
    if s.len() != 66 {
        return Err(bad());
    }
    PublicKey::from_str(s).map_err(|_| bad())
}

fn getinfo(d: &Daemon) -> Value {
    let peers = d.engine.peers();
    let connected = peers.iter().filter(|p| p.connection.is_some()).count();
    let persistent = peers.iter().filter(|p| p.perm.is_some()).count();
    json!({
        "id": d.engine.id().to_string(),
        "version": env!("CARGO_PKG_VERSION"),
        "data_dir": d.info.data_dir.display().to_string(),
        "rpc_socket": d.info.socket.display().to_string(),
        "listen": d.info.listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "metrics": d.info.metrics.map(|m| format!("http://{m}/metrics")),
        "num_peers": peers.len(),
        "num_connected": connected,
        "num_persistent": persistent,
        "num_banned": d.engine.bans().len(),
        "dials_in_flight": d.engine.dials_in_flight(),
        "uptime_secs": d.info.started.elapsed().as_secs(),
    })
}

fn listpeers(d: &Daemon, id: Option<&str>) -> Result<Value, RpcError> {
    let only = id.map(pubkey).transpose()?;
    let mut peers = d.engine.peers();
    let bans = d.engine.bans();
    // Banned peers nothing else knows of are listed too.
    for (banned, _) in &bans {
        if !peers.iter().any(|p| p.id == *banned) {
            peers.push(PeerView::bare(*banned));
        }
    }
    peers.sort_by_cached_key(|p| p.id.serialize());
    let list: Vec<Value> = peers
        .iter()
        .filter(|p| only.is_none_or(|k| p.id == k))
        .map(|p| {
            let ban = bans.iter().find(|(b, _)| *b == p.id);
            let mut v = peer_json(p, ban.is_some());
            let until = ban.and_then(|(_, until)| *until);
            v["banned_until_unix"] = json!(until.map(unix_secs));
            v
        })
        .collect();
    Ok(json!({ "peers": list }))
}

/// One peer in `listpeers`.
pub(crate) fn peer_json(p: &PeerView, banned: bool) -> Value {
    let ms = |d: Duration| d.as_millis() as u64;
    let conn = p.connection.as_ref();
    json!({
        "id": p.id.to_string(),
        "connected": conn.is_some(),
        "state": p.state.name(),
        "persistent": match p.perm { Some(true) => json!("perm"), Some(false) => json!("channel"), None => Value::Null },
        "banned": banned,
        "direction": conn.map(|c| c.direction),
        "address": conn.and_then(|c| c.addr.clone()),
        "connected_since_unix_ms": conn.map(|c| c.since_unix_ms),
        "connected_for_ms": conn.map(|c| ms(c.lasted)),
        "addresses": p.addresses,
        "skipped_addresses": p.skipped.iter()
            .map(|(a, r)| json!({ "address": a, "reason": r }))
            .collect::<Vec<_>>(),
        "last_error": p.last_error.as_ref()
            .map(|(m, c)| json!({ "message": m, "category": c.name() })),
        "next_attempt_in_ms": p.next_attempt_in.map(ms),
        "attempts": p.attempts,
        "backoff_ms": p.backoff.map(ms),
        "dials_in_flight": p.dials_in_flight,
        "why_not_connected": why_not_connected(p, banned),
    })
}

/// The answer to "why is this peer not connected?", from its status;
/// `None` when it is connected.
pub(crate) fn why_not_connected(p: &PeerView, banned: bool) -> Option<String> {
    if p.connection.is_some() {
        return None;
    }
    let secs = |d: Duration| format!("{:.1}s", d.as_secs_f64());
    let failed = p
        .last_error
        .as_ref()
        .map(|(m, c)| format!("last attempt failed ({}): {m}", c.name()));
    let why = match p.state {
        PeerState::Connected => return None,
        PeerState::NotPersistent if banned => {
            "banned: its connections are refused (unban to allow them)".to_owned()
        }
        PeerState::NotPersistent => {
            "not persistent: nothing reconnects it (connect with perm to keep it connected)"
                .to_owned()
        }
        PeerState::Dialing => {
            let at = p
                .addresses
                .first()
                .map(|a| format!(" {a}"))
                .unwrap_or_default();
            let mut s = format!("dialing{at} (attempt {})", p.attempts.max(1));
            if let Some(f) = failed {
                s = format!("{s}; {f}");
            }
            s
        }
        PeerState::Waiting => {
            let next = p.next_attempt_in.map(secs).unwrap_or_else(|| "soon".into());
            match failed {
                Some(f) => format!("{f}; next attempt in {next}"),
                None => format!("disconnected; reconnecting in {next}"),
            }
        }
        PeerState::AwaitingAddrs => {
            let mut s =
                "no address to dial: waiting for one (connect with id@host:port)".to_owned();
            for (a, r) in &p.skipped {
                s = format!("{s}; {a} skipped: {r}");
            }
            s
        }
        PeerState::Idle => match failed {
            Some(f) => format!("idle, not dialing now; {f}"),
            None => "idle, not dialing now".to_owned(),
        },
        PeerState::Stopped => "its worker has stopped".to_owned(),
    };
    Some(if banned && p.perm.is_some() {
        format!("banned (inbound refused, still dialed as perm); {why}")
    } else {
        why
    })
}

async fn connect(d: &Arc<Daemon>, q: ConnectParams) -> Result<Value, RpcError> {
    let bad = |m: String| RpcError::new(code::INVALID_PARAMS, m);
    let node = if q.id.contains('@') {
        if q.host.is_some() || q.port.is_some() {
            return Err(bad("give the address in `id` or in `host`, not both".into()));
        }
        parse_node(&q.id).map_err(|e| bad(format!("`id`: {e}")))?
    } else {
        let peer = pubkey(&q.id)?;
        match (&q.host, q.port) {
            (Some(host), port) => {
                let text = match port {
                    Some(port) if host.contains(':') && !host.starts_with('[') => {
                        format!("[{host}]:{port}")
                    }
                    Some(port) => format!("{host}:{port}"),
                    None => host.clone(),
                };
                node_at(peer, &text).map_err(|e| bad(format!("`host`: {e}")))?
            }
            (None, Some(_)) => return Err(bad("`port` needs `host`".into())),
            (None, None) => {
                let known = d.engine.known_addrs(&peer);
                let first = known.into_iter().next().ok_or_else(|| {
                    RpcError::new(
                        code::NO_KNOWN_ADDRESS,
                        format!("no known address for {peer}: give id@host:port"),
                    )
                })?;
                NodeAddr::new(peer, first)
            }
        }
    };
    let wait = q.wait.unwrap_or(true);
    let timeout = match q.timeout {
        None => DEFAULT_CONNECT_WAIT,
        Some(t) if t.is_finite() && t > 0.0 && t <= 86_400.0 => Duration::from_secs_f64(t),
        Some(t) => {
            return Err(bad(format!(
                "`timeout`: {t} is not a number of seconds in (0, 86400]"
            )))
        }
    };
    let peer = node.pubkey;
    if peer == d.engine.id() {
        return Err(OpError::SelfConnect.into());
    }
    if d.engine.is_banned(&peer) {
        return Err(RpcError::new(
            code::BANNED,
            format!("peer {peer} is banned: unban it first"),
        ));
    }
    let addr = node.addr.to_string();
    if q.perm {
        let facts = d.subscribe();
        // Returns once the peer is on disk, or with nothing changed.
        d.engine.connect(node, true).await?;
        if wait {
            wait_connected(d, peer, facts, timeout).await?;
        }
    } else if wait {
        match one_off(d, node, q.timeout.map(|_| timeout)).await {
            Ok(()) | Err(OpError::AlreadyConnected(_)) => {}
            Err(e) => return Err(e.into()),
        }
    } else {
        let Ok(slot) = Arc::clone(&d.one_off_slots).try_acquire_owned() else {
            return Err(RpcError::new(
                code::TOO_MANY_DIALS,
                "too many one-off dials in flight; wait for one or use perm",
            ));
        };
        let daemon = Arc::clone(d);
        let limit = q.timeout.map(|_| timeout);
        d.tasks.spawn(async move {
            if let Err(e) = one_off(&daemon, node, limit).await {
                tracing::info!(%peer, error = %e, "one-off connect failed");
            }
            drop(slot);
        });
    }
    let view = d.engine.peers().into_iter().find(|p| p.id == peer);
    let conn = view.as_ref().and_then(|p| p.connection.as_ref());
    Ok(json!({
        "id": peer.to_string(),
        "perm": q.perm,
        "connected": conn.is_some(),
        "direction": conn.map(|c| c.direction),
        "address": conn.and_then(|c| c.addr.clone()).unwrap_or(addr),
    }))
}

/// One dial outside the workers, reported like theirs: given up after
/// `limit` if one is given (the connect timeout of the config bounds it
/// too). The node's dial is cancel-safe: given up, it holds nothing.
async fn one_off(d: &Daemon, node: NodeAddr, limit: Option<Duration>) -> Result<(), OpError> {
    let (peer, addr) = (node.pubkey, node.addr.to_string());
    d.note(Fact::DialStarted {
        peer,
        addr: addr.clone(),
    })
    .await;
    let dial = d.engine.connect(node, false);
    let result = match limit {
        Some(limit) => tokio::time::timeout(limit, dial)
            .await
            .unwrap_or(Err(OpError::TimedOut)),
        None => dial.await,
    };
    if let Err(e) = &result {
        if let Some(category) = e.dial_category() {
            let error = e.to_string();
            d.note(Fact::DialFailed {
                peer,
                addr,
                error,
                category,
            })
            .await;
        }
    }
    result
}

/// Waits until `peer` is connected, for at most `timeout`.
async fn wait_connected(
    d: &Daemon,
    peer: PublicKey,
    mut facts: super::Subscription,
    timeout: Duration,
) -> Result<(), RpcError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if d.engine.is_connected(&peer) {
            return Ok(());
        }
        tokio::select! {
            next = facts.next() => if matches!(next, Next::Closed) {
                return Err(OpError::ShutDown.into());
            },
            () = tokio::time::sleep_until(deadline) => {
                let view = d.engine.peers().into_iter().find(|p| p.id == peer);
                let why = view.as_ref().and_then(|p| why_not_connected(p, false)).unwrap_or_default();
                let mut e = RpcError::new(
                    code::CONNECT_TIMEOUT,
                    format!("not connected within {timeout:?} (still persistent): {why}"),
                );
                if let Some(p) = view {
                    e = e.with_data(peer_json(&p, false));
                }
                return Err(e);
            }
            () = d.stop.cancelled() => return Err(OpError::ShutDown.into()),
        }
    }
}

async fn disconnect(d: &Daemon, peer: PublicKey) -> Result<Value, RpcError> {
    if !d.engine.is_connected(&peer) {
        let mut e = RpcError::from(OpError::NotConnected(peer));
        if d.engine.persistence(&peer).is_some() {
            e.message.push_str(" (use forget to stop reconnecting it)");
        }
        return Err(e);
    }
    // The node stops the peer's worker too, and removes it from the store
    // first: an error leaves both as they were.
    d.engine.disconnect(&peer).await?;
    Ok(json!({}))
}

async fn forget(d: &Daemon, peer: PublicKey) -> Result<Value, RpcError> {
    let was = d.engine.forget(&peer).await?;
    Ok(json!({ "id": peer.to_string(), "was_persistent": was }))
}

/// When a ban asked for at `now` ends; `None` for a permanent one.
fn ban_expiry(q: &BanParams, now: SystemTime) -> Result<Option<SystemTime>, RpcError> {
    let bad = |m: String| RpcError::new(code::INVALID_PARAMS, m);
    let latest = server::permanent_ban_end();
    let until = match (q.duration, q.until) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err(bad("give `duration` or `until`, not both".into())),
        (Some(secs), None) => Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .and_then(|d| now.checked_add(d))
            .filter(|t| *t < latest)
            .ok_or_else(|| {
                bad(format!(
                    "`duration`: {secs} is not a positive number of seconds before 2200"
                ))
            })?,
        (None, Some(secs)) => Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| UNIX_EPOCH.checked_add(d))
            .filter(|t| *t > now && *t < latest)
            .ok_or_else(|| {
                bad(format!(
                    "`until`: {secs} is not a Unix time in seconds between now and 2200"
                ))
            })?,
    };
    Ok(Some(until))
}

/// Whole Unix seconds of `t`.
fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn ban(d: &Daemon, q: BanParams) -> Result<Value, RpcError> {
    let peer = pubkey(&q.id)?;
    let until = ban_expiry(&q, SystemTime::now())?;
    d.engine.ban(peer, until).await?;
    d.bans_changed.notify_one();
    Ok(json!({
        "id": peer.to_string(),
        "banned": true,
        "until_unix": until.map(unix_secs),
        "permanent": until.is_none(),
        "still_perm": d.engine.persistence(&peer) == Some(true),
    }))
}

async fn unban(d: &Daemon, peer: PublicKey) -> Result<Value, RpcError> {
    let was = d.engine.is_banned(&peer);
    d.engine.unban(&peer).await?;
    d.bans_changed.notify_one();
    Ok(json!({ "id": peer.to_string(), "banned": false, "was_banned": was }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::engine::{Category, ConnView};

    #[test]
    fn requests_parse_or_say_why_not() {
        let ok = parse(r#"{"jsonrpc":"2.0","id":7,"method":"getinfo"}"#).expect("valid");
        assert_eq!((ok.id, ok.method.as_str()), (Some(json!(7)), "getinfo"));
        let cases = [
            ("{", code::PARSE_ERROR),
            ("[]", code::INVALID_REQUEST),
            ("3", code::INVALID_REQUEST),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"getinfo"}"#,
                code::INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
                code::INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"getinfo"}"#,
                code::INVALID_REQUEST,
            ),
        ];
        for (line, want) in cases {
            let (_, e) = parse(line).expect_err(line);
            assert_eq!(e.code, want, "{line}: {e:?}");
        }
        // The id survives a later error.
        let (id, _) = parse(r#"{"jsonrpc":"2.0","id":"x","method":1}"#).expect_err("bad method");
        assert_eq!(id, json!("x"));
    }

    #[test]
    fn params_by_name_by_position_and_wrong_types() {
        let names = ["id", "host", "port", "perm", "wait", "timeout"];
        let by_name: ConnectParams = params(&json!({"id": "k", "perm": true}), &names).expect("ok");
        assert!(by_name.perm && by_name.id == "k");
        let by_pos: ConnectParams = params(&json!(["k", "h", 1]), &names).expect("ok");
        assert_eq!((by_pos.host.as_deref(), by_pos.port), (Some("h"), Some(1)));
        for bad in [
            json!({"id": 5}),
            json!({"id": "k", "perm": "yes"}),
            json!({"id": "k", "extra": 1}),
            json!("k"),
            json!([1, 2, 3, 4, 5, 6, 7]),
        ] {
            let e = params::<ConnectParams>(&bad, &names)
                .err()
                .expect("refused");
            assert_eq!(e.code, code::INVALID_PARAMS, "{bad}");
        }
        assert_eq!(
            pubkey("02ab").map_err(|e| e.code),
            Err(code::INVALID_PARAMS)
        );
    }

    fn view(state: PeerState) -> PeerView {
        let key = crate::keys::from_hex(&"11".repeat(32))
            .expect("key")
            .public_key();
        let mut p = PeerView::bare(key);
        p.state = state;
        p.perm = Some(true);
        p.addresses = vec!["127.0.0.1:1".into()];
        p
    }

    #[test]
    fn why_not_connected_follows_the_status() {
        let mut p = view(PeerState::Waiting);
        p.last_error = Some(("connect failed: refused".into(), Category::Network));
        p.next_attempt_in = Some(Duration::from_millis(1500));
        let why = why_not_connected(&p, false).expect("not connected");
        assert_eq!(
            why,
            "last attempt failed (network): connect failed: refused; next attempt in 1.5s"
        );
        let why = why_not_connected(&view(PeerState::Dialing), false).expect("dialing");
        assert_eq!(why, "dialing 127.0.0.1:1 (attempt 1)");
        let why = why_not_connected(&view(PeerState::AwaitingAddrs), false).expect("no addr");
        assert!(why.starts_with("no address to dial"), "{why}");
        let mut bare = view(PeerState::NotPersistent);
        bare.perm = None;
        assert!(why_not_connected(&bare, false)
            .expect("bare")
            .starts_with("not persistent"));
        assert!(why_not_connected(&bare, true)
            .expect("banned")
            .starts_with("banned"));
        let mut up = view(PeerState::Connected);
        up.connection = Some(ConnView {
            direction: "outbound",
            addr: None,
            since_unix_ms: 0,
            lasted: Duration::ZERO,
        });
        assert_eq!(why_not_connected(&up, false), None);
    }

    #[test]
    fn a_ban_end_out_of_range_is_invalid_params() {
        let now = SystemTime::now();
        let ban = |duration: Option<f64>, until: Option<f64>| BanParams {
            id: String::new(),
            duration,
            until,
        };
        // Past what a `SystemTime` holds (it panicked), past 2200, before
        // now, not a number.
        for until in [1e19, 1.8e19, 1e300, f64::INFINITY, f64::NAN, 9e9, 1.0, -5.0] {
            let e = ban_expiry(&ban(None, Some(until)), now).expect_err("refused");
            assert_eq!(e.code, code::INVALID_PARAMS, "until {until}: {e:?}");
        }
        for duration in [1e19, 1e300, f64::INFINITY, f64::NAN, 0.0, -1.0] {
            let e = ban_expiry(&ban(Some(duration), None), now).expect_err("refused");
            assert_eq!(e.code, code::INVALID_PARAMS, "duration {duration}: {e:?}");
        }
        let soon = now
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64()
            + 60.0;
        let end = ban_expiry(&ban(None, Some(soon)), now).expect("valid");
        assert!(end.is_some_and(|t| t > now));
        assert_eq!(ban_expiry(&ban(None, None), now).expect("permanent"), None);
    }

    #[test]
    fn replies_are_json_rpc_2() {
        let ok: Value = serde_json::from_str(&response(json!(1), Ok(json!({})))).expect("json");
        assert_eq!(ok, json!({"jsonrpc": "2.0", "id": 1, "result": {}}));
        let err: Value = serde_json::from_str(&response(
            Value::Null,
            Err(RpcError::new(code::METHOD_NOT_FOUND, "x")),
        ))
        .expect("json");
        assert_eq!(err["error"]["code"], -32601);
        assert_eq!(err["id"], Value::Null);
    }
}
