//! The TOML config file (`--config PATH`, `HANDINGER_MCP_CONFIG`): the same settings as the
//! flags, keyed by the long flag names, for setups too long for a command line.
//!
//! ```toml
//! toolsets = ["tasks", "workers"]
//! max-budget = "high"
//! max-wait = 40
//!
//! [workers]
//! fact_checker = "wrk_vk81XUHKHG-qr4"
//! ```
//!
//! Precedence, highest first: a flag, its environment variable, the config file, the
//! built-in default. A setting is taken whole from one place: any `--worker` (or
//! `HANDINGER_MCP_WORKERS`) replaces the file's `[workers]`, and `--toolsets` replaces the
//! file's `toolsets`.
//!
//! The file is applied through the command-line parser itself: every setting the command line
//! and environment left at its default is appended to the arguments as `--name=value` and the
//! arguments are parsed again. So the file is validated exactly like flags (same parsers, same
//! messages), and any flag added later can be set from the file with no code here.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use crate::config::{API_KEY_VAR, Cli};

/// Why the command line could not be read.
#[derive(Debug)]
pub enum ArgsError {
    /// From clap (includes `--help` and `--version`): let clap print it and exit.
    Clap(clap::Error),
    /// A problem with the config file, or with a value an environment variable carried, as
    /// a message for the user.
    File(String),
}

impl From<clap::Error> for ArgsError {
    fn from(error: clap::Error) -> Self {
        ArgsError::Clap(error)
    }
}

