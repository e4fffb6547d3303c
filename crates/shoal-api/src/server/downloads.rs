//! `/api/v1/downloads`: the node's download manager over HTTP (start, list, pause, resume, cancel).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiState, body, path_id};
use crate::ApiError;
use crate::types::{DownloadInfo, ErrorBody, StartDownload};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_downloads, start_download))
        .routes(routes!(one_download))
        .routes(routes!(pause_download))
        .routes(routes!(resume_download))
        .routes(routes!(cancel_download))
}

/// Every download, running, paused, done or failed (kept across restarts).
#[utoipa::path(get, path = "/api/v1/downloads", responses((status = 200, body = Vec<DownloadInfo>)))]
async fn list_downloads(State(s): State<ApiState>) -> Json<Vec<DownloadInfo>> {
    Json(s.node().list_downloads())
}

/// Starts a download of a ticket or content id (409 while the same id is running).
#[utoipa::path(post, path = "/api/v1/downloads", request_body = StartDownload,
    responses((status = 200, body = DownloadInfo), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn start_download(
    State(s): State<ApiState>,
    b: Result<Json<StartDownload>, JsonRejection>,
) -> Result<Json<DownloadInfo>, ApiError> {
    let req = body(b)?;
    Ok(Json(match (req.name, req.output) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give either output or name, not both")),
        (Some(name), None) => s.node().add_download_as(&req.what, &name, req.paused).await?,
        (None, output) => s.node().add_download(&req.what, output, req.paused).await?,
    }))
}

/// One download.
#[utoipa::path(get, path = "/api/v1/downloads/{id}", params(("id" = String, Path, description = "content id")),
    responses((status = 200, body = DownloadInfo), (status = 404, body = ErrorBody)))]
async fn one_download(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<DownloadInfo>, ApiError> {
    Ok(Json(s.node().get_download(&path_id(&id, "download")?)?))
}

/// Pauses a running download (what is verified stays).
#[utoipa::path(post, path = "/api/v1/downloads/{id}/pause", params(("id" = String, Path, description = "content id")),
    responses((status = 200, body = DownloadInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn pause_download(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<DownloadInfo>, ApiError> {
    Ok(Json(s.node().pause_download(&path_id(&id, "download")?).await?))
}

/// Resumes a paused download (fetches only what is missing).
#[utoipa::path(post, path = "/api/v1/downloads/{id}/resume", params(("id" = String, Path, description = "content id")),
    responses((status = 200, body = DownloadInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn resume_download(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<DownloadInfo>, ApiError> {
    Ok(Json(s.node().resume_download(&path_id(&id, "download")?).await?))
}

/// Cancels a download and deletes its partial file (a finished or shared file is never touched).
#[utoipa::path(post, path = "/api/v1/downloads/{id}/cancel", params(("id" = String, Path, description = "content id")),
    responses((status = 200, body = DownloadInfo), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel_download(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<DownloadInfo>, ApiError> {
    Ok(Json(s.node().cancel_download(&path_id(&id, "download")?).await?))
}
