//! The commands that talk to a running daemon over its control socket, in
//! the habits of `lightning-cli`: one request, the answer printed as text,
//! or as the JSON result with `--json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LinesCodec};

use super::{control, data_dir};
use crate::cli::{CallArgs, Command, ConnectArgs, DataDirArgs};
use crate::node::Interrupt;
use crate::output::Output;
use crate::Failure;

/// How long a request may take before the client gives up (a `connect`
/// that waits is given its own wait on top).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `stop` waits for the daemon to exit (its own shutdown is
/// bounded by its `shutdown_timeout`, 10 s by default, then the store
/// is closed).
const STOP_WAIT: Duration = Duration::from_secs(120);
/// The longest reply read.
const MAX_REPLY: usize = 64 << 20;

/// A connection to the daemon.
struct Client {
    lines: Framed<UnixStream, LinesCodec>,
    next_id: u64,
}

impl Client {
    async fn open(data: &DataDirArgs) -> Result<Client, Failure> {
        let dir = data_dir(data)?;
        let socket = control::socket_path(&dir);
        Client::open_at(&dir, &socket).await
    }

    async fn open_at(dir: &Path, socket: &Path) -> Result<Client, Failure> {
        let stream = UnixStream::connect(socket).await.map_err(|e| {
            Failure::Runtime(format!(
                "no daemon answers in {} ({e}): start one with `lnconnd run --data-dir {}`",
                dir.display(),
                dir.display()
            ))
        })?;
        Ok(Client {
            lines: Framed::new(stream, LinesCodec::new_with_max_length(MAX_REPLY)),
            next_id: 1,
        })
    }

    /// Sends a request and returns its result, or the daemon's error.
    async fn call(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let lost = |e: String| Failure::Runtime(format!("lost the daemon: {e}"));
        self.lines
            .send(request.to_string())
            .await
            .map_err(|e| lost(e.to_string()))?;
        let reply = tokio::time::timeout(timeout, self.lines.next())
            .await
            .map_err(|_| Failure::Runtime(format!("no answer from the daemon within {timeout:?}")))?
            .ok_or_else(|| lost("it closed the connection".into()))?
            .map_err(|e| lost(e.to_string()))?;
        let reply: Value = serde_json::from_str(&reply).map_err(|e| lost(e.to_string()))?;
        if let Some(e) = reply.get("error") {
            let message = e["message"].as_str().unwrap_or("unknown error");
            let code = &e["code"];
            return Err(Failure::Runtime(format!("{message} (code {code})")));
        }
        Ok(reply.get("result").cloned().unwrap_or(Value::Null))
    }
}

impl Client {
    /// Waits until the daemon closes the connection: after `stop`, it does
    /// so once it has closed its store and released the data directory
    /// (or when its process ends), so another daemon may start there.
    async fn wait_exit(&mut self, timeout: Duration) -> Result<(), Failure> {
        let drained = async {
            // Whatever else it sends (nothing, today) is not waited for.
            while let Some(Ok(_)) = self.lines.next().await {}
        };
        tokio::time::timeout(timeout, drained).await.map_err(|_| {
            Failure::Runtime(format!(
                "the daemon is still shutting down after {timeout:?}"
            ))
        })
    }
}

/// Whether `connect` goes to a daemon: the socket to use, or `None` to dial
/// from this process.
pub(crate) fn route(args: &ConnectArgs) -> Result<Option<PathBuf>, Failure> {
    let local_only = args.direct
        || args.exit_after_init
        || args.proxy.is_some()
        || args.key.key.is_some()
        || args.key.key_file.is_some();
    if local_only {
        return Ok(None);
    }
    let Ok(dir) = data_dir(&args.data) else {
        return Ok(None);
    };
    let socket = control::socket_path(&dir);
    if control::is_live(&socket) {
        return Ok(Some(socket));
    }
    if args.data.data_dir.is_some() {
        return Err(Failure::Usage(format!(
            "no daemon runs in {}: start one with `lnconnd run --data-dir {}`, or dial from here with --direct",
            dir.display(),
            dir.display()
        )));
    }
    Ok(None)
}

