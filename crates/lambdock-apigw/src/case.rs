//! Header names as the caller spelled them. Payload 1.0 keeps the original casing
//! (`X-Custom-Header`, not `x-custom-header`), but hyper lower-cases names and keeps the
//! original spelling only in a private type. So the connection's bytes are watched on their
//! way into hyper: each request head is read with `httparse`, its names are queued, and the
//! body is skipped by its framing (`Content-Length` or chunked). Requests on a connection are
//! answered in order, so the handler takes the queue's front for each request.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Lower-case name → original spelling, per request, in arrival order.
pub type Heads = Arc<Mutex<VecDeque<BTreeMap<String, String>>>>;

/// A head larger than this is not tracked (hyper refuses such heads anyway).
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug)]
enum State {
    Head(Vec<u8>),
    Body(u64),
    ChunkSize(Vec<u8>),
    /// Chunk data plus its trailing CRLF.
    ChunkData(u64),
    Trailers(Vec<u8>),
    /// Framing not understood: spelling is no longer tracked on this connection.
    Lost,
}

/// Follows request framing over a byte stream and records each head's header names.
#[derive(Debug)]
pub struct Parser {
    state: State,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            state: State::Head(Vec::new()),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Parser {
    /// Consumes `data`, returning the heads completed in it.
    pub fn feed(&mut self, mut data: &[u8]) -> Vec<BTreeMap<String, String>> {
        let mut heads = Vec::new();
        while !data.is_empty() {
            let trailers = matches!(self.state, State::Trailers(_));
            match &mut self.state {
                State::Lost => return heads,
                State::Head(buf) => {
                    let start = buf.len().saturating_sub(3);
                    buf.extend_from_slice(data);
                    let Some(end) = find(&buf[start..], b"\r\n\r\n").map(|i| start + i + 4) else {
                        if buf.len() > MAX_HEAD {
                            self.state = State::Lost;
                        }
                        return heads;
                    };
                    // What follows the head belongs to the body (or the next request).
                    let consumed_before = buf.len() - data.len();
                    data = &data[end - consumed_before..];
                    let head = std::mem::take(buf);
                    self.state = match parse_head(&head[..end]) {
                        Some((names, framing)) => {
                            heads.push(names);
                            framing
                        }
                        None => State::Lost,
                    };
                }
                State::Body(remaining) => {
                    let n = (*remaining).min(data.len() as u64);
                    *remaining -= n;
                    data = &data[n as usize..];
                    if *remaining == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkData(remaining) => {
                    let n = (*remaining).min(data.len() as u64);
                    *remaining -= n;
                    data = &data[n as usize..];
                    if *remaining == 0 {
                        self.state = State::ChunkSize(Vec::new());
                    }
                }
                State::ChunkSize(line) | State::Trailers(line) => {
                    let Some(pos) = data.iter().position(|b| *b == b'\n') else {
                        line.extend_from_slice(data);
                        if line.len() > MAX_HEAD {
                            self.state = State::Lost;
                        }
                        return heads;
                    };
                    line.extend_from_slice(&data[..=pos]);
                    data = &data[pos + 1..];
                    let text = String::from_utf8_lossy(line).trim().to_string();
                    self.state = if trailers {
                        if text.is_empty() {
                            State::Head(Vec::new())
                        } else {
                            State::Trailers(Vec::new())
                        }
                    } else {
                        let hex = text.split(';').next().unwrap_or_default().trim();
                        match u64::from_str_radix(hex, 16) {
                            Ok(0) => State::Trailers(Vec::new()),
                            Ok(n) => State::ChunkData(n + 2),
                            Err(_) => State::Lost,
                        }
                    };
                }
            }
        }
        heads
    }
}

fn parse_head(head: &[u8]) -> Option<(BTreeMap<String, String>, State)> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    if !req.parse(head).ok()?.is_complete() {
        return None;
    }
    let mut names = BTreeMap::new();
    let mut length = 0u64;
    let mut chunked = false;
    for h in req.headers.iter() {
        let lower = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value);
        match lower.as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
        names.entry(lower).or_insert_with(|| h.name.to_string());
    }
    let framing = if chunked {
        State::ChunkSize(Vec::new())
    } else if length > 0 {
        State::Body(length)
    } else {
        State::Head(Vec::new())
    };
    Some((names, framing))
}

/// A connection whose request heads are recorded into `heads` as hyper reads them.
pub struct Recorder<T> {
    inner: T,
    parser: Parser,
    heads: Heads,
}

impl<T> Recorder<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, heads: Heads) -> Recorder<T> {
        Recorder {
            inner,
            parser: Parser::default(),
            heads,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Recorder<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let done = this.parser.feed(&buf.filled()[before..]);
            if !done.is_empty() {
                this.heads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(done);
            }
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Recorder<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(h: &BTreeMap<String, String>) -> Vec<&str> {
        h.values().map(String::as_str).collect()
    }

    #[test]
    fn heads_are_found_across_reads_and_bodies_are_skipped() {
        let stream = b"POST /a HTTP/1.1\r\nHost: x\r\nX-Custom-Header: 1\r\nContent-Length: 24\r\n\r\nGET / HTTP/1.1\r\nA: b\r\n\r\nGET /b HTTP/1.1\r\nX-API-Key: k\r\n\r\n";
        let mut whole = Parser::default();
        let heads = whole.feed(stream);
        assert_eq!(heads.len(), 2);
        assert_eq!(
            names(&heads[0]),
            ["Content-Length", "Host", "X-Custom-Header"]
        );
        assert_eq!(heads[1]["x-api-key"], "X-API-Key");
        // One byte at a time gives the same heads.
        let mut bytewise = Parser::default();
        let heads: Vec<_> = stream.iter().flat_map(|b| bytewise.feed(&[*b])).collect();
        assert_eq!(heads.len(), 2);
        assert_eq!(heads[1]["x-api-key"], "X-API-Key");
    }

    #[test]
    fn chunked_bodies_are_followed() {
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n\r\n\r\n!\r\n3;ext=1\r\nabc\r\n0\r\nTrailer-X: y\r\n\r\nGET / HTTP/1.1\r\nMy-Header: v\r\n\r\n";
        let mut p = Parser::default();
        let heads = p.feed(stream);
        assert_eq!(heads.len(), 2);
        assert_eq!(heads[1]["my-header"], "My-Header");
    }

    #[test]
    fn garbage_stops_tracking() {
        let mut p = Parser::default();
        assert!(
            p.feed(b"NOT HTTP\x00\r\n\r\nGET / HTTP/1.1\r\nA: b\r\n\r\n")
                .is_empty()
        );
    }
}
