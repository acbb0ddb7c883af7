//! `lnconnd listen`: accept BOLT 8 connections.

use std::process::ExitCode;
use std::sync::Arc;

use brontide::{DialConfig, Listener, ListenerConfig};
use serde_json::json;
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
    out.event("stopped", json!({}), || "stopped".into());
    Ok(ExitCode::SUCCESS)
}
