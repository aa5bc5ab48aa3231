use std::process::ExitCode;

use handinger_mcp::config::{Command, server_api_key};
use handinger_mcp::config_file::{ArgsError, parse_args};
use tokio::runtime::Builder;

fn main() -> ExitCode {
    // Before anything can build a TLS client, on whichever thread gets there first.
    handinger_mcp::handinger::redirect::use_ring_crypto();
    handinger_mcp::config::forget_empty_settings();
    let cli = match parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(ArgsError::Clap(error)) => error.exit(),
        Err(ArgsError::File(message)) => return fail(&message),
    };
    let settings = match server_api_key(cli.command.as_ref())
        .and_then(|key| cli.settings.clone().validate(key))
    {
        Ok(settings) => settings,
        Err(error) => return fail(&error.to_string()),
    };
    handinger_mcp::logging::init(settings.log_format);
    let runtime = match runtime_for(cli.command.as_ref()).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("could not start the async runtime: {e}")),
    };
    let outcome = runtime.block_on(handinger_mcp::run(cli, settings));
    // The stdin reader sits in a blocking thread that only returns when the client writes
    // or closes stdin; after a signal neither may happen, so do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error.to_string()),
    }
}

/// The runtime a command runs on. One client over stdio mostly waits on Handinger: a
/// single thread serves it with less CPU per call than a pool (no wake-ups handed between
/// worker threads) and less memory (see docs/benchmarks.md). Blocking work (stdin, files)
/// still goes to tokio's blocking threads. HTTP mode serves many clients at once and gets
/// a worker per core.
fn runtime_for(command: Option<&Command>) -> Builder {
    match command {
        None | Some(Command::Stdio | Command::Doctor | Command::Tools) => {
            Builder::new_current_thread()
        }
        Some(Command::Http(_)) => Builder::new_multi_thread(),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("handinger-mcp: {message}");
    ExitCode::FAILURE
}
