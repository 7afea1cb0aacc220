//! Logging and tracing, set up in one place.

use tracing_subscriber::{fmt, EnvFilter};

/// `RUST_LOG` filters (default `info`); `LOG_FORMAT=json` for JSON lines.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|v| v == "json");
    // Colour only for a person at a terminal, never in a file or a collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
