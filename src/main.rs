use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kasvu_gateway::telemetry::init();
    let cli = kasvu_gateway::cli::Cli::parse();
    match kasvu_gateway::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
