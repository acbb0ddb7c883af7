//! The example application above BOLT 8: exchange `init`, answer pings,
//! ping a quiet peer and drop it when nothing comes back (the `liveness`
//! crate), optionally echo custom messages, close on unknown even types.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use brontide::{Connection, MessageDecoder, MessageEncoder};
use futures::{SinkExt, StreamExt};
use liveness::{Action, Liveness};
use serde_json::json;
use server::{Direction, DisconnectReason, PeerHandler};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::output::Output;
use crate::wire::{self, Hex, Message};

/// What a session does besides the BOLT 1 basics.
#[derive(Clone, Default)]
pub(crate) struct SessionOpts {
    /// Print events here (`None`: quiet).
    pub(crate) out: Option<Arc<Output>>,
    /// Send custom messages (type >= 32768) back unchanged.
    pub(crate) echo: bool,
    /// Told the peer's key when its `init` arrives.
    pub(crate) on_init: Option<mpsc::UnboundedSender<PublicKey>>,
    /// When to ping and how long to wait for the answer (lnd's 60 s and
    /// 30 s by default).
    pub(crate) liveness: liveness::Config,
}

/// How long a probed connection has to show a sign of life: well inside
/// the server's duplicate grace (5 s), so a dead connection ends while
/// the peer's new one is still held.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Each running session's probe inbox, by peer (a session's id first).
type Inboxes = HashMap<PublicKey, Vec<(u64, mpsc::UnboundedSender<()>)>>;

/// The server's peer handler: one [`run_session`] per connection, each
/// of which can be probed.
pub(crate) struct App {
    pub(crate) opts: SessionOpts,
    /// The running sessions' probe inboxes, by peer.
    probes: Mutex<Inboxes>,
    next_id: AtomicU64,
}

impl App {
    pub(crate) fn new(opts: SessionOpts) -> Self {
        App {
            opts,
            probes: Mutex::default(),
            next_id: AtomicU64::new(0),
        }
    }

    fn probes(&self) -> MutexGuard<'_, Inboxes> {
        // Only pushes and removals under it: a panic cannot leave it torn.
        self.probes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Takes a session's probe inbox out of [`App`] when the session ends.
struct Registered<'a> {
    app: &'a App,
    peer: PublicKey,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let mut probes = self.app.probes();
        if let Some(list) = probes.get_mut(&self.peer) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                probes.remove(&self.peer);
            }
        }
    }
}

impl PeerHandler<Connection<TcpStream>> for App {
    async fn run(
        &self,
        peer: PublicKey,
        conn: Connection<TcpStream>,
        direction: Direction,
        cancel: CancellationToken,
    ) -> DisconnectReason {
        let (tx, probes) = mpsc::unbounded_channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.probes().entry(peer).or_default().push((id, tx));
        let _registered = Registered {
            app: self,
            peer,
            id,
        };
        run_session(peer, conn, direction, cancel, &self.opts, Some(probes)).await
    }

    /// Pings each of the peer's sessions now: one that hears nothing back
    /// within [`PROBE_TIMEOUT`] ends as timed out.
    fn probe(&self, peer: PublicKey) {
        if let Some(list) = self.probes().get(&peer) {
            for (_, tx) in list {
                // A session that just ended has dropped its inbox: moot.
                let _ = tx.send(());
            }
        }
    }
}

