//! `GET /api/v1/shares`, `POST /api/v1/shares`, `POST /api/v1/shares/upload`,
//! `GET /api/v1/shares/{id}/ticket`, `POST /api/v1/shares/{id}/remove`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiState, body, path_id};
use crate::ApiError;
use crate::types::{AddShare, ErrorBody, Removed, ShareRecord, ShareTicket, Shared, UploadName};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_shares, add_share))
        .routes(routes!(upload))
        .routes(routes!(remove_share))
        .routes(routes!(ticket))
}

/// Everything shared, oldest first.
#[utoipa::path(get, path = "/api/v1/shares", responses((status = 200, body = Vec<ShareRecord>)))]
async fn list_shares(State(s): State<ApiState>) -> Result<Json<Vec<ShareRecord>>, ApiError> {
    Ok(Json(s.node().store().shares().map_err(ApiError::internal)?))
}

/// Shares a file or folder on the daemon's machine (hashed in place, not copied).
#[utoipa::path(post, path = "/api/v1/shares", request_body = AddShare,
    responses((status = 200, body = Shared), (status = 400, body = ErrorBody)))]
async fn add_share(
    State(s): State<ApiState>,
    b: Result<Json<AddShare>, JsonRejection>,
) -> Result<Json<Shared>, ApiError> {
    let req = body(b)?;
    if !req.path.is_absolute() {
        return Err(ApiError::bad_request(format!("path {} must be absolute", req.path.display())));
    }
    if !req.path.exists() {
        return Err(ApiError::bad_request(format!("{} does not exist", req.path.display())));
    }
    shared(s.node(), s.node().share(&req.path).await?).await
}

/// Uploads a file into the daemon's share folder (`<home>/shared`) and shares it: the request body is the
/// file's bytes. A name that exists there is refused (409); an upload that breaks off leaves nothing.
#[utoipa::path(post, path = "/api/v1/shares/upload", params(UploadName),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = Shared), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn upload(
    State(s): State<ApiState>,
    q: Result<Query<UploadName>, QueryRejection>,
    body: axum::body::Body,
) -> Result<Json<Shared>, ApiError> {
    let Query(q) =
        q.map_err(|e| ApiError::bad_request(format!("say the file's name as ?name=...: {}", e.body_text())))?;
    let info = s.node().upload(&q.name, body.into_data_stream()).await?;
    shared(s.node(), info).await
}

async fn shared(node: &shoal_node::Node, info: shoal_store::BlobInfo) -> Result<Json<Shared>, ApiError> {
    let ticket = node.ticket(&info).await?;
    Ok(Json(Shared {
        ticket: ticket.to_string(),
        id: info.id,
        name: info.name,
        size: info.size,
        collection: info.is_collection,
        files: info.files.len(),
        peer: node.peer_id().to_string(),
        addrs: node.addrs().await?.iter().map(|a| a.to_string()).collect(),
    }))
}

/// A ticket for something shared already, naming this peer and its addresses as they are now.
#[utoipa::path(get, path = "/api/v1/shares/{id}/ticket", params(("id" = String, Path, description = "content id")),
    responses((status = 200, body = ShareTicket), (status = 404, body = ErrorBody)))]
async fn ticket(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<ShareTicket>, ApiError> {
    let cid = path_id(&id, "share")?;
    let store = s.node().store();
    let record = store.shares().map_err(ApiError::internal)?.into_iter().find(|r| r.id == cid);
    let Some(record) = record else { return Err(ApiError::not_found(format!("no share with id {id}"))) };
    // The ticket carries the blob's size (a folder's: its collection's), which the store knows when it
    // can serve it; a file that changed or went away since it was shared cannot be served.
    let served = store.open_served(&cid).map_err(ApiError::internal)?.ok_or_else(|| ApiError {
        status: axum::http::StatusCode::CONFLICT,
        message: format!("{} changed or is gone since it was shared: share it again", record.path.display()),
    })?;
    let info = shoal_store::BlobInfo {
        id: cid,
        size: served.size,
        name: record.name,
        is_collection: record.is_collection,
        files: Vec::new(),
    };
    Ok(Json(ShareTicket { ticket: s.node().ticket(&info).await?.to_string() }))
}

/// Stops sharing (the file itself is not touched).
#[utoipa::path(post, path = "/api/v1/shares/{id}/remove", params(("id" = String, Path, description = "content id")),
    responses((status = 200, body = Removed), (status = 404, body = ErrorBody)))]
async fn remove_share(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Removed>, ApiError> {
    let cid = path_id(&id, "share")?;
    if !s.node().unshare(&cid).await? {
        return Err(ApiError::not_found(format!("no share with id {id}")));
    }
    Ok(Json(Removed { removed: cid }))
}
