//! One keep-alive TCP connection to the BlenderMCP addon.
//!
//! A [`Connection`] carries exactly one request at a time: [`Connection::round_trip`] takes
//! `&mut self`, so two requests can never share the wire. It knows nothing of timeouts or
//! cancellation: the caller wraps a round trip in both and **drops the connection** when
//! either fires, because a late reply would otherwise be read as the answer to the next
//! command (the classic addon cannot cancel a command). Before reusing an idle connection the caller
//! asks [`Connection::probe_idle`] whether the peer closed it (Blender restarted) or sent
//! bytes nobody asked for.
//!
//! [`Connection::round_trip_within`] is the bounded variant for probing a port whose owner is
//! unknown (`check`): short limits on the first byte and on the rest of the reply, and the
//! first bytes of whatever answered, so the caller can name it.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

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

/// How many of the first reply bytes a bounded round trip keeps for its caller.
const HEAD_BYTES: usize = 256;

/// Limits of [`Connection::round_trip_within`].
#[derive(Debug, Clone, Copy)]
pub struct ReplyLimits {
    /// From the start of the request to the first byte of the reply.
    pub first_byte: Duration,
    /// From the first byte of the reply to its end.
    pub rest: Duration,
}

/// Why a bounded round trip ended without a reply. Each variant but [`BoundedError::Silent`]
/// keeps the first bytes that arrived, which tell what holds the port.
#[derive(Debug, thiserror::Error)]
pub enum BoundedError {
    /// Not one byte of reply arrived in time (or the peer did not even take the request).
    #[error("nothing answered within {after:?}")]
    Silent {
        /// The first-byte limit.
        after: Duration,
    },
    /// The reply started but did not end in time.
    #[error(
        "the reply did not complete within {after:?} of its first byte ({received} byte(s) received)"
    )]
    Unfinished {
        /// The limit for the rest of the reply.
        after: Duration,
        /// Reply bytes received.
        received: usize,
        /// The first of them.
        head: Vec<u8>,
    },
    /// The exchange failed as an unbounded one would have.
    #[error("{source}")]
    Failed {
        /// What failed.
        #[source]
        source: ConnectionError,
        /// The first reply bytes received before it failed.
        head: Vec<u8>,
    },
}

impl BoundedError {
    /// The first reply bytes received, empty when none came.
    pub fn head(&self) -> &[u8] {
        match self {
            BoundedError::Silent { .. } => &[],
            BoundedError::Unfinished { head, .. } | BoundedError::Failed { head, .. } => head,
        }
    }
}

/// A keep-alive TCP connection to the addon.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    max_reply_bytes: usize,
    /// Whether the peer said it stops a running command on `cancel`.
    can_cancel: bool,
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
            can_cancel: false,
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
            if let Some(reply) = self.read_more(&mut decoder).await? {
                self.can_cancel = decoder.can_cancel();
                return Ok(reply);
            }
        }
    }

    /// Whether the peer's last reply said it stops a running command on `cancel` (this
    /// project's headless server; the classic addon cannot stop a script).
    pub fn can_cancel(&self) -> bool {
        self.can_cancel
    }

    /// Resolve once the peer has sent something or closed the connection.
    pub async fn readable(&self) {
        let _ = self.stream.readable().await;
    }

    /// [`Connection::round_trip`] with every wait bounded: the request written and the first
    /// reply byte read within `limits.first_byte`, the rest of the reply within `limits.rest`
    /// of that byte. The reply is decoded by the same rules. After an error the connection
    /// must be dropped.
    pub async fn round_trip_within(
        &mut self,
        request: &[u8],
        limits: ReplyLimits,
    ) -> Result<Reply, BoundedError> {
        let first_deadline = Instant::now() + limits.first_byte;
        let failed = |source: ConnectionError, decoder: &mut ReplyDecoder| BoundedError::Failed {
            source,
            head: head(decoder),
        };
        match tokio::time::timeout_at(first_deadline, self.stream.write_all(request)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(BoundedError::Failed {
                    source: e.into(),
                    head: Vec::new(),
                });
            }
            Err(_) => {
                return Err(BoundedError::Silent {
                    after: limits.first_byte,
                });
            }
        }
        let mut decoder = ReplyDecoder::new(self.max_reply_bytes);
        // Until the first byte the deadline is the first-byte one; from then on the rest's.
        let mut deadline = first_deadline;
        let mut in_rest = false;
        loop {
            let read = tokio::time::timeout_at(deadline, self.read_more(&mut decoder)).await;
            let started = decoder.buffered() > 0;
            match read {
                Ok(Ok(Some(reply))) => return Ok(reply),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => return Err(failed(e, &mut decoder)),
                Err(_) if !started => {
                    return Err(BoundedError::Silent {
                        after: limits.first_byte,
                    });
                }
                Err(_) => {
                    return Err(BoundedError::Unfinished {
                        after: limits.rest,
                        received: decoder.buffered(),
                        head: head(&mut decoder),
                    });
                }
            }
            if started && !in_rest {
                in_rest = true;
                deadline = Instant::now() + limits.rest;
            }
        }
    }

    /// One socket read into `decoder`, then decode: `Some` once the reply is complete.
    async fn read_more(
        &mut self,
        decoder: &mut ReplyDecoder,
    ) -> Result<Option<Reply>, ConnectionError> {
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
        Ok(decoder.decode_appended()?)
    }

    /// Close the connection cleanly: send FIN so the addon's client thread ends.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
    }
}

