// SPDX-License-Identifier: MIT

use std::process::ExitCode;

use clap::Parser;
use wsjpeg_launcher::cli::{Cli, Command};
use wsjpeg_launcher::{Event, Launcher, config_from_args, healthcheck, init_gstreamer};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Healthcheck(args)) = &cli.command {
        return match healthcheck::check(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("unhealthy: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    let filters = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
    pretty_env_logger::formatted_timed_builder()
        .parse_filters(&filters)
        .init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("wsjpeg-launcher: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

const SHUTDOWN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

fn run(cli: &Cli) -> anyhow::Result<()> {
    init_gstreamer()?;
    let config = config_from_args(&cli.run)?;
    let launcher = Launcher::new(config)?;
    // With a certificate the port speaks https (plain http there is sent over to it).
    let scheme = if cli.run.tls_certificate.is_some() {
        "https"
    } else {
        "http"
    };
    for (port, source) in launcher.ports().into_iter().zip(launcher.sources()) {
        log::info!(
            "Serving {source} on {scheme}://{}:{port}/",
            display_host(&cli.run.address)
        );
    }
    if let Some(port) = launcher.rtsp_port() {
        for camera in 0..launcher.sources().len() {
            log::info!(
                "Serving camera {camera} on rtsp://{}:{port}/cam{camera}",
                display_host(&cli.run.address)
            );
        }
    }
    let events = launcher.sender();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                log::info!("Signal {signal} received");
                let _ = events.send(Event::Shutdown);
                // A pipeline that hangs in its state change must not keep the process alive.
                std::thread::sleep(SHUTDOWN_DEADLINE);
                log::error!("Shutdown did not finish in time; exiting");
                std::process::exit(1);
            }
        })?;
    launcher.run();
    Ok(())
}

fn display_host(address: &str) -> String {
    match address {
        "0.0.0.0" | "::" | "" => "<this machine>".to_string(),
        a if a.contains(':') => format!("[{a}]"),
        a => a.to_string(),
    }
}
