//! Load client for bench/hub.sh.
//!
//! `hubload run` opens N SSE subscribers on one topic, publishes updates whose
//! data is `<seq>:<ns since the client started>`, and times each delivery:
//! first single updates to all (p50/p99/last delivery), then a sustained
//! phase (deliveries/s). Every subscriber must receive every update in order,
//! else it exits non-zero. With several `--sub-url`s (a cluster's nodes) the
//! subscribers are spread over them and latencies are also given per node. `hubload floor` is the minimal server the issue
//! calls the floor: it only writes each published event to every socket.
//!
//! HTTP is hyper's client; only the SSE lines of a body are parsed here.

mod floor;
mod run;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(about = "SSE hub load client and floor server for bench/hub.sh")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Subscribe N clients, publish, time deliveries; prints one `key=value` line.
    Run(run::Args),
    /// The floor: accepts GET subscribers, writes each POSTed body as one
    /// SSE event to all of them, answers the POST when all writes are done.
    Floor {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
    },
}

/// How a server wants an update published.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Kind {
    /// nchan: the raw body is the message.
    Nchan,
    /// Mercure: form `topic=..&data=..` with a Bearer JWT.
    Mercure,
    /// `hubload floor`: the raw body is the event's data.
    Floor,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run(args) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let ok = rt.block_on(run::run(args))?;
            if !ok {
                std::process::exit(1);
            }
            Ok(())
        }
        Cmd::Floor { listen } => {
            // One thread: the floor is the least work a server can do.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(floor::serve(&listen))
        }
    }
}
