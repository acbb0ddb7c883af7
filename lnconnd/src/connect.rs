//! `lnconnd connect`: dial one node.

use std::process::ExitCode;
use std::sync::Arc;

use brontide::DialConfig;
use serde_json::json;
use server::{Config, ServerError};
use tokio::sync::mpsc;

use crate::cli::ConnectArgs;
use crate::keys;
use crate::node::{node, print_events, Interrupt};
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
    };
    let mut config = Config::default();
    config.dial_timeout = args.timeout;
    config.worker = config.worker.with_seed(keys::random_u64());
    let dial = DialConfig::default().with_connect_timeout(args.timeout);
    let node = node(&key, config, dial, opts);
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
            ServerError::Dial(e) => {
                Failure::Runtime(format!("connect to {} failed: {e}", args.node))
            }
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
