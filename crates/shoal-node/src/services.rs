//! The services this node runs, in start order: the one place a service is registered.
//!
//! Adding a service (see `docs/ARCHITECTURE.md`, "Adding a service"): write its folder (a type that
//! implements [`Service`](crate::service::Service) and [`Start`](crate::service::Start)), then add one line
//! here. A service may use those listed above it ([`Context::service`](crate::service::Context::service)).

use crate::NodeError;
use crate::service::{Context, Registry};

/// Starts every service on `registry`.
pub(crate) async fn start_all(registry: &Registry, ctx: &Context) -> Result<(), NodeError> {
    registry.start::<crate::peers::Peers>(ctx).await?;
    registry.start::<crate::transfer::Transfer>(ctx).await?;
    registry.start::<crate::search::Search>(ctx).await?;
    registry.start::<crate::messaging::Messaging>(ctx).await?;
    Ok(())
}
