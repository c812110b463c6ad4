//! `spindle serve --config FILE`: a TOML file merged in as flags.

use std::path::PathBuf;

use clap::Parser;

use super::Cli;

/// Parses the command line, with `serve --config FILE` merged in: built-in
/// defaults < the TOML file < `SPINDLE_*` environment variables < flags.
///
/// The file is not parsed by hand: each key becomes the flag of the same
/// name (added only where neither a flag nor the environment set it) and
/// clap parses it, so a file value is checked exactly like a flag.
pub fn parse_args(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};

    let matches = Cli::command().try_get_matches_from(&args)?;
    let Some(("serve", serve)) = matches.subcommand() else {
        return Cli::from_arg_matches(&matches);
    };
    let Some(path) = serve.get_one::<PathBuf>("config") else {
        return Cli::from_arg_matches(&matches);
    };
    // One line, like every other configuration error (no usage block).
    let config_error = |msg: String| {
        clap::Error::raw(
            clap::error::ErrorKind::InvalidValue,
            format!("--config {}: {msg}\n", path.display()),
        )
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Err(config_error(e.to_string())),
    };
    let table: toml::Table = match text.parse::<toml::Table>() {
        Ok(t) => t,
        // toml's Display draws the line with a caret over several lines.
        Err(e) => {
            let at = e.span().map_or(String::new(), |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            let msg: Vec<&str> = e.message().lines().map(str::trim).collect();
            return Err(config_error(format!("{at}{}", msg.join("; "))));
        }
    };
    let serve_cmd = Cli::command();
    let serve_cmd = serve_cmd.find_subcommand("serve").expect("serve exists");
    // (id, the flag to pass it with; None for the positional document root)
    let known: Vec<(String, Option<String>)> = serve_cmd
        .get_arguments()
        .filter(|a| a.get_id() != "config" && a.get_id() != "help")
        .map(|a| {
            let flag = a
                .get_long()
                .map(|l| format!("--{l}"))
                .or_else(|| a.get_short().map(|c| format!("-{c}")));
            (a.get_id().to_string(), flag)
        })
        .collect();
    let mut extra: Vec<std::ffi::OsString> = Vec::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let Some((_, long)) = known.iter().find(|(k, _)| *k == id) else {
            let mut names: Vec<String> = known.iter().map(|(k, _)| k.replace('_', "-")).collect();
            names.sort();
            return Err(config_error(format!(
                "unknown key '{key}'; the keys are: {}",
                names.join(", ")
            )));
        };
        if matches!(
            serve.value_source(&id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let values: Vec<String> = match value {
            toml::Value::Array(items) => items.iter().map(toml_scalar).collect::<Option<_>>(),
            v => toml_scalar(v).map(|s| vec![s]),
        }
        .ok_or_else(|| {
            config_error(format!(
                "'{key}' must be a string, number, boolean or a list of them"
            ))
        })?;
        for v in values {
            match long {
                // `--flag=value`, so switches that take an optional value
                // (`--hub`, `--hub=off`) read it too.
                Some(flag) if flag.starts_with("--") => extra.push(format!("{flag}={v}").into()),
                Some(flag) => {
                    extra.push(flag.into());
                    extra.push(v.into());
                }
                None => extra.push(v.into()), // the positional document root
            }
        }
    }
    let mut all = args;
    all.extend(extra);
    Cli::try_parse_from(all).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        config_error(first.trim_start_matches("error: ").to_string())
    })
}

fn toml_scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(if *b { "on" } else { "off" }.to_string()),
        _ => None,
    }
}