/// `connect` through the daemon at `socket`.
pub(crate) async fn connect(
    args: ConnectArgs,
    socket: PathBuf,
    out: Arc<Output>,
) -> Result<ExitCode, Failure> {
    let dir = data_dir(&args.data)?;
    let mut client = Client::open_at(&dir, &socket).await?;
    let wait = args.timeout.unwrap_or(Duration::from_secs(60));
    // Not given: the daemon's own defaults (its connect timeout for a
    // one-off dial, 60 s of waiting for a perm one).
    let params = json!({
        "id": args.node.to_string(),
        "perm": args.perm,
        "wait": !args.no_wait,
        "timeout": args.timeout.map(|t| t.as_secs_f64()),
    });
    let result = client
        .call("connect", params, wait + REQUEST_TIMEOUT)
        .await?;
    print(&out, "connect", &result, || {
        let id = result["id"].as_str().unwrap_or("?");
        let at = result["address"].as_str().unwrap_or("?");
        let kept = if args.perm { " (kept connected)" } else { "" };
        if result["connected"] == true {
            format!("connected to {id} at {at}{kept}")
        } else {
            format!("{id}: asked the daemon to connect at {at}{kept}")
        }
    });
    Ok(ExitCode::SUCCESS)
}

/// The daemon commands but `connect`.
pub(crate) async fn run(
    command: Command,
    out: Arc<Output>,
    interrupt: &mut Interrupt,
) -> Result<ExitCode, Failure> {
    let t = REQUEST_TIMEOUT;
    match command {
        Command::Getinfo(a) => {
            let r = Client::open(&a.data)
                .await?
                .call("getinfo", json!({}), t)
                .await?;
            print(&out, "getinfo", &r, || info_text(&r));
        }
        Command::Peers(a) => {
            let params = match &a.id {
                Some(id) => json!({ "id": id }),
                None => json!({}),
            };
            let r = Client::open(&a.data)
                .await?
                .call("listpeers", params, t)
                .await?;
            print(&out, "peers", &r, || peers_text(&r));
        }
        Command::Disconnect(a) => {
            let r = Client::open(&a.data)
                .await?
                .call("disconnect", json!({ "id": a.id }), t)
                .await?;
            print(&out, "disconnect", &r, || {
                format!("disconnected {} and stopped reconnecting it", a.id)
            });
        }
        Command::Forget(a) => {
            let r = Client::open(&a.data)
                .await?
                .call("forget", json!({ "id": a.id }), t)
                .await?;
            print(&out, "forget", &r, || {
                if r["was_persistent"] == true {
                    format!("{}: no longer kept connected", a.id)
                } else {
                    format!("{}: was not persistent", a.id)
                }
            });
        }
        Command::Ban(a) => {
            let r = Client::open(&a.data)
                .await?
                .call("ban", json!({ "id": a.id, "duration": a.duration }), t)
                .await?;
            print(&out, "ban", &r, || {
                let mut s = format!("banned {}", a.id);
                if let Some(until) = r["until_unix"].as_u64() {
                    s.push_str(&format!(" until {until} (Unix seconds)"));
                }
                if r["still_perm"] == true {
                    s.push_str(" (still dialed as perm: `lnconnd forget` it to stop that)");
                }
                s
            });
        }
        Command::Unban(a) => {
            let r = Client::open(&a.data)
                .await?
                .call("unban", json!({ "id": a.id }), t)
                .await?;
            print(&out, "unban", &r, || format!("unbanned {}", a.id));
        }
        Command::Stop(a) => {
            let mut client = Client::open(&a.data).await?;
            let r = client.call("stop", json!({}), t).await?;
            client.wait_exit(STOP_WAIT).await?;
            print(&out, "stop", &r, || "daemon stopped".into());
        }
        Command::Call(a) => call(a, &out).await?,
        Command::Events(a) => return events(&a.data, &out, interrupt).await,
        _ => return Err(Failure::Usage("not a daemon command".into())),
    }
    Ok(ExitCode::SUCCESS)
}

