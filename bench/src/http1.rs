//! Just enough HTTP/1.1 for the load generator and the recording server: one request or
//! answer at a time on a keep-alive connection, bodies framed by `Content-Length` (the
//! gateway, the worker and reqwest's probes never send anything else). Heads are parsed by
//! `httparse`. A general-purpose client or server spends more CPU per exchange than the
//! gateway it measures does, and the bench's own CPU is part of what the machine pays.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_HEADERS: usize = 32;

/// A connection's socket and what was read from it but not yet consumed.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    out: Vec<u8>,
}

/// The parts of a message head this module needs.
struct Head {
    len: usize,
    /// Status code of an answer; 0 for a request.
    status: u16,
    /// Request method (empty for an answer).
    method: String,
    content_length: usize,
    close: bool,
}

impl Connection {
    pub fn new(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
            out: Vec::with_capacity(4096),
        })
    }

    pub async fn connect(addr: std::net::SocketAddr) -> io::Result<Self> {
        Self::new(TcpStream::connect(addr).await?)
    }

    /// Sends a request (one write) and reads its whole answer. Returns the status, the
    /// answer's body, and whether the server will close the connection.
    pub async fn exchange(&mut self, head: &[u8], body: &[u8]) -> io::Result<(u16, Vec<u8>, bool)> {
        self.out.clear();
        self.out.extend_from_slice(head);
        self.out.extend_from_slice(body);
        self.stream.write_all(&self.out).await?;
        let head = self.read_head(parse_answer).await?;
        let body = self.read_body(&head).await?;
        Ok((head.status, body, head.close))
    }

    /// The next request's method, its body skipped; `None` once the client has closed.
    pub async fn next_request(&mut self) -> io::Result<Option<String>> {
        if self.buf.is_empty() && self.fill().await? == 0 {
            return Ok(None);
        }
        let head = self.read_head(parse_request).await?;
        self.read_body(&head).await?;
        Ok(Some(head.method))
    }

    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    async fn read_head(
        &mut self,
        parse: fn(&[u8]) -> io::Result<Option<Head>>,
    ) -> io::Result<Head> {
        loop {
            if let Some(head) = parse(&self.buf)? {
                self.buf.drain(..head.len);
                return Ok(head);
            }
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    async fn read_body(&mut self, head: &Head) -> io::Result<Vec<u8>> {
        while self.buf.len() < head.content_length {
            if self.fill().await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(self.buf.drain(..head.content_length).collect())
    }

    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(4096);
        self.stream.read_buf(&mut self.buf).await
    }
}

fn parse_answer(buf: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut answer = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = answer.parse(buf).map_err(invalid)? else {
        return Ok(None);
    };
    let (content_length, close) = framing(answer.headers)?;
    Ok(Some(Head {
        len,
        status: answer.code.unwrap_or(0),
        method: String::new(),
        content_length,
        close,
    }))
}

fn parse_request(buf: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = request.parse(buf).map_err(invalid)? else {
        return Ok(None);
    };
    let (content_length, close) = framing(request.headers)?;
    Ok(Some(Head {
        len,
        status: 0,
        method: request.method.unwrap_or_default().to_owned(),
        content_length,
        close,
    }))
}

/// Body length and `Connection: close`; a chunked body is refused rather than misread.
fn framing(headers: &[httparse::Header<'_>]) -> io::Result<(usize, bool)> {
    let mut content_length = 0;
    let mut close = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| invalid("a Content-Length that is not a number"))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid(
                "a chunked body, which the bench's HTTP client does not read",
            ));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    Ok((content_length, close))
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad HTTP/1.1: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_is_read_whole_and_the_next_exchange_reuses_the_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = Connection::new(stream).unwrap();
            let mut methods = Vec::new();
            while let Some(method) = conn.next_request().await.unwrap() {
                methods.push(method);
                conn.send(b"HTTP/1.1 202 Accepted\r\ncontent-length: 5\r\n\r\nhello")
                    .await
                    .unwrap();
            }
            methods
        });
        let mut client = Connection::connect(addr).await.unwrap();
        let head = b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\n";
        for _ in 0..2 {
            let (status, body, close) = client.exchange(head, b"abc").await.unwrap();
            assert_eq!(
                (status, body.as_slice(), close),
                (202, &b"hello"[..], false)
            );
        }
        drop(client);
        assert_eq!(server.await.unwrap(), ["POST", "POST"]);
    }

    #[test]
    fn a_chunked_answer_is_refused() {
        let answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_answer(answer).is_err());
        assert!(parse_answer(b"HTTP/1.1 200 OK\r\ncontent-le")
            .unwrap()
            .is_none());
    }
}
