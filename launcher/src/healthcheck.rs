// SPDX-License-Identifier: MIT
//! `wsjpeg-launcher healthcheck`: asks the local server's /healthz, for Docker's HEALTHCHECK.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::cli::HealthcheckArgs;

pub fn check(args: &HealthcheckArgs) -> Result<()> {
    let address = (args.host.as_str(), args.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", args.host))?
        .next()
        .with_context(|| format!("no address for {}", args.host))?;
    let mut tcp = TcpStream::connect_timeout(&address, args.timeout)
        .with_context(|| format!("nothing listens on {address}"))?;
    tcp.set_read_timeout(Some(args.timeout))?;
    tcp.set_write_timeout(Some(args.timeout))?;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
        args.host, args.port
    );
    let mut head = [0u8; 64];
    let n = if args.tls {
        let mut session = rustls::ClientConnection::new(tls_config()?, server_name(&args.host)?)
            .context("TLS setup failed")?;
        let mut stream = rustls::Stream::new(&mut session, &mut tcp);
        stream.write_all(request.as_bytes())?;
        stream.read(&mut head)?
    } else {
        tcp.write_all(request.as_bytes())?;
        tcp.read(&mut head)?
    };
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

fn server_name(host: &str) -> Result<rustls::pki_types::ServerName<'static>> {
    rustls::pki_types::ServerName::try_from(host.to_string())
        .with_context(|| format!("{host} is not a valid TLS server name"))
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS setup failed")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The health check talks to its own machine, whose certificate is often self-signed: it checks
/// that the server answers, not who it is. Signatures are still verified.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
