use clap::Parser;

// glibc's malloc was a fifth of the CPU under load (consolidating and
// unlinking free chunks of per-field allocations) and fragmented the heap;
// mimalloc's thread-local free lists cost a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
