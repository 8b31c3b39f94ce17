//! `cocoon-raw-client`: speaks the client protocol by hand to a proxy's client port and
//! misbehaves only as told (see `cocoon_testkit::rawclient`). One JSON object per line on
//! standard output; exit 0 when the scenario ran, 3 when the proxy refused the connection or
//! the authorization, 1 with a message on standard error when the transport failed.

use clap::Parser;
use cocoon_testkit::rawclient::{RawClientArgs, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = RawClientArgs::parse();
    match run(args).await {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("cocoon-raw-client: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
