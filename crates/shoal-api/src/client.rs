//! Finding and calling a running daemon: one typed method per route, with the types of [`crate::types`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::{
    AddShare, Contact, ContentId, Done, DownloadInfo, JoinTopic, MessageView, PeerView, Removed, SearchBody,
    SearchLine, ShareRecord, Shared, StartDownload, Status, Stopping, TopicView, WriteLetter, WritePost,
};

/// Why a call to the daemon failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The API files could not be read.
    #[error("{path}: {source}")]
    Files {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The request did not get an answer.
    #[error("the daemon at {addr} did not answer: {why}")]
    Unreachable {
        /// API address.
        addr: String,
        /// Cause.
        why: String,
    },
    /// The daemon answered with an error.
    #[error("{message} (HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
}

/// A client for the daemon of one data directory.
#[derive(Clone, Debug)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for the API at `addr` with `token`.
    pub fn new(addr: &str, token: &str) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        Self { base: format!("http://{}", addr.trim()), token: token.trim().to_string(), http }
    }

    /// The daemon running on `home`, if one answers. A stale `api.addr` (its daemon crashed) gives `None`.
    pub async fn discover(home: &Path) -> Result<Option<Self>, ClientError> {
        let read = |name: &str| {
            let path = home.join(name);
            match std::fs::read_to_string(&path) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(ClientError::Files { path, source }),
            }
        };
        let (Some(addr), Some(token)) = (read("api.addr")?, read("api.token")?) else { return Ok(None) };
        let c = Self::new(&addr, &token);
        match c.status().await {
            Ok(_) => Ok(Some(c)),
            Err(ClientError::Unreachable { .. }) => {
                tracing::info!(addr = %addr.trim(), "ignoring a stale api.addr: no daemon answers there");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        r: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<T, ClientError> {
        let r = r.map_err(|e| ClientError::Unreachable { addr: self.base.clone(), why: e.to_string() })?;
        let status = r.status();
        let text =
            r.text().await.map_err(|e| ClientError::Unreachable { addr: self.base.clone(), why: e.to_string() })?;
        if !status.is_success() {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or(text);
            return Err(ClientError::Api { status: status.as_u16(), message });
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Api { status: status.as_u16(), message: e.to_string() })
    }

    /// `GET path`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await;
        self.answer(r).await
    }

    /// `POST /api/v1/search`: `each` gets every line of the answer as it arrives, typed and as sent (for
    /// `--json`); returning `false` stops reading. `timeout` bounds the whole exchange.
    pub async fn search(
        &self,
        body: &SearchBody,
        timeout: Duration,
        mut each: impl FnMut(SearchLine, &str) -> bool,
    ) -> Result<(), ClientError> {
        let unreachable = |e: reqwest::Error| ClientError::Unreachable { addr: self.base.clone(), why: e.to_string() };
        let mut r = self
            .http
            .post(format!("{}/api/v1/search", self.base))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(unreachable)?;
        if !r.status().is_success() {
            return self.answer::<serde_json::Value>(Ok(r)).await.map(|_| ());
        }
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = r.chunk().await.map_err(unreachable)? {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let raw = String::from_utf8_lossy(&line);
                let v = serde_json::from_str(raw.trim_end())
                    .map_err(|e| ClientError::Api { status: 200, message: format!("malformed search line: {e}") })?;
                if !each(v, raw.trim_end()) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// `GET /api/v1/status`.
    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get("/api/v1/status").await
    }

    /// `POST /api/v1/shares`.
    pub async fn share(&self, path: &Path) -> Result<Shared, ClientError> {
        self.post("/api/v1/shares", &AddShare { path: path.to_path_buf() }).await
    }

    /// `GET /api/v1/shares`.
    pub async fn shares(&self) -> Result<Vec<ShareRecord>, ClientError> {
        self.get("/api/v1/shares").await
    }

    /// `POST /api/v1/downloads`.
    pub async fn start_download(&self, req: &StartDownload) -> Result<DownloadInfo, ClientError> {
        self.post("/api/v1/downloads", req).await
    }

    /// `GET /api/v1/downloads`.
    pub async fn downloads(&self) -> Result<Vec<DownloadInfo>, ClientError> {
        self.get("/api/v1/downloads").await
    }

    /// `GET /api/v1/downloads/{id}`.
    pub async fn download(&self, id: &ContentId) -> Result<DownloadInfo, ClientError> {
        self.get(&format!("/api/v1/downloads/{id}")).await
    }

    /// `GET /api/v1/peers`.
    pub async fn peers(&self) -> Result<Vec<PeerView>, ClientError> {
        self.get("/api/v1/peers").await
    }

    /// `POST /api/v1/stop`.
    pub async fn stop(&self) -> Result<Stopping, ClientError> {
        self.post("/api/v1/stop", &serde_json::json!({})).await
    }

    /// `POST /api/v1/ui/code`: a one-time login code for the web UI.
    pub async fn ui_code(&self) -> Result<crate::server::ui::UiCode, ClientError> {
        self.post("/api/v1/ui/code", &serde_json::json!({})).await
    }

    /// The daemon's address as a URL (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `POST /api/v1/shares/{id}/remove`.
    pub async fn unshare(&self, id: &ContentId) -> Result<Removed, ClientError> {
        self.post(&format!("/api/v1/shares/{id}/remove"), &serde_json::json!({})).await
    }

    /// `GET /api/v1/topics`.
    pub async fn topics(&self) -> Result<Vec<TopicView>, ClientError> {
        self.get("/api/v1/topics").await
    }

    /// `POST /api/v1/topics`.
    pub async fn join_topic(&self, name: &str, key: Option<&str>) -> Result<TopicView, ClientError> {
        self.post("/api/v1/topics", &JoinTopic { name: name.into(), key: key.map(str::to_string), private: false })
            .await
    }

    /// `POST /api/v1/topics` with `private`: a new private topic, its key in the answer.
    pub async fn create_private_topic(&self, name: &str) -> Result<TopicView, ClientError> {
        self.post("/api/v1/topics", &JoinTopic { name: name.into(), key: None, private: true }).await
    }

    /// `POST /api/v1/topics/{topic}/leave`.
    pub async fn leave_topic(&self, topic: &str) -> Result<Done, ClientError> {
        self.post(&format!("/api/v1/topics/{}/leave", segment(topic)), &serde_json::json!({})).await
    }

    /// `GET /api/v1/topics/{topic}/messages`: the first `limit` posts after `after`.
    pub async fn topic_messages(
        &self,
        topic: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MessageView>, ClientError> {
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        self.get(&format!("/api/v1/topics/{}/messages?limit={limit}{after}", segment(topic))).await
    }

    /// `POST /api/v1/topics/{topic}/messages`.
    pub async fn write_post(&self, topic: &str, text: &str) -> Result<MessageView, ClientError> {
        self.post(&format!("/api/v1/topics/{}/messages", segment(topic)), &WritePost { text: text.into() }).await
    }

    /// `POST /api/v1/letters`.
    pub async fn write_letter(&self, to: &str, text: &str) -> Result<MessageView, ClientError> {
        self.post("/api/v1/letters", &WriteLetter { to: to.into(), text: text.into() }).await
    }

    /// `GET /api/v1/letters`.
    pub async fn inbox(&self, limit: usize) -> Result<Vec<MessageView>, ClientError> {
        self.get(&format!("/api/v1/letters?limit={limit}")).await
    }

    /// `GET /api/v1/letters/{peer}`.
    pub async fn letters_with(&self, peer: &str, limit: usize) -> Result<Vec<MessageView>, ClientError> {
        self.get(&format!("/api/v1/letters/{}?limit={limit}", segment(peer))).await
    }

    /// `GET /api/v1/contacts`.
    pub async fn contacts(&self) -> Result<Vec<Contact>, ClientError> {
        self.get("/api/v1/contacts").await
    }

    /// `POST /api/v1/contacts`.
    pub async fn add_contact(&self, name: &str, peer: &str) -> Result<Contact, ClientError> {
        self.post("/api/v1/contacts", &Contact { name: name.into(), peer: peer.into() }).await
    }

    /// `POST /api/v1/contacts/{name}/remove`.
    pub async fn remove_contact(&self, name: &str) -> Result<Done, ClientError> {
        self.post(&format!("/api/v1/contacts/{}/remove", segment(name)), &serde_json::json!({})).await
    }

    /// `POST path` with a JSON body.
    pub async fn post<T: DeserializeOwned, B: Serialize>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        let r = self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(body).send().await;
        self.answer(r).await
    }
}

/// A path segment with everything but unreserved characters percent-encoded (topic and contact names
/// may hold spaces, slashes, any letter).
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
