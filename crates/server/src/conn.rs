//! One client connection: read a frame, decode it, serve it, write the
//! answer, in order (Kafka serves one request at a time per connection, so
//! pipelined requests are answered in the order sent).
//!
//! Bounds: a frame longer than `max_request_bytes` (Kafka's
//! `socket.request.max.bytes`), or any request but Produce longer than
//! [`MAX_OTHER_REQUEST_BYTES`], closes the connection before it is read;
//! the bytes of frames being read across all connections are capped by
//! `max_inflight_request_bytes` (Kafka's `queued.max.request.bytes`),
//! charged as bytes arrive, and a connection waits for room; a connection
//! silent for `idle_timeout` is closed. Anything that does not decode
//! closes this connection and nothing else.

use std::io::{self, BufReader, IoSlice, Read, Write};
use std::net::TcpStream;

use crate::api::{self, Chunk, Ctx, Reply};
use crate::wire::{self, FrameError, API_VERSIONS};

/// The largest request other than Produce: a Metadata or OffsetCommit
/// request of this size names hundreds of thousands of partitions.
pub const MAX_OTHER_REQUEST_BYTES: usize = 8 << 20;

/// How long a connection may fall silent in the middle of a request.
const REQUEST_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// A frame's bytes are read, and charged to the shared budget, at most
/// this many at a time (on the connection thread's stack).
const READ_CHUNK: usize = 32 << 10;

/// Serves `stream` until the client closes it, sends something that is not
/// a request this server serves, or the server stops.
pub(crate) fn serve(ctx: &Ctx, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::with_capacity(64 << 10, read_half);
    let mut out = stream;
    let peer = out
        .peer_addr()
        .map(|a| format!("/{}", a.ip()))
        .unwrap_or_default();
    while !ctx.stopping() {
        match serve_one(ctx, &peer, &mut input, &mut out) {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
    }
    let _ = out.shutdown(std::net::Shutdown::Both);
}

/// Serves one request; `Ok(false)` when the connection should close.
fn serve_one(
    ctx: &Ctx,
    peer: &str,
    input: &mut impl Read,
    out: &mut TcpStream,
) -> io::Result<bool> {
    let mut head = [0u8; 4];
    // Kafka's `connections.max.idle.ms` between requests; inside one, a
    // silence of `REQUEST_STALL` closes the connection.
    let _ = out.set_read_timeout(Some(ctx.config.idle_timeout));
    input.read_exact(&mut head)?;
    let _ = out.set_read_timeout(Some(REQUEST_STALL.min(ctx.config.idle_timeout)));
    let len = i32::from_be_bytes(head);
    let Ok(len) = usize::try_from(len) else {
        return Ok(false);
    };
    if len < 8 || len > ctx.config.max_request_bytes {
        return Ok(false);
    }
    let mut first = [0u8; 8];
    input.read_exact(&mut first)?;
    let key = i16::from_be_bytes([first[0], first[1]]);
    if key != 0 && len > MAX_OTHER_REQUEST_BYTES {
        return Ok(false);
    }
    // The frame grows as its bytes arrive, and the shared budget is
    // charged for what arrived: a client that announces a large frame and
    // sends little costs little, and holds back no one else.
    let mut permit = ctx.inflight.admit();
    let mut frame = Vec::with_capacity(len.min(READ_CHUNK));
    frame.extend_from_slice(&first);
    let mut buf = [0u8; READ_CHUNK];
    while frame.len() < len {
        let want = (len - frame.len()).min(READ_CHUNK);
        let got = match input.read(&mut buf[..want]) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        permit.grow(got);
        frame.extend_from_slice(&buf[..got]);
    }
    let reply = match wire::decode(&frame) {
        Ok((header, req)) => api::handle(ctx, peer, &header, req),
        Err(FrameError::UnsupportedVersion { key, .. }) if key == API_VERSIONS => {
            // Kafka's answer to an ApiVersions version it does not know: a
            // v0 header and body naming the versions it does.
            let (_, _, correlation_id) = wire::peek_header(&frame).unwrap_or((0, 0, 0));
            let mut b = correlation_id.to_be_bytes().to_vec();
            b.extend_from_slice(&wire::unsupported_api_versions_body());
            Reply::Chunks(vec![Chunk::Bytes(b)])
        }
        Err(e) => {
            if ctx.config.log_errors {
                eprintln!("streamlog-server: closing connection from {peer}: {e}");
            }
            return Ok(false);
        }
    };
    drop(frame);
    match reply {
        Reply::Silent => Ok(true),
        Reply::Close => Ok(false),
        Reply::Chunks(chunks) => {
            write_chunks(out, &chunks)?;
            Ok(true)
        }
    }
}

/// Writes a length prefix and the chunks with vectored writes: stored
/// batches go from the log's mappings to the socket.
fn write_chunks(out: &mut TcpStream, chunks: &[Chunk]) -> io::Result<()> {
    let total: usize = chunks
        .iter()
        .map(|c| match c {
            Chunk::Bytes(b) => b.len(),
            Chunk::Batches(s) => s.size_bytes(),
        })
        .sum();
    let len = i32::try_from(total)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "response over 2 GiB"))?
        .to_be_bytes();
    let mut slices = vec![IoSlice::new(&len)];
    for c in chunks {
        match c {
            Chunk::Bytes(b) if b.is_empty() => {}
            Chunk::Bytes(b) => slices.push(IoSlice::new(b)),
            Chunk::Batches(s) => slices.extend(s.iter().map(|b| IoSlice::new(b.bytes()))),
        }
    }
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match out.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
