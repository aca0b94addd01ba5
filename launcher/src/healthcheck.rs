// SPDX-License-Identifier: MIT
//! `wsjpeg-launcher healthcheck`: asks the local server's /healthz, for Docker's HEALTHCHECK.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

use anyhow::{Context, Result, bail};

use crate::cli::HealthcheckArgs;

pub fn check(args: &HealthcheckArgs) -> Result<()> {
    let address = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", args.host))?
        .next()
        .with_context(|| format!("no address for {}", args.host))?;
    let mut stream = TcpStream::connect_timeout(&address, args.timeout)
        .with_context(|| format!("nothing listens on {address}"))?;
    stream.set_read_timeout(Some(args.timeout))?;
    stream.set_write_timeout(Some(args.timeout))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
        args.host, args.port
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let status_line = String::from_utf8_lossy(&head[..n]);
    let code = status_line.split(' ').nth(1).unwrap_or("");
    if code != "200" {
        bail!(
            "/healthz answered {}",
            status_line.lines().next().unwrap_or("nothing")
        );
    }
    Ok(())
}
