use std::process::ExitCode;

use clap::Parser;
use handinger_mcp::config::{Cli, server_api_key};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli
        .settings
        .clone()
        .validate(server_api_key(cli.command.as_ref()))
    {
        Ok(settings) => settings,
        Err(message) => return fail(&message),
    };
    handinger_mcp::logging::init(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("could not start the async runtime: {e}")),
    };
    match runtime.block_on(handinger_mcp::run(cli, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("handinger-mcp: {message}");
    ExitCode::FAILURE
}
