//! `shoal daemon`: a peer and its local API in the foreground.

use shoal_node::NodeConfig;

pub(crate) async fn run(config: NodeConfig, api: shoal_api::daemon::ApiOptions, json: bool) -> anyhow::Result<()> {
    let mut printed = Ok(());
    if !api.listen.ip().is_loopback() && api.allow_remote {
        eprintln!(
            "warning: the API listens on {}, reachable from other machines over plain HTTP; anyone who sees \
             the token can control this peer. Put a TLS reverse proxy in front of it.",
            api.listen
        );
    }
    shoal_api::daemon::run(config, api, |info| {
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
