//! The driver's HTTP client: one keep-alive HTTP/1.1 connection per thread, JSON in and out.

use std::{
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
        for _ in 0..2 {
            if self.stream.is_none() {
                let s = TcpStream::connect(self.addr)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(Duration::from_secs(30)))?;
                self.stream = Some(BufReader::new(s));
            }
            match self.try_post(path, body) {
                Ok(r) => return Ok(r),
                Err(_) => self.stream = None,
            }
        }
        bail!("request to {path} failed twice")
    }

    fn try_post(&mut self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let stream = self.stream.as_mut().context("not connected")?;
        let text = body.to_string();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.addr,
            text.len()
        );
        // One write, so the request leaves in one segment and the server reads it at once.
        let mut request = head.into_bytes();
        request.extend_from_slice(text.as_bytes());
        stream.get_mut().write_all(&request)?;
        let mut status_line = String::new();
        stream.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .context("no status")?
            .parse()?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            stream.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse()?;
            }
        }
        let mut buf = vec![0u8; length];
        stream.read_exact(&mut buf)?;
        Ok((status, serde_json::from_slice(&buf).unwrap_or(Value::Null)))
    }
}
