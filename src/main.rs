use std::process::ExitCode;

use clap::Parser;
use handinger_mcp::config::{API_KEY_VAR, Cli, Command, PLACEHOLDER_API_KEY};
use tokio::runtime::Builder;

fn main() -> ExitCode {
    handinger_mcp::config::forget_empty_settings();
    let cli = Cli::parse();
    let mut api_key = std::env::var(API_KEY_VAR).ok();
    if cli.command.as_ref().is_some_and(|c| !c.needs_api_key())
        && api_key.as_deref().is_none_or(|k| k.trim().is_empty())
    {
        api_key = Some(PLACEHOLDER_API_KEY.to_owned());
    }
    let settings = match cli.settings.clone().validate(api_key) {
        Ok(settings) => settings,
        Err(message) => return fail(&message),
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
        Err(message) => fail(&message),
    }
}

/// The runtime a command runs on. One client over stdio mostly waits on Handinger: a
/// single thread serves it with less CPU per call than a pool (no wake-ups handed between
/// worker threads) and less memory (see docs/benchmarks.md). Blocking work (stdin, files)
/// still goes to tokio's blocking threads.
fn runtime_for(command: Option<&Command>) -> Builder {
    match command {
        None | Some(Command::Stdio | Command::Doctor | Command::Tools) => {
            Builder::new_current_thread()
        }
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("handinger-mcp: {message}");
    ExitCode::FAILURE
}
