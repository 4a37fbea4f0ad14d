//! The stdio transport: rmcp's line-delimited JSON-RPC over this process's stdin/stdout,
//! with a configurable message-size bound and a signal the moment stdin reaches EOF.
//!
//! rmcp waits up to 5 s for in-flight handlers after stdin EOF; signalling EOF at once lets
//! the server close every session (ending commands in flight, which are recorded as
//! cancelled) and exit promptly instead.

use std::pin::Pin;
use std::task::{Context, Poll};

use rmcp::RoleServer;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::transport::io::{StdioReader, StdioWriter, stdio_pipes};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

/// An `AsyncRead` that cancels a token when its inner reader reports end of file.
#[derive(Debug)]
pub struct EofSignal<R> {
    inner: R,
    eof: CancellationToken,
}

impl<R> EofSignal<R> {
    /// Wrap `inner`; `eof` is cancelled at its end of file.
    pub fn new(inner: R, eof: CancellationToken) -> Self {
        EofSignal { inner, eof }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for EofSignal<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(result) = &poll
            && (result.is_err() || (wanted && buf.filled().len() == before))
        {
            self.eof.cancel();
        }
        poll
    }
}

/// The server's stdio transport: lines up to `max_message_bytes` (longer ones are dropped
/// by rmcp), and `eof` cancelled when stdin closes.
pub fn transport(
    max_message_bytes: usize,
    eof: CancellationToken,
) -> AsyncRwTransport<RoleServer, EofSignal<StdioReader>, StdioWriter> {
    let (reader, writer) = stdio_pipes();
    AsyncRwTransport::new(EofSignal::new(reader, eof), writer)
        .with_max_line_length(max_message_bytes)
}
