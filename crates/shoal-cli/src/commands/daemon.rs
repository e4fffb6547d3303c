//! `shoal daemon`: a peer and its local API in the foreground.

use std::net::SocketAddr;

use shoal_node::NodeConfig;

pub(crate) async fn run(config: NodeConfig, api_listen: SocketAddr, json: bool) -> anyhow::Result<()> {
    let mut printed = Ok(());
    shoal_api::daemon::run(config, api_listen, |info| {
        printed = (|| {
            if json {
                super::print_line(&serde_json::to_string(info)?)?;
            } else {
                super::print_line(&format!("peer {}", info.peer))?;
                for a in &info.addrs {
                    super::print_line(&format!("listening {a}"))?;
                }
                super::print_line(&format!("api http://{}", info.api))?;
            }
            eprintln!("data directory {}; Ctrl-C or `shoal stop` stops the daemon", info.home.display());
            Ok(())
        })();
    })
    .await?;
    printed
}
