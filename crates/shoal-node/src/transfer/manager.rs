//! The user's downloads: start, pause, resume, cancel, and the list, kept in the catalog so that a restart
//! takes up what was running and still shows what finished or failed.
//!
//! The daemon's API and the one-shot CLI both go through here. Each download is one entry with a
//! [`DownloadState`]; a running one has a monitor task (on the transfer service's [`Tasks`]) that forwards
//! its progress to the event feed at most every [`PROGRESS_EVERY`] and records its outcome. Every change of
//! state is written to the catalog before it is reported, so what `GET /api/v1/downloads` shows is what a
//! restart finds.
//!
//! A monitor knows which run of its entry it watches (`run`, bumped when a run starts and when one is
//! paused or cancelled): after a pause and a quick resume, the first run's monitor sees its task aborted
//! and leaves the entry, now on its second run, alone.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_store::{ContentId, DownloadRequestRecord, DownloadState, Store};
use tokio::sync::watch;

use super::download::{DownloadReport, DownloadRequest, Progress};
use crate::blocking::blocking;
use crate::events::Events;
use crate::metrics::Metrics;
use crate::service::Tasks;
use crate::{Node, NodeError, Ticket};

/// Progress events per download at most this often.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// One download as the API and `shoal ls` show it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DownloadInfo {
    /// Content id.
    pub id: ContentId,
    /// Display name (from the ticket, else the id).
    pub name: String,
    /// Where it is written (the report's path once done).
    #[schema(value_type = Option<String>)]
    pub out: Option<PathBuf>,
    /// Where it stands.
    pub state: DownloadState,
    /// Bytes verified so far and the providers' shares.
    pub progress: Progress,
    /// Why it failed.
    pub error: Option<String>,
    /// The outcome, once done.
    pub report: Option<DownloadReport>,
}

struct Entry {
    /// The ticket or id as given, and the output as given: what a restart starts again from.
    what: String,
    output: Option<PathBuf>,
    info: DownloadInfo,
    request: DownloadRequest,
    progress: watch::Receiver<Progress>,
    abort: Option<tokio::task::AbortHandle>,
    /// Incremented at every start, so that a stale monitor recognises it is stale.
    run: u64,
}

impl Entry {
    fn view(&self) -> DownloadInfo {
        let mut v = self.info.clone();
        if v.report.is_none() {
            v.progress = self.progress.borrow().clone();
        }
        // The last run's figures stay (what came from whom), but nothing moves and no one is connected for a
        // download that is not running: a paused one showed its last rate and time left.
        if v.state != DownloadState::Running {
            v.progress.peers = 0;
            for p in &mut v.progress.per_peer {
                p.rate = 0.0;
            }
        }
        v
    }

    fn record(&self) -> DownloadRequestRecord {
        DownloadRequestRecord {
            id: self.info.id,
            what: self.what.clone(),
            output: self.output.clone(),
            state: self.info.state,
            name: self.info.name.clone(),
            error: self.info.error.clone(),
            report: self.info.report.as_ref().and_then(|r| serde_json::to_string(r).ok()),
        }
    }
}

/// The downloads of a node. Cheap to clone.
#[derive(Clone)]
pub struct Downloads {
    store: Arc<Store>,
    events: Events,
    tasks: Tasks,
    metrics: Arc<Metrics>,
    /// Where downloads go when no output is given.
    default_dir: PathBuf,
    entries: Arc<Mutex<BTreeMap<ContentId, Entry>>>,
}

/// What to download: a ticket or a bare content id, as a user types it.
pub fn parse_target(what: &str, out: Option<PathBuf>) -> Result<(DownloadRequest, String), NodeError> {
    let what = what.trim();
    match what.parse::<ContentId>() {
        Ok(id) => Ok((DownloadRequest::from_id(id, out), id.to_string())),
        Err(_) => {
            let t: Ticket = what.parse()?;
            Ok((DownloadRequest::from_ticket(&t, out), t.name.clone()))
        }
    }
}

