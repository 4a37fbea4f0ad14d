//! Clients of the event stream for tests: a Server-Sent Events reader over reqwest (the
//! SSE framing is three lines of parsing) and a WebSocket reader over tokio-tungstenite,
//! each yielding the events as JSON.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// The server's base URL (`http://host:port`) from its MCP URL.
pub fn base(mcp_url: &str) -> String {
    mcp_url.trim_end_matches("/mcp").to_owned()
}

/// A single-use ticket for `/ws`, bought with `token`.
pub async fn ticket(base: &str, token: &str) -> String {
    let r: Value = reqwest::Client::new()
        .post(format!("{base}/api/ticket"))
        .bearer_auth(token)
        .send()
        .await
        .expect("POST /api/ticket")
        .json()
        .await
        .expect("a JSON ticket");
    r["ticket"].as_str().expect("ticket").to_owned()
}

/// An open `GET /events` stream.
pub struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    /// Open `/events?QUERY` with `token` and, when given, `Last-Event-ID`.
    pub async fn open(base: &str, token: &str, query: &str, last_event_id: Option<u64>) -> Self {
        let mut req = reqwest::Client::new()
            .get(format!("{base}/events?{query}"))
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.expect("GET /events");
        assert_eq!(resp.status(), 200, "GET /events");
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event, or `None` when none comes before `deadline`.
    pub async fn next_by(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let data: Vec<&str> = frame
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                    .collect();
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(serde_json::from_str(&data.join("\n")).expect("JSON event"));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return None,
            }
        }
    }
}

/// An open `GET /ws` stream.
pub struct Ws {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Ws {
    /// Open `/ws?QUERY` (the query carries the ticket).
    pub async fn open(base: &str, query: &str) -> Self {
        let url = format!("{}/ws?{query}", base.replacen("http://", "ws://", 1));
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket upgrade");
        Ws { socket }
    }

    /// The next event, or `None` when none comes before `deadline`.
    pub async fn next_by(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.socket.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(&t).expect("JSON event"));
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }
}

/// A deadline `d` from now.
pub fn within(d: Duration) -> Instant {
    Instant::now() + d
}