/// Runs one connection until it ends, `cancel` fires, or the peer stops
/// answering (the reason is then [`dead`]'s). A message on `probes` asks
/// for a sign of life within [`PROBE_TIMEOUT`].
pub(crate) async fn run_session(
    peer: PublicKey,
    conn: Connection<TcpStream>,
    direction: Direction,
    cancel: CancellationToken,
    opts: &SessionOpts,
    mut probes: Option<mpsc::UnboundedReceiver<()>>,
) -> DisconnectReason {
    let (stream, encryptor, decryptor) = conn.into_parts();
    let (read, write) = stream.into_split();
    let mut rx = FramedRead::new(read, MessageDecoder::new(decryptor));
    let mut tx = FramedWrite::new(write, MessageEncoder::new(encryptor));
    let mut live = Liveness::new(opts.liveness.clone(), liveness::now());
    // Our init goes first (BOLT 1); it is a few bytes, so a peer that is
    // writing its own init cannot wedge this.
    if let Err(reason) = send(&mut tx, wire::init(), &mut live, &cancel).await {
        return reason;
    }
    let mut got_init = false;
    loop {
        let msg = tokio::select! {
            () = cancel.cancelled() => return DisconnectReason::Cancelled,
            action = liveness::next_action(&mut live) => match action {
                Action::SendPing(ping) => {
                    if let Err(reason) = send(&mut tx, ping.encode(), &mut live, &cancel).await {
                        return reason;
                    }
                    continue;
                }
                Action::Disconnect(e) => return dead(e),
            },
            Some(()) = next_probe(&mut probes) => {
                if let Some(ping) = live.probe(liveness::now(), PROBE_TIMEOUT) {
                    if let Err(reason) = send(&mut tx, ping.encode(), &mut live, &cancel).await {
                        return reason;
                    }
                }
                continue;
            }
            msg = rx.next() => msg,
        };
        let bytes = match msg {
            None => return DisconnectReason::Remote("closed by peer".into()),
            Some(Err(e)) => return DisconnectReason::Remote(e.to_string()),
            Some(Ok(bytes)) => bytes,
        };
        let now = liveness::now();
        live.on_message_received(now);
        let reply = match Message::parse(&bytes) {
            Err(e) => return DisconnectReason::Local(format!("malformed message: {e}")),
            Ok(Message::Init { features }) => {
                if !got_init {
                    got_init = true;
                    if let Some(out) = &opts.out {
                        out.event(
                            "init",
                            json!({
                                "peer": peer.to_string(),
                                "direction": direction_name(direction),
                                "features": Hex(&features).to_string(),
                            }),
                            || format!("{peer}: init received, features 0x{}", Hex(&features)),
                        );
                    }
                    if let Some(tx) = &opts.on_init {
                        let _ = tx.send(peer);
                    }
                }
                None
            }
            Ok(_) if !got_init => {
                return DisconnectReason::Local("first message was not init".into());
            }
            Ok(Message::Ping(ping)) => live.on_ping(now, &ping).map(|pong| pong.encode()),
            Ok(Message::Pong(pong)) => {
                live.on_pong(now, pong.len());
                None
            }
            Ok(Message::ErrorOrWarning { kind, text }) => {
                if let Some(out) = &opts.out {
                    out.event(
                        "peer_error",
                        json!({ "peer": peer.to_string(), "type": kind, "text": text }),
                        || format!("{peer}: error/warning {kind}: {text}"),
                    );
                }
                if kind == wire::ERROR {
                    return DisconnectReason::Remote(format!("peer sent error: {text}"));
                }
                None
            }
            Ok(Message::Other { kind, payload }) => {
                if kind >= wire::CUSTOM_MIN && opts.echo {
                    Some(wire::custom(kind, payload))
                } else if kind % 2 == 0 {
                    // BOLT 1: an unknown even type must close the connection.
                    return DisconnectReason::Local(format!("unknown even message type {kind}"));
                } else {
                    None
                }
            }
        };
        if let Some(reply) = reply {
            if let Err(reason) = send(&mut tx, reply, &mut live, &cancel).await {
                return reason;
            }
        }
    }
}

/// The next probe request; pending forever without an inbox.
async fn next_probe(probes: &mut Option<mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match probes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends `msg` (and the ping liveness asks for meanwhile). A peer that
/// stops reading must not pin the session: the send gives way to
/// cancellation and to liveness, which drops a peer whose link has
/// stalled for longer than its bound.
pub(crate) async fn send(
    tx: &mut FramedWrite<tokio::net::tcp::OwnedWriteHalf, MessageEncoder>,
    msg: Vec<u8>,
    live: &mut Liveness,
    cancel: &CancellationToken,
) -> Result<(), DisconnectReason> {
    let mut next = Some(msg);
    while let Some(msg) = next.take() {
        let sending = tx.send(msg);
        tokio::pin!(sending);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return Err(DisconnectReason::Cancelled),
                action = liveness::next_action(live) => match action {
                    // At most one: the next action is the pong's deadline.
                    Action::SendPing(ping) => next = Some(ping.encode()),
                    Action::Disconnect(e) => return Err(dead(e)),
                },
                sent = &mut sending => {
                    sent.map_err(|e| DisconnectReason::Remote(e.to_string()))?;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// The reason a session ends when liveness finds the peer dead: the
/// `liveness` error's text (`no reply to a ping within 30s`).
pub(crate) fn dead(e: liveness::Error) -> DisconnectReason {
    match e {
        liveness::Error::PongTimeout { .. } => DisconnectReason::TimedOut,
        e if e.is_peer_fault() => DisconnectReason::PeerFault(e.to_string()),
        e => DisconnectReason::Local(e.to_string()),
    }
}

pub(crate) fn direction_name(d: Direction) -> &'static str {
    match d {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    }
}