/// Parses the command line and environment, then fills in from the config file, if any.
pub fn parse_args<I, T>(args: I) -> Result<Cli, ArgsError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let command = Cli::command();
    let first = command
        .clone()
        .try_get_matches_from(&args)
        .map_err(|e| blame_environment(&command, &args, e))?;
    let Some(path) = first.get_one::<std::path::PathBuf>("config").cloned() else {
        return Ok(Cli::from_arg_matches(&first)?);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ArgsError::File(format!(
            "could not read the config file {} (--config / HANDINGER_MCP_CONFIG): {e}",
            path.display()
        ))
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ArgsError::File(format!(
            "the config file {} is not valid TOML: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })?;
    let extra = file_args(&command, &first, &table, &path).map_err(ArgsError::File)?;
    if extra.is_empty() {
        return Ok(Cli::from_arg_matches(&first)?);
    }
    let mut all = args;
    all.extend(extra.into_iter().map(OsString::from));
    let matches = command.try_get_matches_from(&all).map_err(|e| {
        ArgsError::File(format!(
            "in the config file {}: {}",
            path.display(),
            e.render()
                .to_string()
                .trim_start_matches("error: ")
                .trim_end()
        ))
    })?;
    Ok(Cli::from_arg_matches(&matches)?)
}

/// Names the environment variable when a bad value came from one.
///
/// clap reports a bad value against the flag (`invalid value 'abc' for '--max-wait
/// <MAX_WAIT>'`) even when the command line has no such flag and the value came from
/// `HANDINGER_MCP_MAX_WAIT`, set in a client's configuration the user may not think of. When
/// the flag is absent from the command line and its variable is set, the message names the
/// variable instead.
fn blame_environment(command: &clap::Command, args: &[OsString], error: clap::Error) -> ArgsError {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8
    ) {
        return ArgsError::Clap(error);
    }
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return ArgsError::Clap(error);
    };
    let Some(long) = shown
        .split_whitespace()
        .next()
        .and_then(|flag| flag.strip_prefix("--"))
    else {
        return ArgsError::Clap(error);
    };
    let arg = command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(|c| c.get_arguments()))
        .find(|a| a.get_long() == Some(long));
    let Some(variable) = arg.and_then(|a| a.get_env()) else {
        return ArgsError::Clap(error);
    };
    let flag = format!("--{long}");
    let on_command_line = args.iter().skip(1).any(|a| {
        let a = a.to_string_lossy();
        a == flag || a.starts_with(&format!("{flag}="))
    });
    if on_command_line || std::env::var_os(variable).is_none() {
        return ArgsError::Clap(error);
    }
    let variable = variable.to_string_lossy();
    let rendered = error.render().to_string();
    // The message and its hints ("[possible values: …]"), without clap's usage footer.
    let reason = rendered
        .lines()
        .take_while(|line| !line.starts_with("For more information"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .replace(
            &format!("'{shown}'"),
            &format!("{variable} (the environment variable for {flag})"),
        );
    ArgsError::File(format!(
        "{reason}; fix {variable} where it is set (the shell, or the client's configuration) or unset it"
    ))
}

/// The `--name=value` arguments the file adds: one per setting that neither a flag nor an
/// environment variable gave.
fn file_args(
    command: &clap::Command,
    matches: &ArgMatches,
    table: &toml::Table,
    path: &Path,
) -> Result<Vec<String>, String> {
    let subcommand = matches.subcommand();
    let file = path.display();
    let mut extra = Vec::new();
    for (key, value) in table {
        let name = key.replace('_', "-");
        if name == "api-key" || name == API_KEY_VAR.to_ascii_lowercase().replace('_', "-") {
            return Err(format!(
                "the config file {file} sets {key}, but the API key is read only from {API_KEY_VAR}, so it never sits in a file: remove it and export {API_KEY_VAR}"
            ));
        }
        // `[workers]` is the file's spelling of repeated `--worker NAME=WORKER_ID`.
        let long = if name == "workers" { "worker" } else { &name };
        if matches!(long, "config" | "help" | "version") {
            return Err(format!(
                "the config file {file} cannot set {key}: remove it"
            ));
        }
        let active = subcommand.and_then(|(sub, _)| command.find_subcommand(sub));
        let arg = command
            .get_arguments()
            .chain(active.into_iter().flat_map(|c| c.get_arguments()))
            .find(|a| a.get_long() == Some(long));
        let Some(arg) = arg else {
            let elsewhere = command
                .get_subcommands()
                .flat_map(|c| c.get_arguments())
                .any(|a| a.get_long() == Some(long));
            if elsewhere {
                continue; // a setting of another command (e.g. the HTTP server's)
            }
            return Err(format!(
                "the config file {file} has an unknown setting {key:?}: settings are named like the long flags (see handinger-mcp --help), e.g. max-wait = 30"
            ));
        };
        let id = arg.get_id().as_str();
        if given_outside_the_file(matches, id) {
            continue;
        }
        let takes_values = arg.get_action().takes_values();
        let values = values_of(key, value, long == "worker")
            .map_err(|problem| format!("in the config file {file}: {problem}"))?;
        for value in values {
            match value {
                Scalar::Bool(true) if !takes_values => extra.push(format!("--{long}")),
                Scalar::Bool(false) if !takes_values => {}
                Scalar::Bool(b) => extra.push(format!("--{long}={b}")),
                Scalar::Text(text) => extra.push(format!("--{long}={text}")),
            }
        }
    }
    Ok(extra)
}

/// Whether the command line or the environment set this argument.
fn given_outside_the_file(matches: &ArgMatches, id: &str) -> bool {
    let given = |m: &ArgMatches| {
        m.ids().any(|i| i.as_str() == id)
            && matches!(
                m.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
    };
    given(matches) || matches.subcommand().is_some_and(|(_, sub)| given(sub))
}

enum Scalar {
    Bool(bool),
    Text(String),
}

/// A file value as argument values: a scalar is one, an array is one per element, and the
/// `[workers]` table is one `NAME=WORKER_ID` per entry.
fn values_of(key: &str, value: &toml::Value, workers: bool) -> Result<Vec<Scalar>, String> {
    use toml::Value;
    let scalar = |value: &Value| -> Result<Scalar, String> {
        match value {
            Value::String(s) => Ok(Scalar::Text(s.clone())),
            Value::Integer(i) => Ok(Scalar::Text(i.to_string())),
            Value::Float(f) => Ok(Scalar::Text(f.to_string())),
            Value::Boolean(b) => Ok(Scalar::Bool(*b)),
            _ => Err(format!("{key} must be a string, a number or true/false")),
        }
    };
    match value {
        Value::Table(table) if workers => table
            .iter()
            .map(|(name, id)| match id {
                Value::String(id) => Ok(Scalar::Text(format!("{name}={id}"))),
                _ => Err(format!(
                    "[{key}] {name} must be a worker id in quotes, e.g. {name} = \"wrk_vk81XUHKHG-qr4\""
                )),
            })
            .collect(),
        Value::Table(_) => Err(format!("{key} is a table; it takes a value")),
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with(file: &str, args: &[&str]) -> Result<Cli, String> {
        let dir = std::env::temp_dir().join(format!(
            "handinger-mcp-config-test-{}-{}",
            std::process::id(),
            ulid::Ulid::generate()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        std::fs::write(&path, file).unwrap();
        let mut argv = vec!["handinger-mcp".to_owned()];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv.push(format!("--config={}", path.display()));
        let parsed = parse_args(argv).map_err(|e| match e {
            ArgsError::Clap(e) => e.to_string(),
            ArgsError::File(message) => message,
        });
        let _ = std::fs::remove_dir_all(&dir);
        parsed
    }

    #[test]
    fn file_fills_what_flags_leave_and_flags_win() {
        let file = "max-wait = 30\nmax_budget = \"unlimited\"\nread-only = true\n\
                    toolsets = [\"tasks\", \"workers\"]\n[workers]\nfact_checker = \"wrk_1\"\n";
        let cli = parse_with(file, &["--max-wait", "40"]).unwrap();
        let settings = cli.settings;
        assert_eq!(settings.max_wait, 40, "the flag wins");
        assert_eq!(settings.max_budget, crate::handinger::Budget::Unlimited);
        assert!(settings.read_only);
        assert_eq!(settings.toolsets.len(), 2);
        assert_eq!(settings.workers[0].tool_name(), "ask_fact_checker");

        let cli = parse_with(file, &["doctor", "--worker", "other=wrk_2"]).unwrap();
        assert_eq!(cli.settings.workers.len(), 1, "--worker replaces [workers]");
        assert_eq!(cli.settings.workers[0].name, "other");
    }

    #[test]
    fn file_mistakes_name_the_file_and_the_setting() {
        let err = parse_with("max-wiat = 3\n", &[]).unwrap_err();
        assert!(
            err.contains("max-wiat") && err.contains("config.toml"),
            "{err}"
        );
        let err = parse_with("max-wait = 0\n", &[]).unwrap_err();
        assert!(
            err.contains("config.toml") && err.contains("max-wait"),
            "{err}"
        );
        let err = parse_with("api_key = \"hdg_live_x\"\n", &[]).unwrap_err();
        assert!(
            err.contains("HANDINGER_API_KEY") && !err.contains("hdg_live_x"),
            "{err}"
        );
        let err = parse_with("toolsets = [\"tasks\", \"repos\"]\n", &[]).unwrap_err();
        assert!(err.contains("repos") && err.contains("schedules"), "{err}");
        let err = parse_with("[workers]\nbad name = \"wrk_1\"\n", &[]).unwrap_err();
        assert!(err.contains("bad name"), "{err}");
        let err = parse_with("max-wait = [", &[]).unwrap_err();
        assert!(err.contains("not valid TOML"), "{err}");
    }
}
