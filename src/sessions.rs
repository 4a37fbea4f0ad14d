//! The `sessions` command: a shell view of the session store (`list`, `show`, `history`,
//! `close`, `prune`), as tables or, with `--json`, as the JSON the tools return.

use std::sync::Arc;

use serde::Serialize;

use clap::{Args, Subcommand};

use crate::cli::StoreArgs;
use crate::session::{Registry, RegistryConfig, SessionError, SessionInfo};
use crate::store::SessionStore;

/// Flags of `sessions`.
#[derive(Debug, Clone, Args)]
pub struct SessionsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: SessionsAction,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub store: StoreArgs,
    /// History entries kept per session (used when entries are written).
    #[arg(long, default_value_t = 1000)]
    pub history_limit: usize,
}

/// `sessions` actions.
#[derive(Debug, Clone, Subcommand)]
pub enum SessionsAction {
    /// Every open session (with --all, the closed ones not yet pruned too).
    List {
        /// Include closed sessions.
        #[arg(long)]
        all: bool,
    },
    /// One session's record.
    Show {
        /// The session id.
        id: String,
    },
    /// One session's history, oldest first.
    History {
        /// The session id.
        id: String,
        /// Only the newest this many entries.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Close a session (for every process using the store).
    Close {
        /// The session id.
        id: String,
    },
    /// Delete sessions closed longer than --retain-closed ago, with their history.
    Prune,
}

/// Run `sessions`; the process exit code.
pub async fn run(args: &SessionsArgs) -> i32 {
    let store = match args.store.config(args.history_limit).open().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let config = RegistryConfig {
        history_limit: args.history_limit,
        retain_closed: args.store.retain_closed,
        ..RegistryConfig::default()
    };
    let backend = Arc::new(config.classic_backend());
    let registry = Registry::with_store(config, backend, store.clone());
    match act(args, &registry, store.as_ref()).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: {e}"),
    }
}

fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

fn table(rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

fn session_rows(sessions: &[SessionInfo]) -> Vec<Vec<String>> {
    let mut rows = vec![
        [
            "ID", "NAME", "OWNER", "STATUS", "COMMANDS", "IDLE", "BLENDER",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for s in sessions {
        rows.push(vec![
            s.session_id.clone(),
            s.name.clone().unwrap_or_else(|| "-".into()),
            s.owner.clone(),
            s.status.as_str().into(),
            s.command_count.to_string(),
            age(s.idle_seconds),
            format!("{}:{}", s.blender.host, s.blender.port),
        ]);
    }
    rows
}

async fn act(
    args: &SessionsArgs,
    registry: &Registry,
    store: &dyn SessionStore,
) -> Result<(), SessionError> {
    match &args.action {
        SessionsAction::List { all } => {
            let sessions = registry.list_sessions_with(*all).await?;
            if args.json {
                print_json(&serde_json::json!({"count": sessions.len(), "sessions": sessions}));
            } else if sessions.is_empty() {
                println!("No sessions in {}.", store.location());
            } else {
                table(&session_rows(&sessions));
            }
        }
        SessionsAction::Show { id } => {
            let info = registry.get_session_info(id).await?;
            if args.json {
                print_json(&info);
            } else {
                table(&session_rows(std::slice::from_ref(&info)));
                println!();
                println!("objects: {}", info.state.objects.len());
                if let Some(c) = &info.state.last_command {
                    println!("last command: {c}");
                }
                println!(
                    "history: {} kept, {} dropped",
                    info.history_kept, info.history_dropped
                );
            }
        }
        SessionsAction::History { id, limit } => {
            let page = registry.get_session_history(id, *limit).await?;
            if args.json {
                print_json(&page);
            } else {
                let mut rows = vec![
                    [
                        "SEQ", "TIME", "TOOL", "COMMAND", "OUTCOME", "SECONDS", "MESSAGE",
                    ]
                    .map(String::from)
                    .to_vec(),
                ];
                for e in &page.entries {
                    let when = chrono::DateTime::from_timestamp(e.timestamp as i64, 0)
                        .map(|t| {
                            t.with_timezone(&chrono::Local)
                                .format("%Y-%m-%d %H:%M:%S")
                                .to_string()
                        })
                        .unwrap_or_default();
                    rows.push(vec![
                        e.seq.to_string(),
                        when,
                        e.tool.clone(),
                        e.command.clone(),
                        e.outcome.as_str().into(),
                        format!("{:.3}", e.duration),
                        one_line(e.message.as_deref().unwrap_or(""), 60),
                    ]);
                }
                table(&rows);
                println!("{} commands, {} dropped", page.total, page.dropped);
            }
        }
        SessionsAction::Close { id } => {
            let info = registry.close_session(id).await?;
            if args.json {
                print_json(&info);
            } else {
                println!("Closed {id}.");
            }
        }
        SessionsAction::Prune => {
            let before = crate::session::clock::unix_now() - args.store.retain_closed.as_secs_f64();
            let n = store.prune(before).await?;
            if args.json {
                print_json(&serde_json::json!({"pruned": n}));
            } else {
                println!("Pruned {n} closed session(s).");
            }
        }
    }
    Ok(())
}
