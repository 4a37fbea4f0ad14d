//! The `blender-session-mcp` binary: parse flags, send logs to stderr, run a command.

use anyhow::Context;
use blender_session_mcp::cli::{BlenderArgs, Cli, Command, LogFormat, ServeArgs};
use blender_session_mcp::mcp::BlenderServer;
use blender_session_mcp::session::Registry;
use clap::Parser;
use rmcp::ServiceExt;
use rmcp::transport::stdio_pipes;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn init_logs(args: &BlenderArgs) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let registry = Registry::new(args.registry_config());
    let cleanup = registry.spawn_cleanup();
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));

    let server = BlenderServer::new(registry.clone());
    let service = server
        .serve_with_ct(stdio_pipes(), stop.clone())
        .await
        .context("MCP initialization over stdio failed")?;
    let reason = service.waiting().await;
    tracing::info!("MCP service ended: {reason:?}");
    registry.shutdown().await;
    let _ = cleanup.await;
    Ok(())
}

async fn stop_on_signal(stop: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("signal received: shutting down");
    stop.cancel();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        None => {
            init_logs(&cli.serve.blender);
            serve(cli.serve).await
        }
        Some(Command::Serve(args)) => {
            init_logs(&args.blender);
            serve(args).await
        }
        Some(Command::Check(args)) => {
            init_logs(&args.blender);
            let code = blender_session_mcp::cli::check(&args).await;
            std::process::exit(code);
        }
    }
}
