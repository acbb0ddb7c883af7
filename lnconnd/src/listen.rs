//! `lnconnd listen`: accept BOLT 8 connections.

use std::process::ExitCode;
use std::sync::Arc;

use brontide::{DialConfig, Listener, ListenerConfig, ListenerEvent, ListenerStats};
use serde_json::{json, Value};
use server::Config;

use crate::cli::ListenArgs;
use crate::node::{node, print_events, Interrupt};
use crate::output::Output;
use crate::peer::SessionOpts;
use crate::Failure;

pub(crate) async fn run(
    args: ListenArgs,
    out: Arc<Output>,
    interrupt: &mut Interrupt,
) -> Result<ExitCode, Failure> {
    let key = crate::load_key(&args.key)?;
    let opts = SessionOpts {
        out: Some(Arc::clone(&out)),
        echo: args.echo,
        on_init: None,
        ..SessionOpts::default()
    };
    let node = node(&key, Config::default(), DialConfig::default(), opts);
    let listener = Listener::bind(
        args.bind,
        key.clone(),
        ListenerConfig::default().with_filter(node.accept_filter()),
    )
    .await
    .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", args.bind)))?;
    print_events(&node, Arc::clone(&out));
    let monitor = listener.monitor();
    print_refusals(monitor.subscribe(), Arc::clone(&out));
    let addr = node.serve(listener);
    out.event(
        "listening",
        json!({
            "pubkey": key.public_key().to_string(),
            "addr": addr.to_string(),
            "echo": args.echo,
        }),
        || format!("listening on {}@{addr}", key.public_key()),
    );
    interrupt.wait().await;
    node.shutdown().await;
    let stats = monitor.stats();
    out.event("stopped", counters(&stats), || {
        format!(
            "stopped: {} accepted, {} established, {} failed",
            stats.accepted,
            stats.established,
            stats.failed()
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// Prints every inbound handshake the listener refused or lost, until it
/// stops.
fn print_refusals(mut events: brontide::ListenerEvents, out: Arc<Output>) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let ListenerEvent::HandshakeFailed(failure) = event else {
                continue;
            };
            let fields = json!({
                "remote_addr": failure.remote_addr.to_string(),
                "act": failure.act.number(),
                "code": failure.code(),
                "reason": failure.reason.to_string(),
                "category": failure.category().to_string(),
            });
            out.event("handshake_failed", fields, || failure.to_string());
        }
    });
}

/// The listener's counters, for the `stopped` event.
fn counters(stats: &ListenerStats) -> Value {
    json!({
        "accepted": stats.accepted,
        "established": stats.established,
        "failed": stats.failed(),
        "peer_faults": stats.peer_faults,
        "timed_out": stats.timed_out,
        "evicted": stats.evicted,
        "refused": stats.refused,
        "io_errors": stats.io_errors,
    })
}
