//! A client that disconnects mid-call cancels its command, as on stdio.
//!
//! Over HTTP with an MCP session, each request's answer streams back on that POST's own
//! response (SSE). When the client goes away the response body is dropped, but rmcp's
//! session keeps the handler running until the whole MCP session times out. So this layer
//! remembers the JSON-RPC id of each request POSTed in a session and, if its response body
//! is dropped before it ended, tells the session `notifications/cancelled` for that id,
//! exactly what a polite client sends: the command path then records `cancelled` and drops
//! the Blender connection if the command was already sent. Requests without an MCP session
//! (2026-07-28) are cancelled on disconnect by rmcp itself.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tower::ServiceExt;

/// The MCP service requests are cancelled through, and the body limit.
pub struct CancelState<S> {
    /// The MCP service (a clone of the one behind the route).
    pub mcp: S,
    /// Largest request body read.
    pub max_body_bytes: usize,
}

/// The JSON-RPC id of a request body (not of a notification or a response).
fn request_id(body: &[u8]) -> Option<Value> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    obj.get("method")?;
    obj.get("id").cloned()
}

/// The middleware.
pub async fn cancel_on_disconnect<S>(
    State(state): State<std::sync::Arc<CancelState<S>>>,
    req: Request,
    next: Next,
) -> Response
where
    S: tower::Service<Request<Body>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Response: Send,
{
    if req.method() != Method::POST || !req.headers().contains_key("mcp-session-id") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than the server accepts ({} bytes, --max-body-bytes)",
                    state.max_body_bytes
                ),
            )
                .into_response();
        }
    };
    let id = request_id(&bytes);
    let headers = parts.headers.clone();
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let Some(id) = id else {
        return response;
    };
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !streaming {
        return response;
    }
    let mcp = state.mcp.clone();
    let (parts, body) = response.into_parts();
    let guarded = Guarded {
        inner: body,
        on_drop: Some(Box::new(move || {
            tokio::spawn(send_cancel(mcp, headers, id));
        })),
    };
    Response::from_parts(parts, Body::new(guarded))
}

/// Tell the MCP session (named in `headers`) that request `id` is cancelled.
async fn send_cancel<S>(mcp: S, headers: HeaderMap, id: Value)
where
    S: tower::Service<Request<Body>, Error = Infallible> + Send,
    S::Future: Send,
    S::Response: Send,
{
    let note = serde_json::json!({
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": id, "reason": "the HTTP client disconnected"}
    });
    let mut req = Request::new(Body::from(note.to_string()));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = axum::http::Uri::from_static("/");
    for name in [
        "mcp-session-id",
        "mcp-protocol-version",
        header::HOST.as_str(),
    ] {
        if let Some(v) = headers.get(name) {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap_or(header::HOST),
                v.clone(),
            );
        }
    }
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    req.headers_mut().insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    tracing::debug!("an HTTP client disconnected mid-call: cancelling its request {id}");
    let _ = mcp.oneshot(req).await;
}

type OnDrop = Box<dyn FnOnce() + Send>;

/// A response body that runs `on_drop` if dropped before its end.
struct Guarded {
    inner: Body,
    on_drop: Option<OnDrop>,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = poll {
            // The answer was streamed whole: nothing to cancel.
            self.on_drop = None;
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_requests_have_an_id_to_cancel() {
        assert_eq!(
            request_id(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call"}"#),
            Some(Value::from(7))
        );
        assert_eq!(
            request_id(br#"{"jsonrpc":"2.0","method":"notifications/x"}"#),
            None
        );
        assert_eq!(request_id(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#), None);
        assert_eq!(request_id(b"[1,2]"), None);
        assert_eq!(request_id(b"nope"), None);
    }
}
