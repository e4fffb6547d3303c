//! Messaging: `/api/v1/topics` (follow, leave, read, post), `/api/v1/letters` (write, inbox, one
//! conversation), `/api/v1/messages/search`, `/api/v1/contacts`. New posts and letters, and letters'
//! delivery states, also go to the event feed (`message`, `letter_status`).

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use shoal_node::messaging::Messaging;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiState, body};
use crate::ApiError;
use crate::types::{
    Contact, Done, ErrorBody, JoinTopic, MessageSearch, MessageView, Page, TopicView, WriteLetter, WritePost,
};

pub(super) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_topics, join_topic))
        .routes(routes!(leave_topic))
        .routes(routes!(topic_messages, write_post))
        .routes(routes!(inbox, write_letter))
        .routes(routes!(letters_with))
        .routes(routes!(search_messages))
        .routes(routes!(list_contacts, add_contact))
        .routes(routes!(remove_contact))
}

fn messaging(s: &ApiState) -> Result<Arc<Messaging>, ApiError> {
    Ok(s.node().service::<Messaging>()?)
}

/// The query string, or a 400 in words (axum's own rejection is plain text, not the API's error body).
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v).map_err(|e| ApiError::bad_request(format!("malformed query string: {}", e.body_text())))
}

/// `limit`, 1 to 1000, or a 400.
fn limit(l: Option<usize>, default: usize) -> Result<usize, ApiError> {
    match l.unwrap_or(default) {
        n @ 1..=1000 => Ok(n),
        n => Err(ApiError::bad_request(format!("limit must be between 1 and 1000, not {n}"))),
    }
}

/// The topics this peer follows.
#[utoipa::path(get, path = "/api/v1/topics", responses((status = 200, body = Vec<TopicView>)))]
async fn list_topics(State(s): State<ApiState>) -> Result<Json<Vec<TopicView>>, ApiError> {
    Ok(Json(messaging(&s)?.topics().await))
}

/// Follows a topic (joining one followed already returns it).
#[utoipa::path(post, path = "/api/v1/topics", request_body = JoinTopic,
    responses((status = 200, body = TopicView), (status = 400, body = ErrorBody)))]
async fn join_topic(
    State(s): State<ApiState>,
    b: Result<Json<JoinTopic>, JsonRejection>,
) -> Result<Json<TopicView>, ApiError> {
    let j = body(b)?;
    let m = messaging(&s)?;
    Ok(Json(match (j.private, j.key.as_deref()) {
        (true, None) => m.create_private(&j.name).await?,
        (_, key) => m.join(&j.name, key).await?,
    }))
}

/// Stops following a topic (its history stays).
#[utoipa::path(post, path = "/api/v1/topics/{topic}/leave", params(("topic" = String, Path, description = "name or id")),
    responses((status = 200, body = Done)))]
async fn leave_topic(State(s): State<ApiState>, Path(topic): Path<String>) -> Result<Json<Done>, ApiError> {
    Ok(Json(Done { done: messaging(&s)?.leave(&topic).await? }))
}

/// A topic's posts, in the order every peer shows them.
#[utoipa::path(get, path = "/api/v1/topics/{topic}/messages",
    params(("topic" = String, Path, description = "name or id"), Page),
    responses((status = 200, body = Vec<MessageView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn topic_messages(
    State(s): State<ApiState>,
    Path(topic): Path<String>,
    p: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let p = query(p)?;
    Ok(Json(messaging(&s)?.history(&topic, p.after.as_deref(), limit(p.limit, 100)?).await?))
}

/// Posts to a topic this peer follows.
#[utoipa::path(post, path = "/api/v1/topics/{topic}/messages", params(("topic" = String, Path, description = "name or id")),
    request_body = WritePost, responses((status = 200, body = MessageView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn write_post(
    State(s): State<ApiState>,
    Path(topic): Path<String>,
    b: Result<Json<WritePost>, JsonRejection>,
) -> Result<Json<MessageView>, ApiError> {
    let w = body(b)?;
    Ok(Json(messaging(&s)?.post(&topic, &w.text).await?))
}

/// Letters sent and received, newest first.
#[utoipa::path(get, path = "/api/v1/letters", params(Page),
    responses((status = 200, body = Vec<MessageView>), (status = 400, body = ErrorBody)))]
async fn inbox(
    State(s): State<ApiState>,
    p: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let p = query(p)?;
    Ok(Json(messaging(&s)?.inbox(limit(p.limit, 100)?).await?))
}

/// Writes a letter, sealed to the recipient: delivered directly, or held for it by other peers.
#[utoipa::path(post, path = "/api/v1/letters", request_body = WriteLetter,
    responses((status = 200, body = MessageView), (status = 400, body = ErrorBody)))]
async fn write_letter(
    State(s): State<ApiState>,
    b: Result<Json<WriteLetter>, JsonRejection>,
) -> Result<Json<MessageView>, ApiError> {
    let w = body(b)?;
    Ok(Json(messaging(&s)?.send(&w.to, &w.text).await?))
}

/// The letters exchanged with one peer, oldest first.
#[utoipa::path(get, path = "/api/v1/letters/{peer}",
    params(("peer" = String, Path, description = "peer id or contact name"), Page),
    responses((status = 200, body = Vec<MessageView>), (status = 400, body = ErrorBody)))]
async fn letters_with(
    State(s): State<ApiState>,
    Path(peer): Path<String>,
    p: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let p = query(p)?;
    Ok(Json(messaging(&s)?.letters_with(&peer, p.after.as_deref(), limit(p.limit, 100)?).await?))
}

/// Posts and letters whose text has every word asked for, best first.
#[utoipa::path(get, path = "/api/v1/messages/search", params(MessageSearch),
    responses((status = 200, body = Vec<MessageView>), (status = 400, body = ErrorBody)))]
async fn search_messages(
    State(s): State<ApiState>,
    q: Result<Query<MessageSearch>, QueryRejection>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    let q = query(q)?;
    Ok(Json(messaging(&s)?.search(&q.q, limit(q.limit, 50)?).await?))
}

/// Every contact, by name.
#[utoipa::path(get, path = "/api/v1/contacts", responses((status = 200, body = Vec<Contact>)))]
async fn list_contacts(State(s): State<ApiState>) -> Result<Json<Vec<Contact>>, ApiError> {
    let all = messaging(&s)?.contacts().await?;
    Ok(Json(all.into_iter().map(|(name, peer)| Contact { name, peer }).collect()))
}

/// Names a peer.
#[utoipa::path(post, path = "/api/v1/contacts", request_body = Contact,
    responses((status = 200, body = Contact), (status = 400, body = ErrorBody)))]
async fn add_contact(
    State(s): State<ApiState>,
    b: Result<Json<Contact>, JsonRejection>,
) -> Result<Json<Contact>, ApiError> {
    let c = body(b)?;
    let name = messaging(&s)?.add_contact(&c.name, &c.peer).await?;
    Ok(Json(Contact { name, peer: c.peer.trim().to_string() }))
}

/// Forgets a contact.
#[utoipa::path(post, path = "/api/v1/contacts/{name}/remove", params(("name" = String, Path, description = "the contact's name")),
    responses((status = 200, body = Done), (status = 400, body = ErrorBody)))]
async fn remove_contact(State(s): State<ApiState>, Path(name): Path<String>) -> Result<Json<Done>, ApiError> {
    Ok(Json(Done { done: messaging(&s)?.remove_contact(&name).await? }))
}
