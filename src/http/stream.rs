//! The event stream over HTTP: `GET /events` as Server-Sent Events and `GET /ws` as a
//! WebSocket, one JSON event per message (see [`crate::events`]). Both take
//! `?session=ID` (only that session's events) and `?since=ID` (replay the events after
//! it first; SSE also reads `Last-Event-ID`). The guard has authenticated the caller (a
//! bearer token, or a ticket from `POST /api/ticket`), and each watcher sees only the
//! sessions its user may see.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router, routing::get};
use serde::Deserialize;

use crate::auth::User;
use crate::events::{Watch, Watcher};

use super::api::ApiState;

/// How often an idle stream sends a keep-alive (SSE comment, WebSocket ping).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The query of `/events` and `/ws`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamQuery {
    /// Only this session's events.
    pub session: Option<String>,
    /// Replay the events after this id first.
    pub since: Option<u64>,
}

/// The stream routes.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/events", get(sse))
        .route("/ws", get(ws))
        .with_state(state)
}

/// What `user` watches: every session when the server has no authentication (everyone is
/// `local`, and sees what `local` owns).
fn watch_of(user: &User, query: StreamQuery, last_event_id: Option<u64>) -> Watch {
    Watch {
        user: Some(user.name.clone()),
        session: query.session.filter(|s| !s.is_empty()),
        since: query.since.or(last_event_id),
    }
}

async fn sse(
    State(state): State<ApiState>,
    Extension(user): Extension<User>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Response {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let watcher = state.hub.watch(watch_of(&user, query, last)).await;
    let stop = state.stop.clone();
    let stream = futures::stream::unfold((watcher, stop), |(mut w, stop)| async move {
        let event = tokio::select! {
            e = w.next() => e?,
            _ = stop.cancelled() => return None,
        };
        let mut sse = SseEvent::default().data(event.json.clone());
        if !event.is_resync() {
            sse = sse.id(event.id.to_string());
        }
        Some((Ok::<_, Infallible>(sse), (w, stop)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

async fn ws(
    State(state): State<ApiState>,
    Extension(user): Extension<User>,
    Query(query): Query<StreamQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let watch = watch_of(&user, query, None);
    upgrade
        .on_upgrade(move |socket| async move {
            let watcher = state.hub.watch(watch).await;
            pump(socket, watcher, state.stop.clone()).await;
        })
        .into_response()
}

/// Send events until the client goes, the server stops or the stream ends.
async fn pump(
    mut socket: WebSocket,
    mut watcher: Watcher,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ping = tokio::time::interval(KEEP_ALIVE);
    ping.reset();
    loop {
        tokio::select! {
            e = watcher.next() => {
                let Some(event) = e else { break };
                if socket.send(Message::Text(event.json.clone().into())).await.is_err() {
                    return;
                }
            }
            m = socket.recv() => match m {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
