use std::process::ExitCode;

use handinger_mcp::config::server_api_key;
use handinger_mcp::config_file::{ArgsError, parse_args};

fn main() -> ExitCode {
    handinger_mcp::config::forget_empty_settings();
    let cli = match parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ArgsError::Clap(error)) => error.exit(),
        Err(ArgsError::File(message)) => return fail(&message),
    };
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
    let outcome = runtime.block_on(handinger_mcp::run(cli, settings));
    // The stdin reader sits in a blocking thread that only returns when the client writes
    // or closes stdin; after a signal neither may happen, so do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("handinger-mcp: {message}");
    ExitCode::FAILURE
}
