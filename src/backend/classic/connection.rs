//! One keep-alive TCP connection to the BlenderMCP addon.
//!
//! A [`Connection`] carries exactly one request at a time: [`Connection::round_trip`] takes
//! `&mut self`, so two requests can never share the wire. It knows nothing of timeouts or
//! cancellation: the caller wraps a round trip in both and **drops the connection** when
//! either fires, because a late reply would otherwise be read as the answer to the next
//! command (the classic addon cannot cancel a command). Before reusing an idle connection the caller
//! asks [`Connection::probe_idle`] whether the peer closed it (Blender restarted) or sent
//! bytes nobody asked for.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::protocol::{ProtocolError, Reply, ReplyDecoder};
use crate::backend::{IdleState, Target};

/// Most bytes read by one socket read. The addon itself reads 8 KiB at a time; reading more
/// per call saves syscalls on large replies.
const READ_CHUNK: usize = 64 * 1024;

/// Why a connection could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Nothing accepted the connection (Blender not running, addon not started, wrong port).
    #[error("Failed to connect to Blender at {target}: {source}")]
    Connect {
        /// Where we tried.
        target: Target,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The connection attempt did not finish within the connect timeout.
    #[error("Failed to connect to Blender at {target}: no answer within {after:?}")]
    ConnectTimeout {
        /// Where we tried.
        target: Target,
        /// The connect timeout.
        after: Duration,
    },
    /// The socket failed while a request was being written or its reply read.
    #[error("the connection to Blender broke: {0}")]
    Io(#[from] io::Error),
    /// Blender closed the connection before its reply was complete.
    #[error("Blender closed the connection before replying ({received} byte(s) of reply received)")]
    Closed {
        /// Reply bytes received before the close.
        received: usize,
    },
    /// The reply could not be decoded; the stream is no longer trustworthy.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// A keep-alive TCP connection to the addon.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    max_reply_bytes: usize,
}

impl Connection {
    /// Connect to `target` within `timeout`, trying IPv4 addresses first.
    pub async fn connect(
        target: &Target,
        timeout: Duration,
        max_reply_bytes: usize,
    ) -> Result<Self, ConnectionError> {
        let attempt = async {
            let host = target.host.trim_matches(['[', ']']);
            let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, target.port))
                .await?
                .collect();
            addrs.sort_by_key(|a| !a.is_ipv4());
            let mut last = io::Error::new(io::ErrorKind::NotFound, "host name has no address");
            for addr in addrs {
                match TcpStream::connect(addr).await {
                    Ok(stream) => return Ok((stream, addr)),
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        let (stream, peer) = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(ok)) => ok,
            Ok(Err(source)) => {
                return Err(ConnectionError::Connect {
                    target: target.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(ConnectionError::ConnectTimeout {
                    target: target.clone(),
                    after: timeout,
                });
            }
        };
        // Requests are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            peer,
            max_reply_bytes,
        })
    }

    /// The address actually connected to.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Check, without blocking, whether an idle connection is still fit to carry a request.
    pub fn probe_idle(&mut self) -> IdleState {
        let mut byte = [0u8; 1];
        match self.stream.try_read(&mut byte) {
            Ok(0) => IdleState::Closed,
            Ok(_) => IdleState::UnexpectedData,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => IdleState::Healthy,
            Err(e) => IdleState::Broken(e.to_string()),
        }
    }

    /// Write one encoded request and read its reply.
    ///
    /// The request must come from [`super::protocol::encode_request`]. The future may be
    /// dropped at any point (timeout, cancellation); the connection must then be dropped too.
    pub async fn round_trip(&mut self, request: &[u8]) -> Result<Reply, ConnectionError> {
        self.stream.write_all(request).await?;
        // Bytes are read straight into the decoder's buffer, never past the size cap; an idle
        // connection holds no read buffer at all.
        let mut decoder = ReplyDecoder::new(self.max_reply_bytes);
        loop {
            let want = decoder.room().min(READ_CHUNK);
            if want == 0 {
                return Err(ProtocolError::ReplyTooLarge {
                    limit: self.max_reply_bytes,
                }
                .into());
            }
            let buf = decoder.buffer_mut();
            if buf.capacity() - buf.len() < want {
                // Grow by an eighth (at least one read) rather than doubling: a large reply
                // then costs about its own size in memory, not up to twice it.
                buf.reserve_exact(want.max(buf.len() / 8));
            }
            let n = (&mut self.stream).take(want as u64).read_buf(buf).await?;
            if n == 0 {
                return Err(ConnectionError::Closed {
                    received: decoder.buffered(),
                });
            }
            if let Some(reply) = decoder.decode_appended()? {
                return Ok(reply);
            }
        }
    }

    /// Resolve once the peer has sent something or closed the connection.
    pub async fn readable(&self) {
        let _ = self.stream.readable().await;
    }

    /// Close the connection cleanly: send FIN so the addon's client thread ends.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
    }
}
