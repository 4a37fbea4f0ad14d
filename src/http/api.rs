//! The small JSON API the dashboard reads (every route needs the bearer token; the guard
//! has put the caller's [`User`] in the request):
//!
//! - `GET /api/me`: who the token is;
//! - `POST /api/ticket`: a single-use ticket for `/ws` ([`super::ticket`]);
//! - `GET /api/sessions`: the sessions the user may see;
//! - `GET /api/sessions/{id}?q=&offset=&limit=`: one session, with a page of its tracked
//!   objects whose names contain `q`;
//! - `GET /api/sessions/{id}/history?limit=`: its newest history entries;
//! - `GET /api/sessions/{id}/scene?type=&offset=&limit=`: Blender's scene summary (objects
//!   by type) and a page of its objects, asked of Blender (`get_scene_info`; recorded in the
//!   session's history as tool `dashboard`);
//! - `POST /api/sessions/{id}/screenshot`: a viewport screenshot (PNG).
//!
//! A session the user may not see answers 404, exactly as an unknown one.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::auth::User;
use crate::events::EventHub;
use crate::session::{Call, SessionError};
use crate::store::Access;

use super::ticket::Tickets;

/// Most objects one page lists.
const MAX_PAGE: usize = 1000;

/// Largest screenshot side asked of Blender.
const SCREENSHOT_SIZE: u32 = 1024;

/// What the API and the stream routes share.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// The event stream (and through it the registry).
    pub hub: EventHub,
    /// Tickets for `/ws`.
    pub tickets: Tickets,
    /// Fires when the server stops (streams end).
    pub stop: CancellationToken,
}

/// The API routes.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/ticket", post(ticket))
        .route("/api/sessions", get(sessions))
        .route("/api/sessions/{id}", get(session))
        .route("/api/sessions/{id}/history", get(history))
        .route("/api/sessions/{id}/scene", get(scene))
        .route("/api/sessions/{id}/screenshot", post(screenshot))
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// A session error as an HTTP answer.
fn failed(e: SessionError) -> Response {
    let status = match &e {
        SessionError::NotFound(_) => StatusCode::NOT_FOUND,
        SessionError::ReadOnly(_) | SessionError::NotOwner(_) => StatusCode::FORBIDDEN,
        SessionError::Store(_) | SessionError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
        SessionError::Cancelled { .. } => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    error(status, crate::mcp::errors::error_text(&e))
}

async fn me(Extension(user): Extension<User>) -> Response {
    Json(json!({ "user": user.name, "rights": user.rights.as_str() })).into_response()
}

async fn ticket(State(state): State<ApiState>, Extension(user): Extension<User>) -> Response {
    match state.tickets.issue(user) {
        Ok(ticket) => Json(json!({
            "ticket": ticket,
            "expires_in": super::ticket::TICKET_TTL.as_secs(),
        }))
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn sessions(State(state): State<ApiState>, Extension(user): Extension<User>) -> Response {
    match state.hub.registry().list_sessions_for(&user.name).await {
        Ok(list) => Json(json!({ "sessions": list })).into_response(),
        Err(e) => failed(e),
    }
}

/// The query of `GET /api/sessions/{id}`.
#[derive(Debug, Default, Deserialize)]
struct ObjectsQuery {
    /// Case-insensitive part of the names to list.
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn session(
    State(state): State<ApiState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    Query(query): Query<ObjectsQuery>,
) -> Response {
    let registry = state.hub.registry();
    if let Err(e) = registry.authorize(&id, &user.name, Access::Read).await {
        return failed(e);
    }
    let limit = query.limit.unwrap_or(200).min(MAX_PAGE);
    let info = match registry.get_session_info(&id).await {
        Ok(info) => info,
        Err(e) => return failed(e),
    };
    let (names, matched) = match registry
        .find_objects(&id, &query.q, query.offset, limit)
        .await
    {
        Ok(found) => found,
        Err(e) => return failed(e),
    };
    let objects: Vec<_> = names
        .into_iter()
        .map(|name| json!({ "name": name, "type": null }))
        .collect();
    Json(json!({
        "session": info,
        "objects": objects,
        "matched": matched,
        "types": {},
    }))
    .into_response()
}

/// The query of `GET /api/sessions/{id}/history`.
#[derive(Debug, Default, Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history(
    State(state): State<ApiState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    let registry = state.hub.registry();
    if let Err(e) = registry.authorize(&id, &user.name, Access::Read).await {
        return failed(e);
    }
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    match registry.get_session_history(&id, Some(limit)).await {
        Ok(h) => Json(json!({
            "entries": h.entries,
            "total": h.total,
            "dropped": h.dropped,
        }))
        .into_response(),
        Err(e) => failed(e),
    }
}

/// The query of `GET /api/sessions/{id}/scene`.
#[derive(Debug, Default, Deserialize)]
struct SceneParams {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    offset: usize,
    limit: Option<usize>,
}

async fn scene(
    State(state): State<ApiState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
    Query(params): Query<SceneParams>,
) -> Response {
    let registry = state.hub.registry();
    if let Err(e) = registry.authorize(&id, &user.name, Access::Read).await {
        return failed(e);
    }
    let query = crate::backend::SceneQuery {
        limit: params.limit.unwrap_or(200).min(MAX_PAGE),
        offset: params.offset,
        kind: params.kind.filter(|k| !k.is_empty()),
        max_bytes: registry.config().max_result_bytes,
        ..Default::default()
    };
    match registry
        .scene_info(&id, &Call::new("dashboard"), query)
        .await
    {
        Ok(info) => Json(info).into_response(),
        Err(e) => failed(e),
    }
}

async fn screenshot(
    State(state): State<ApiState>,
    Extension(user): Extension<User>,
    Path(id): Path<String>,
) -> Response {
    let registry = state.hub.registry();
    if let Err(e) = registry.authorize(&id, &user.name, Access::Read).await {
        return failed(e);
    }
    let call = Call::new("dashboard_screenshot");
    match registry.screenshot(&id, SCREENSHOT_SIZE, &call).await {
        Ok(shot) => {
            let mut r = shot.png.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
            r
        }
        Err(e) => failed(e),
    }
}
