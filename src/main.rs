use std::process::ExitCode;

use spindle::config::{Cli, Command, ConfigError};
use spindle::php::StartupError;
use spindle::worker::ZygoteError;
use tracing_subscriber::EnvFilter;

/// The exit status of every configuration error: a bad flag, environment
/// variable, `--config` file, php.ini or `-d` entry; nothing was started.
/// It is clap's status for usage errors, so one code covers both phases
/// (issue 9, item 12). Other failures (cannot listen, ...) exit 1.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = match spindle::config::parse_args(std::env::args_os().collect()) {
        Ok(cli) => cli,
        // --help and --version
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(&cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spindle: error: {e:#}");
            if is_config_error(e.chain()) {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn is_config_error<'a>(
    mut chain: impl Iterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> bool {
    chain.any(|e| {
        e.is::<ConfigError>()
            || e.is::<StartupError>()
            || e.downcast_ref::<ZygoteError>()
                .is_some_and(ZygoteError::is_config)
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = args.resolve()?;
            spindle::server::run(settings)?;
        }
        Command::PhpInfo(args) => spindle::info::run(&args).map_err(|e| {
            // Keeps the error's type for is_config_error (the box is not Send).
            if e.is::<ConfigError>() || e.is::<StartupError>() {
                anyhow::Error::new(ConfigError::new("php-info", e.to_string()))
            } else {
                anyhow::anyhow!("{e}")
            }
        })?,
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