/// The first [`HEAD_BYTES`] bytes a decoder holds.
fn head(decoder: &mut ReplyDecoder) -> Vec<u8> {
    let buf = decoder.buffer_mut();
    buf[..buf.len().min(HEAD_BYTES)].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const LIMITS: ReplyLimits = ReplyLimits {
        first_byte: Duration::from_millis(300),
        rest: Duration::from_millis(300),
    };

    /// A peer that reads the request, then writes `chunks` with `pause` between them and
    /// holds the connection open.
    async fn peer(chunks: &'static [&'static [u8]], pause: Duration) -> Connection {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = [0u8; 256];
            let _ = socket.read(&mut buf).await;
            for chunk in chunks {
                let _ = socket.write_all(chunk).await;
                tokio::time::sleep(pause).await;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        Connection::connect(&Target::new("127.0.0.1", port), LIMITS.first_byte, 1 << 20)
            .await
            .expect("connect")
    }

    #[tokio::test]
    async fn bounded_round_trip_decodes_a_reply_in_pieces() {
        let mut conn = peer(
            &[br#"{"status": "succ"#, br#"ess", "result": 1}"#],
            Duration::from_millis(50),
        )
        .await;
        let reply = conn.round_trip_within(b"{}", LIMITS).await.expect("reply");
        assert_eq!(reply, Reply::Success(serde_json::json!(1)));
    }

    #[tokio::test]
    async fn bounded_round_trip_names_silence_and_an_unfinished_reply() {
        let mut conn = peer(&[], Duration::ZERO).await;
        let e = conn
            .round_trip_within(b"{}", LIMITS)
            .await
            .expect_err("silent");
        assert!(matches!(e, BoundedError::Silent { .. }), "{e:?}");
        assert!(e.head().is_empty());

        let mut conn = peer(&[br#"{"status""#], Duration::ZERO).await;
        let e = conn
            .round_trip_within(b"{}", LIMITS)
            .await
            .expect_err("unfinished");
        assert!(
            matches!(e, BoundedError::Unfinished { received: 9, .. }),
            "{e:?}"
        );
        assert_eq!(e.head(), br#"{"status""#);
    }

    #[tokio::test]
    async fn bounded_round_trip_keeps_the_head_of_a_foreign_reply() {
        let mut conn = peer(&[b"HTTP/1.1 400 Bad Request\r\n\r\n"], Duration::ZERO).await;
        let e = conn
            .round_trip_within(b"{}", LIMITS)
            .await
            .expect_err("not json");
        assert!(
            matches!(
                e,
                BoundedError::Failed {
                    source: ConnectionError::Protocol(ProtocolError::Malformed { .. }),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.head().starts_with(b"HTTP/1.1 400"));
    }
}