impl Downloads {
    pub(crate) fn new(
        store: Arc<Store>,
        events: Events,
        tasks: Tasks,
        metrics: Arc<Metrics>,
        default_dir: PathBuf,
    ) -> Self {
        Self { store, events, tasks, metrics, default_dir, entries: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ContentId, Entry>> {
        shoal_store::lock(&self.entries)
    }

    /// Downloads running now.
    pub fn active(&self) -> usize {
        self.lock().values().filter(|e| e.info.state == DownloadState::Running).count()
    }

    /// Every download, by id.
    pub fn list(&self) -> Vec<DownloadInfo> {
        self.lock().values().map(Entry::view).collect()
    }

    /// One download.
    pub fn get(&self, id: &ContentId) -> Result<DownloadInfo, NodeError> {
        self.lock().get(id).map(Entry::view).ok_or(NodeError::NoDownload(*id))
    }

    /// The live progress of download `id` (of its current run).
    pub fn progress(&self, id: &ContentId) -> Result<watch::Receiver<Progress>, NodeError> {
        self.lock().get(id).map(|e| e.progress.clone()).ok_or(NodeError::NoDownload(*id))
    }

    /// Waits until download `id` is done (its report) or has failed, was paused or cancelled (an error
    /// saying so). What a one-shot `shoal get` does with the download it added.
    pub async fn wait(&self, id: &ContentId) -> Result<DownloadReport, NodeError> {
        let mut events = self.events.subscribe();
        loop {
            let d = self.get(id)?;
            match d.state {
                DownloadState::Done => {
                    return d.report.ok_or_else(|| NodeError::Task("a finished download has no report".into()));
                }
                DownloadState::Failed => return Err(NodeError::Failed(d.error.unwrap_or_default())),
                DownloadState::Paused | DownloadState::Cancelled => {
                    return Err(NodeError::Busy(format!("the download of {id} was {:?}", d.state).to_lowercase()));
                }
                DownloadState::Running => {}
            }
            // The state is re-read after every event (and at least every second): an outcome recorded between
            // the read above and the subscription is not missed.
            let _ = tokio::time::timeout(Duration::from_secs(1), events.recv()).await;
        }
    }

    /// Starts downloading `what` (a ticket or an id) to `output` (absolute; default: `<home>/downloads/`),
    /// or only records it when `paused`. Refused while the same id is running.
    pub async fn add(
        &self,
        node: &Node,
        what: &str,
        output: Option<PathBuf>,
        paused: bool,
    ) -> Result<DownloadInfo, NodeError> {
        if let Some(o) = &output
            && !o.is_absolute()
        {
            return Err(NodeError::Output { path: o.clone(), why: "must be an absolute path".into() });
        }
        let out = match &output {
            Some(o) => o.clone(),
            None => {
                std::fs::create_dir_all(&self.default_dir)
                    .map_err(|e| NodeError::Output { path: self.default_dir.clone(), why: e.to_string() })?;
                self.default_dir.clone()
            }
        };
        let (request, name) = parse_target(what, Some(out.clone()))?;
        let id = request.id;
        let state = if paused { DownloadState::Paused } else { DownloadState::Running };
        let entry = Entry {
            what: what.trim().to_string(),
            output,
            info: DownloadInfo {
                id,
                name,
                out: Some(out),
                state,
                progress: Progress::default(),
                error: None,
                report: None,
            },
            request,
            progress: watch::channel(Progress::default()).1,
            abort: None,
            run: 0,
        };
        let record = entry.record();
        // The check and the insert under one lock: two requests for one id cannot both pass.
        let before = {
            let mut all = self.lock();
            if all.get(&id).is_some_and(|e| e.info.state == DownloadState::Running) {
                return Err(NodeError::Busy(format!("{id} is already downloading")));
            }
            all.insert(id, entry)
        };
        if let Err(e) = self.save(record).await {
            let mut all = self.lock();
            match before {
                Some(old) => all.insert(id, old),
                None => all.remove(&id),
            };
            return Err(e);
        }
        if !paused {
            self.launch(node, id)?;
        }
        self.get(&id)
    }

    /// [`Downloads::add`] into the downloads folder as `name` (a search hit's name, which a peer gave: only
    /// a plain file name is taken), shown under that name.
    pub async fn add_as(&self, node: &Node, what: &str, name: &str, paused: bool) -> Result<DownloadInfo, NodeError> {
        let out = super::upload::check_plain(&self.default_dir, name)?;
        std::fs::create_dir_all(&self.default_dir)
            .map_err(|e| NodeError::Output { path: self.default_dir.clone(), why: e.to_string() })?;
        let info = self.add(node, what, Some(out), paused).await?;
        if let Some(e) = self.lock().get_mut(&info.id) {
            e.info.name = name.to_string();
        }
        self.get(&info.id)
    }

    /// Moves entry `id` from a state `from` allows to `to` under the lock; a run being stopped is aborted
    /// and its monitor disowned (the run number moves on, so that a resume that sets the entry running
    /// again before that monitor has seen its task end is never taken for the old run). Returns the
    /// entry's record and view as they are now.
    fn transition(
        &self,
        id: &ContentId,
        from: impl Fn(DownloadState) -> bool,
        refused: &str,
        to: DownloadState,
    ) -> Result<(DownloadRequestRecord, DownloadInfo), NodeError> {
        let mut d = self.lock();
        let e = d.get_mut(id).ok_or(NodeError::NoDownload(*id))?;
        if !from(e.info.state) {
            return Err(NodeError::Busy(format!("{id} {refused}")));
        }
        e.info.state = to;
        if to != DownloadState::Running {
            e.run += 1;
            if let Some(a) = e.abort.take() {
                a.abort();
            }
        }
        Ok((e.record(), e.view()))
    }

    /// Stops a running download; what is verified stays, and [`Downloads::resume`] goes on from there.
    pub async fn pause(&self, id: &ContentId) -> Result<DownloadInfo, NodeError> {
        let running = |s| s == DownloadState::Running;
        let (record, _) = self.transition(id, running, "is not running", DownloadState::Paused)?;
        self.save(record).await?;
        self.events.emit(super::Event::DownloadPaused { id: *id });
        self.get(id)
    }

    /// Goes on with a paused download.
    pub async fn resume(&self, node: &Node, id: &ContentId) -> Result<DownloadInfo, NodeError> {
        let paused = |s| s == DownloadState::Paused;
        let (record, _) = self.transition(id, paused, "is not paused", DownloadState::Running)?;
        self.save(record).await?;
        self.launch(node, *id)?;
        self.events.emit(super::Event::DownloadResumed { id: *id });
        self.get(id)
    }

    /// Stops a download and deletes its partial file (a finished or shared file is never touched), and
    /// forgets it in the catalog.
    pub async fn cancel(&self, id: &ContentId) -> Result<DownloadInfo, NodeError> {
        let open = |s| matches!(s, DownloadState::Running | DownloadState::Paused);
        let (_, view) = self.transition(id, open, "has already ended", DownloadState::Cancelled)?;
        let (store, cid) = (self.store.clone(), *id);
        blocking(move || {
            store.discard_partial(&cid)?;
            store.remove_request(&cid)
        })
        .await?;
        self.events.emit(super::Event::DownloadCancelled { id: *id });
        Ok(view)
    }

    /// Takes up what the catalog holds from a previous run: running downloads start again (from what was
    /// verified), paused ones stay paused, finished and failed ones are listed as they ended. Returns how
    /// many were running.
    pub async fn recover(&self, node: &Node) -> Result<usize, NodeError> {
        let store = self.store.clone();
        let records = blocking(move || store.requests()).await?;
        let mut running = 0;
        for r in records {
            let report: Option<DownloadReport> = r.report.as_deref().and_then(|j| serde_json::from_str(j).ok());
            let (request, name) =
                match parse_target(&r.what, r.output.clone().or_else(|| Some(self.default_dir.clone()))) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(id = %r.id.short(), error = %e, "cannot take up a download; dropping it");
                        let (store, id) = (self.store.clone(), r.id);
                        let _ = blocking(move || store.remove_request(&id)).await;
                        continue;
                    }
                };
            let mut progress = Progress::default();
            if let Some(rep) = &report {
                progress = Progress {
                    size: rep.size,
                    verified: rep.size,
                    files_done: rep.files,
                    files_total: rep.files,
                    ..progress
                };
            }
            let name = if r.name.is_empty() { name } else { r.name.clone() };
            let out = report.as_ref().map(|rep| rep.out.clone()).or_else(|| request.out.clone());
            let entry = Entry {
                what: r.what.clone(),
                output: r.output.clone(),
                info: DownloadInfo {
                    id: r.id,
                    name,
                    out,
                    state: r.state,
                    progress: progress.clone(),
                    error: r.error.clone(),
                    report,
                },
                request,
                progress: watch::channel(progress).1,
                abort: None,
                run: 0,
            };
            self.lock().insert(r.id, entry);
            if r.state == DownloadState::Running {
                tracing::info!(id = %r.id.short(), "taking up an unfinished download");
                self.launch(node, r.id)?;
                running += 1;
            }
        }
        Ok(running)
    }

