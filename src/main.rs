use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = stamp_operator::cli::Cli::parse();
    match stamp_operator::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
