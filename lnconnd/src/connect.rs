//! `lnconnd connect`: dial one node.

use std::process::ExitCode;
use std::sync::Arc;

use std::time::Duration;

use brontide::DialConfig;
use serde_json::json;
use server::{AddressPolicy, BrontideDialer, Config, ServerError};
use tokio::sync::mpsc;

use crate::cli::ConnectArgs;
use crate::keys;
use crate::node::{node_with, print_events, Interrupt};
use crate::output::Output;
use crate::peer::SessionOpts;
use crate::Failure;

pub(crate) async fn run(
    args: ConnectArgs,
    out: Arc<Output>,
    interrupt: &mut Interrupt,
) -> Result<ExitCode, Failure> {
    let key = crate::load_key(&args.key)?;
    let (inits, mut on_init) = mpsc::unbounded_channel();
    let opts = SessionOpts {
        out: Some(Arc::clone(&out)),
        echo: false,
        on_init: Some(inits),
        ..SessionOpts::default()
    };
    // Tor takes longer: the default timeout is lnd's 120 s through a proxy.
    let timeout = args.timeout.unwrap_or(if args.proxy.is_some() {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(30)
    });
    let mut config = Config::default();
    config.worker = config
        .worker
        .with_attempt_timeout(timeout)
        .map_err(|e| Failure::Usage(format!("--timeout: {e}")))?;
    config.worker = config.worker.with_seed(keys::random_u64());
    // One deadline for the whole connect, proxy included.
    let dial = DialConfig::default().with_connect_timeout(timeout);
    let transport = crate::node::transport(args.proxy, args.proxy_all, args.stream_isolation);
    let dialer = BrontideDialer::new(key.clone(), dial).with_transport(transport);
    // The proxy is configured once: what the server dials follows from it.
    config.addresses = AddressPolicy::for_dialer(&dialer);
    let node = node_with(&key, config, dialer, opts);
    out.event(
        "started",
        json!({ "pubkey": key.public_key().to_string(), "peer": args.node.to_string() }),
        || {
            format!(
                "our node: {}\nconnecting to {}",
                key.public_key(),
                args.node
            )
        },
    );
    print_events(&node, Arc::clone(&out));
    let peer = args.node.pubkey;
    let result = node.connect(args.node.clone(), args.perm).await;
    if let Err(e) = result {
        node.shutdown().await;
        return Err(match e {
            e @ ServerError::Unreachable { .. } => Failure::Usage(format!(
                "connect to {} failed: {} (give one with --proxy, e.g. 127.0.0.1:9050)",
                args.node,
                crate::error_chain(&e)
            )),
            ServerError::Dial { source, .. } => Failure::Runtime(format!(
                "connect to {} failed: {}",
                args.node,
                crate::error_chain(&*source)
            )),
            e => Failure::Runtime(format!("connect to {} failed: {e}", args.node)),
        });
    }
    let code = loop {
        tokio::select! {
            got = on_init.recv() => {
                if got == Some(peer) && args.exit_after_init {
                    break ExitCode::SUCCESS;
                }
            }
            () = interrupt.wait() => break ExitCode::SUCCESS,
            () = wait_disconnected(&node, peer), if !args.perm => {
                node.shutdown().await;
                return Err(Failure::Runtime(format!("{peer} closed the connection")));
            }
        }
    };
    node.shutdown().await;
    Ok(code)
}

/// Completes when `peer` is no longer connected.
async fn wait_disconnected(node: &crate::node::Node, peer: bitcoin::secp256k1::PublicKey) {
    let mut events = node.events();
    while node.is_connected(&peer) {
        let _ = events.recv().await;
    }
}