    async fn save(&self, record: DownloadRequestRecord) -> Result<(), NodeError> {
        let store = self.store.clone();
        blocking(move || store.put_request(&record)).await
    }

    /// Starts the entry's download and its monitor.
    fn launch(&self, node: &Node, id: ContentId) -> Result<(), NodeError> {
        let (request, run) = {
            let mut d = self.lock();
            let e = d.get_mut(&id).ok_or(NodeError::NoDownload(id))?;
            e.run += 1;
            (e.request.clone(), e.run)
        };
        let handle = node.transfer()?.download(node.clone(), request);
        {
            let mut d = self.lock();
            let e = d.get_mut(&id).ok_or(NodeError::NoDownload(id))?;
            e.progress = handle.progress();
            e.abort = Some(handle.abort_handle());
            e.info.error = None;
        }
        let this = self.clone();
        let mut watch = handle.progress();
        self.tasks.spawn(async move {
            let reporter = async {
                while watch.changed().await.is_ok() {
                    let progress = watch.borrow().clone();
                    this.events.emit(super::Event::DownloadProgress { id, progress });
                    tokio::time::sleep(PROGRESS_EVERY).await;
                }
                // The download dropped its progress sender: it is ending. Wait for its outcome below, never
                // end the monitor here (that would leave the entry `running` for good).
                std::future::pending::<std::convert::Infallible>().await
            };
            let outcome = tokio::select! {
                r = handle.finish() => r,
                never = reporter => match never {},
            };
            this.finished(id, run, outcome).await;
        });
        Ok(())
    }

    /// Records how run `run` of `id` ended, unless the user paused or cancelled it meanwhile.
    async fn finished(&self, id: ContentId, run: u64, outcome: Result<DownloadReport, NodeError>) {
        let (record, event) = {
            let mut d = self.lock();
            let Some(e) = d.get_mut(&id) else { return };
            if e.run != run || e.info.state != DownloadState::Running {
                return;
            }
            e.abort = None;
            let event = match outcome {
                Ok(report) => {
                    self.metrics.download_seconds.observe(report.seconds);
                    e.info.state = DownloadState::Done;
                    e.info.out = Some(report.out.clone());
                    e.info.progress = e.progress.borrow().clone();
                    e.info.report = Some(report.clone());
                    super::Event::DownloadDone { id, report }
                }
                Err(err) => {
                    e.info.state = DownloadState::Failed;
                    e.info.progress = e.progress.borrow().clone();
                    e.info.error = Some(err.to_string());
                    super::Event::DownloadFailed { id, error: err.to_string() }
                }
            };
            (e.record(), event)
        };
        if let Err(e) = self.save(record).await {
            tracing::warn!(error = %e, "cannot record how a download ended");
        }
        self.events.emit(event);
    }
}
