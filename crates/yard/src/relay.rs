//! `yard relay`: one port (DevTools, or websockify with the noVNC page)
//! relayed behind the relay token, until SIGTERM or SIGINT. `yard aio`
//! runs two of these as services; they also run alone beside any browser.

use std::process::ExitCode;

use anyhow::Context;
use tokio::net::TcpListener;
use yard_relay::{Access, RelayConfig, check_open_access, relay_token};
use yard_services::DataDir;

use crate::cli::RelayArgs;
use crate::serve::stop_signal;

pub(crate) async fn run(args: &RelayArgs) -> anyhow::Result<ExitCode> {
    let access = if args.open {
        Access::Open
    } else {
        let data_dir = args.data_dir.clone().unwrap_or_else(DataDir::default_path);
        Access::Token(
            relay_token(args.token.clone(), &data_dir)
                .context("cannot read or make the relay token")?,
        )
    };
    check_open_access(args.listen, &access)?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(listen = %args.listen, upstream = %args.upstream, open = args.open, "relaying");
    let config = RelayConfig {
        upstream: args.upstream.clone(),
        access,
    };
    yard_relay::run(listener, config, stop_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
