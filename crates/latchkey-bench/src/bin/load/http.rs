//! The driver's HTTP client: one keep-alive HTTP/1.1 connection per thread, JSON in and out.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::{Context, bail};
use serde_json::Value;

/// A keep-alive HTTP/1.1 connection (one per thread).
pub struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None }
    }

    pub fn post(&mut self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let text = body.to_string();
        let answer = self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            text.as_bytes(),
        )?;
        Ok((
            answer.status,
            serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
        ))
    }

    /// Any request on the connection (reconnecting once if the server closed it).
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Answer> {
        for _ in 0..2 {
            if self.stream.is_none() {
                let s = TcpStream::connect(self.addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(30)))?;
                self.stream = Some(BufReader::new(s));
            }
            match self.try_send(method, path, headers, body) {
                Ok(r) => return Ok(r),
                Err(_) => self.stream = None,
            }
        }
        bail!("request to {path} failed twice")
    }

    fn try_send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Answer> {
        let stream = self.stream.as_mut().context("not connected")?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            head.push_str(k);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        let _ = write!(head, "content-length: {}\r\n\r\n", body.len());
        // One write, so the request leaves in one segment and the server reads it at once.
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        stream.get_mut().write_all(&request)?;
        let mut status_line = String::new();
        stream.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .context("no status")?
            .parse()?;
        let mut length = 0usize;
        let mut location = None;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse()?;
                } else if k.eq_ignore_ascii_case("location") {
                    location = Some(v.trim().to_owned());
                }
            }
        }
        let mut buf = vec![0u8; length];
        stream.read_exact(&mut buf)?;
        Ok(Answer {
            status,
            location,
            body: buf,
        })
    }
}

/// An answer: its status, `Location` and body.
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: Vec<u8>,
}
