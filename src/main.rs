use std::process::ExitCode;

use spindle::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match spindle::config::parse_args(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging(&cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spindle: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = args.resolve()?;
            spindle::server::run(settings)?;
        }
        Command::PhpInfo(args) => {
            spindle::info::run(&args).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        Command::Zygote(args) => spindle::worker::zygote_process(args),
    }
    Ok(())
}

/// Logs go to stderr; `SPINDLE_LOG` (or `RUST_LOG`) filters them, as in
/// `SPINDLE_LOG=debug` or `SPINDLE_LOG=spindle=debug,php=info`.
fn init_logging(format: &str) {
    let filter = std::env::var("SPINDLE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().flatten_event(true).init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}
