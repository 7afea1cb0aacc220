use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Kept to the end: dropping it flushes the spans not yet exported.
    let _telemetry = kasvu_gateway::telemetry::init();
    let cli = kasvu_gateway::cli::Cli::parse();
    match kasvu_gateway::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
