//! Our node: a server over brontide with the example application, and the
//! printing of its events.

use std::sync::Arc;

use brontide::{DialConfig, NodeKeyPair};
use conn_worker::TokioClock;
use serde_json::json;
use server::{BrontideDialer, Config, Server, ServerEvent};
use tokio::sync::broadcast::error::RecvError;

use crate::output::Output;
use crate::peer::{direction_name, App, SessionOpts};

/// The server type this program runs.
pub(crate) type Node = Server<BrontideDialer, TokioClock, App>;

/// A node with key `key`, these settings and this application.
pub(crate) fn node(key: &NodeKeyPair, config: Config, dial: DialConfig, opts: SessionOpts) -> Node {
    node_with(key, config, BrontideDialer::new(key.clone(), dial), opts)
}

/// A node with key `key` that dials with `dialer` (for example through a
/// SOCKS5 proxy).
/// The transport of a node's dials: direct TCP, or through a SOCKS5 proxy
/// for onion addresses (`all`: for every address), each connection on its
/// own Tor circuit if `isolate`.
pub(crate) fn transport(
    proxy: Option<std::net::SocketAddr>,
    all: bool,
    isolate: bool,
) -> brontide::NetTransport {
    let transport = brontide::NetTransport::new();
    let Some(proxy) = proxy else {
        return transport;
    };
    let mut socks = brontide::Socks5::new(proxy);
    if isolate {
        socks = socks.with_stream_isolation();
    }
    let scope = if all {
        brontide::ProxyScope::All
    } else {
        brontide::ProxyScope::OnionOnly
    };
    transport.with_proxy(socks, scope)
}

pub(crate) fn node_with(
    key: &NodeKeyPair,
    config: Config,
    dialer: BrontideDialer,
    opts: SessionOpts,
) -> Node {
    Server::new(key.public_key(), config, dialer, TokioClock, App::new(opts))
}

/// Prints the server's events until it shuts down.
pub(crate) fn print_events(node: &Node, out: Arc<Output>) {
    let mut events = node.events();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => print_event(&out, &event),
                Err(RecvError::Lagged(n)) => out.event("lagged", json!({ "missed": n }), || {
                    format!("(missed {n} events)")
                }),
                Err(RecvError::Closed) => return,
            }
        }
    });
}

fn print_event<E: std::error::Error + 'static>(out: &Output, event: &ServerEvent<E>) {
    match event {
        ServerEvent::Connected {
            peer,
            direction,
            addr,
        } => out.event(
            "connected",
            json!({
                "peer": peer.to_string(),
                "direction": direction_name(*direction),
                "addr": addr.as_ref().map(ToString::to_string),
            }),
            || {
                let at = addr.as_ref().map(|a| format!(" ({a})")).unwrap_or_default();
                format!("{peer}: connected, {}{at}", direction_name(*direction))
            },
        ),
        ServerEvent::Disconnected {
            peer,
            reason,
            lasted,
            reconnecting,
            ..
        } => out.event(
            "disconnected",
            json!({
                "peer": peer.to_string(),
                "reason": format!("{reason:?}"),
                "lasted_ms": lasted.as_millis() as u64,
                "reconnecting": reconnecting,
            }),
            || format!("{peer}: disconnected after {lasted:.1?} ({reason:?})"),
        ),
        ServerEvent::DialStarted { peer, addr } => out.event(
            "dial_started",
            json!({ "peer": peer.to_string(), "addr": addr.to_string() }),
            || format!("{peer}: dialing {addr}"),
        ),
        ServerEvent::DialFailed {
            peer,
            addr,
            failure,
            class,
        } => {
            let error = crate::error_chain(failure);
            out.event(
                "dial_failed",
                json!({
                    "peer": peer.to_string(),
                    "addr": addr.to_string(),
                    "error": error,
                    "class": class.as_str(),
                }),
                || format!("{peer}: dial to {addr} failed ({class}): {error}"),
            );
        }
        ServerEvent::Waiting { peer, wait, .. } => {
            out.event(
                "waiting",
                json!({ "peer": peer.to_string(), "wait_ms": wait.as_millis() as u64 }),
                || format!("{peer}: next attempt in {wait:.1?}"),
            );
        }
        ServerEvent::AddressSkipped { peer, addr, reason } => out.event(
            "address_skipped",
            json!({ "peer": peer.to_string(), "addr": addr.to_string(), "reason": reason.to_string() }),
            || format!("{peer}: not dialing {addr}: {reason}"),
        ),
        ServerEvent::AwaitingAddrs { peer } => out.event(
            "awaiting_addrs",
            json!({ "peer": peer.to_string() }),
            || format!("{peer}: no address to dial; waiting for one"),
        ),
        ServerEvent::DuplicateResolved { peer, kept } => out.event(
            "duplicate_resolved",
            json!({ "peer": peer.to_string(), "kept": direction_name(*kept) }),
            || {
                format!(
                    "{peer}: two connections, kept the {} one",
                    direction_name(*kept)
                )
            },
        ),
        ServerEvent::RefusedBanned { peer } => out.event(
            "refused_banned",
            json!({ "peer": peer.to_string() }),
            || format!("{peer}: banned, refused"),
        ),
        ServerEvent::Idle { .. } | ServerEvent::WorkerStopped { .. } => {}
        _ => {}
    }
}

/// Ctrl-C (SIGINT) and SIGTERM, caught from the moment this is installed:
/// a signal that arrives before [`Interrupt::wait`] is polled is not lost.
pub(crate) struct Interrupt {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Interrupt {
    /// Installs the handlers (within the runtime).
    pub(crate) fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = signal(SignalKind::interrupt())
                .ok()
                .zip(signal(SignalKind::terminate()).ok());
            Interrupt { signals }
        }
        #[cfg(not(unix))]
        Interrupt {}
    }

    /// Completes on the next Ctrl-C or SIGTERM.
    pub(crate) async fn wait(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.signals {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