/// `call METHOD [JSON]`: any request, the result printed as JSON.
async fn call(a: CallArgs, out: &Output) -> Result<(), Failure> {
    let params = match &a.params {
        None => json!({}),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Failure::Usage(format!("parameters are not JSON: {e}")))?,
    };
    let r = Client::open(&a.data)
        .await?
        .call(&a.method, params, REQUEST_TIMEOUT * 4)
        .await?;
    let text = if out.is_json() {
        r.to_string()
    } else {
        serde_json::to_string_pretty(&r).unwrap_or_else(|_| r.to_string())
    };
    // A closed stdout (piped into `head`) is not worth a panic.
    crate::print_line(&text);
    Ok(())
}

/// `events`: subscribes and prints each event until the daemon stops or
/// Ctrl-C.
async fn events(
    data: &DataDirArgs,
    out: &Output,
    interrupt: &mut Interrupt,
) -> Result<ExitCode, Failure> {
    let mut client = Client::open(data).await?;
    client.call("subscribe", json!({}), REQUEST_TIMEOUT).await?;
    out.event("subscribed", json!({}), || {
        "subscribed; Ctrl-C to stop".into()
    });
    loop {
        let line = tokio::select! {
            () = interrupt.wait() => return Ok(ExitCode::SUCCESS),
            line = client.lines.next() => line,
        };
        let Some(Ok(line)) = line else {
            out.event("closed", json!({}), || {
                "the daemon closed the stream".into()
            });
            return Ok(ExitCode::SUCCESS);
        };
        let Ok(note) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let params = &note["params"];
        let name = match note["method"].as_str() {
            Some("event") => params["event"].as_str().unwrap_or("event"),
            Some(other) => other,
            None => continue,
        };
        out.event(name, params.clone(), || event_text(params));
    }
}

/// Prints a result: the JSON object with `--json` (with `event` naming the
/// command), else `text`.
fn print(out: &Output, name: &str, result: &Value, text: impl FnOnce() -> String) {
    let fields = match result {
        Value::Object(_) => result.clone(),
        other => json!({ "result": other }),
    };
    out.event(name, fields, text);
}

fn info_text(r: &Value) -> String {
    let listen: Vec<&str> = (r["listen"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    format!(
        "id: {}\nlisten: {}\npeers: {} ({} connected, {} persistent, {} banned)\ndials in flight: {}\ndata dir: {}\nmetrics: {}\nuptime: {}s",
        r["id"].as_str().unwrap_or("?"),
        if listen.is_empty() { "(none)".to_owned() } else { listen.join(", ") },
        r["num_peers"],
        r["num_connected"],
        r["num_persistent"],
        r["num_banned"],
        r["dials_in_flight"],
        r["data_dir"].as_str().unwrap_or("?"),
        r["metrics"].as_str().unwrap_or("off"),
        r["uptime_secs"],
    )
}

fn peers_text(r: &Value) -> String {
    let peers = r["peers"].as_array().cloned().unwrap_or_default();
    if peers.is_empty() {
        return "no peers".into();
    }
    let mut lines = Vec::with_capacity(peers.len());
    for p in &peers {
        let id = p["id"].as_str().unwrap_or("?");
        let state = p["state"].as_str().unwrap_or("?");
        let detail = if p["connected"] == true {
            format!(
                "{} {} for {:.1}s",
                p["direction"].as_str().unwrap_or("?"),
                p["address"].as_str().unwrap_or("?"),
                p["connected_for_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
            )
        } else {
            p["why_not_connected"].as_str().unwrap_or("").to_owned()
        };
        let perm = match p["persistent"].as_str() {
            Some(kind) => format!(" [{kind}]"),
            None => String::new(),
        };
        lines.push(format!("{id} {state:<14}{perm} {detail}"));
    }
    lines.join("\n")
}

fn event_text(p: &Value) -> String {
    let id = p["id"].as_str().unwrap_or("?");
    let s = |k: &str| p[k].as_str().unwrap_or("").to_owned();
    match p["event"].as_str().unwrap_or("") {
        "connected" => format!("{id}: connected, {} {}", s("direction"), s("address")),
        "disconnected" => format!("{id}: disconnected ({})", s("reason")),
        "dial_started" => format!("{id}: dialing {}", s("address")),
        "dial_failed" => format!(
            "{id}: dial to {} failed ({}): {}",
            s("address"),
            s("category"),
            s("error")
        ),
        "waiting" => format!("{id}: next attempt in {}ms", p["wait_ms"]),
        other => format!("{id}: {other}"),
    }
}
