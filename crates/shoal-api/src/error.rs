//! Errors as HTTP answers: a status code and `{"error": "..."}`, never internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An API error: what the client did wrong (4xx) or what failed here (5xx), in one sentence.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong and, where possible, what to do.
    pub message: String,
}

impl ApiError {
    pub(crate) fn bad_request(m: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: m.into() }
    }
    pub(crate) fn not_found(m: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, message: m.into() }
    }
    pub(crate) fn conflict(m: impl Into<String>) -> Self {
        Self { status: StatusCode::CONFLICT, message: m.into() }
    }
    pub(crate) fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: "missing or wrong bearer token: send 'Authorization: Bearer <contents of api.token>'".into(),
        }
    }
    pub(crate) fn internal(m: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %m, "API request failed");
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: m.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

impl From<shoal_node::NodeError> for ApiError {
    fn from(e: shoal_node::NodeError) -> Self {
        match e {
            shoal_node::NodeError::Store(shoal_store::StoreError::Io { .. })
            | shoal_node::NodeError::Store(shoal_store::StoreError::NotShareable { .. })
            | shoal_node::NodeError::Ticket(_)
            | shoal_node::NodeError::Output { .. } => Self::bad_request(e.to_string()),
            shoal_node::NodeError::NoDownload(_)
            | shoal_node::NodeError::Messaging(shoal_node::messaging::MessagingError::NotFollowing(_)) => {
                Self::not_found(e.to_string())
            }
            shoal_node::NodeError::Messaging(_)
            | shoal_node::NodeError::Store(shoal_store::StoreError::Messages(_)) => Self::bad_request(e.to_string()),
            shoal_node::NodeError::Busy(_) => Self::conflict(e.to_string()),
            other => Self::internal(other),
        }
    }
}
