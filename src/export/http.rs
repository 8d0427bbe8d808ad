//! The little HTTP the endpoint speaks: one request per connection, `GET /metrics` (query
//! ignored) or `404`, `400` for a request head that is not HTTP or does not fit
//! [`MAX_REQUEST`] bytes, and `Connection: close`.
//!
//! Why std and not an HTTP crate: a scrape is one small GET, and a crate such as tiny_http
//! reads each connection on a thread of its own with no read deadline, so a silent client
//! holds a thread and a shutdown may wait on it. Here every read and write has a deadline
//! ([`IO_DEADLINE`] for the whole request head), so serving one connection ends in bounded
//! time, and so does the server's shutdown.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Longest request head read (request line and headers); a longer one gets `400`.
pub(crate) const MAX_REQUEST: usize = 8 * 1024;

/// Time a client has to send its request head, and each write of the response may take.
pub(crate) const IO_DEADLINE: Duration = Duration::from_secs(2);

/// After the response, how long and how much of the client's unread input is read and
/// dropped, so that closing does not reset the connection before the client read the response
/// (a close with unread input sends RST).
const LINGER: Duration = Duration::from_millis(200);
const LINGER_BYTES: usize = 64 * 1024;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /metrics`.
    Metrics,
    /// Any other method or path (`404`).
    NotFound,
    /// Not an HTTP request line, or a head over [`MAX_REQUEST`] (`400`).
    Bad,
}

/// Reads the request head from `stream` within [`IO_DEADLINE`] and routes it.
///
/// # Errors
///
/// The socket's error, or [`io::ErrorKind::TimedOut`] when the head does not arrive in time.
pub(crate) fn read_route(stream: &mut TcpStream) -> io::Result<Route> {
    let deadline = Instant::now() + IO_DEADLINE;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_end(&head) {
            return Ok(route(&head[..end]));
        }
        if head.len() >= MAX_REQUEST {
            return Ok(Route::Bad);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_read_timeout(Some(left))?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(Route::Bad),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        head.extend_from_slice(&chunk[..n]);
    }
}

/// Where the head ends (`\r\n\r\n`, or `\n\n` from a lenient client).
fn find_end(head: &[u8]) -> Option<usize> {
    let crlf = head.windows(4).position(|w| w == b"\r\n\r\n");
    crlf.or_else(|| head.windows(2).position(|w| w == b"\n\n"))
}

/// Routes a request head by its request line.
pub(crate) fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::Bad;
    };
    let mut parts = line.trim_end().split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Bad;
    }
    let path = target.split('?').next().unwrap_or_default();
    if method == "GET" && path == "/metrics" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

/// Writes a whole response (status line, `Content-Type`, `Content-Length`, `Connection:
/// close`, body), each write bounded by [`IO_DEADLINE`], then closes its side and lingers.
///
/// # Errors
///
/// The socket's error (a client gone or too slow to read).
pub(crate) fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    stream.set_write_timeout(Some(IO_DEADLINE))?;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    stream.shutdown(Shutdown::Write)?;
    linger(stream)
}

/// Reads and drops what the client still sends, until it closes, [`LINGER`] passes or
/// [`LINGER_BYTES`] were read.
fn linger(stream: &mut TcpStream) -> io::Result<()> {
    let deadline = Instant::now() + LINGER;
    let mut chunk = [0u8; 4096];
    let mut read = 0;
    while read < LINGER_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{route, Route};

    #[test]
    fn routes_get_metrics_only() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x"), Route::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0"), Route::Metrics);
        assert_eq!(route(b"GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1"), Route::NotFound);
        assert_eq!(route(b"GET /metrics"), Route::Bad);
        assert_eq!(route(b"GET /metrics SPDY/3"), Route::Bad);
        assert_eq!(route(b"\xff\xfe"), Route::Bad);
    }
}
