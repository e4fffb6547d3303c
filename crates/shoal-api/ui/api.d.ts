// Generated from the API's OpenAPI description (crates/shoal-api/src/typescript.rs); do not edit.
// Rewrite it with: SHOAL_BLESS=1 cargo test -p shoal-api --test ui

/** `POST /api/v1/shares`. */
export interface AddShare {
  /** Absolute path of a file or folder on the daemon's machine. */
  path: string;
}

/**
 * `GET /api/v1/config`: the effective configuration (read only; change it in the config file, the
 * environment or the flags, and restart the daemon).
 */
export interface ConfigView {
  /** Bootstrap peers. */
  bootstrap: string[];
  /** The Kademlia DHT. */
  dht: boolean;
  /** Download cap, all peers together. */
  download_limit?: number | null;
  /** Download cap per peer. */
  download_limit_per_peer?: number | null;
  /** The data directory. */
  home: string;
  /** This peer is an index server. */
  index_server: boolean;
  /** Index servers (hybrid). */
  index_servers: string[];
  /** Listen addresses asked for. */
  listen: string[];
  /** Bytes one download may have asked for and not received, at most, per peer. */
  max_bytes_in_flight: number;
  /** Connections at most (`None`: libp2p's default). */
  max_connections?: number | null;
  /** LAN discovery (mDNS). */
  mdns: boolean;
  /** `pure`, `structured`, `hybrid` or `supernode`. */
  topology: string;
  /** Upload cap, bytes per second, all peers together (`None`: none). */
  upload_limit?: number | null;
  /** Upload cap per peer. */
  upload_limit_per_peer?: number | null;
}

/** A petname for a peer id (`GET`/`POST /api/v1/contacts`). */
export interface Contact {
  /** The name (NFC, trimmed, at most 64 bytes, no control characters). */
  name: string;
  /** The peer id. */
  peer: string;
}

/** Content id: the BLAKE3 hash of the bytes in 64 lowercase hex digits (what b3sum prints) */
export type ContentId = string;

/** Counters since start (for `/metrics` and the simulator). */
export interface Counters {
  /** Of those, already seen (dropped). */
  duplicates: number;
  /** Hit messages sent (answered or routed back). */
  hits_sent: number;
  /** Queries received from other peers. */
  queries_received: number;
  /** Query messages sent (forwarded or originated). */
  queries_sent: number;
  /** Of those, over the sender's rate (dropped). */
  throttled: number;
}

/** What a removal or a leave answers: whether there was something to remove. */
export interface Done {
  /** True when something was removed or left. */
  done: boolean;
}

/** One download as the API and `shoal ls` show it. */
export interface DownloadInfo {
  /** Why it failed. */
  error?: string | null;
  /** Content id. */
  id: ContentId;
  /** Display name (from the ticket, else the id). */
  name: string;
  /** Where it is written (the report's path once done). */
  out?: string | null;
  /** Bytes verified so far and the providers' shares. */
  progress: Progress;
  report?: (null | DownloadReport);
  /** Where it stands. */
  state: DownloadState;
}

/** The outcome of a completed download. */
export interface DownloadReport {
  /** True for a folder. */
  collection: boolean;
  /** Files written. */
  files: number;
  /** Content id. */
  id: ContentId;
  /** Where it was written. */
  out: string;
  /** Per-provider figures, by bytes delivered. */
  peers: PeerReport[];
  /** Bytes received in this run. */
  received: number;
  /** Bytes that were already verified when this run started (a resumed download). */
  resumed: number;
  /** Wall time of this run, in seconds, until the output was complete, synced to disk and in place. */
  seconds: number;
  /** Total bytes (files). */
  size: number;
  /**
   * Seconds spent receiving and verifying pieces (what throughput is measured over: it excludes
   * start-up, finding providers and the final sync to disk).
   */
  transfer_seconds: number;
}

/** Where a download the user asked for stands. */
export type DownloadState = "running" | "paused" | "done" | "failed" | "cancelled";

/** Every error answer: a status code and this body. */
export interface ErrorBody {
  /** What went wrong and, where possible, what to do. */
  error: string;
}

/** Something that happened on this node. */
export type Event = (PeerEvent | TransferEvent | SearchFeedEvent | MessagingEvent | FeedEvent);

/** About the feed. */
export type FeedEvent = {
  /** How many. */
  missed: number;
  type: "lost";
};

/** One thing found at one peer. */
export interface FoundHit {
  /** Its addresses, as it gave them (multiaddr strings). */
  addrs: string[];
  /** True for a folder. */
  collection: boolean;
  /** Content id (give it to `shoal get`). */
  id: ContentId;
  /** File or folder name. */
  name: string;
  /** The peer that has it (libp2p's serde form: the base58 peer id). */
  peer: string;
  /** Bytes. */
  size: number;
}

/** `POST /api/v1/topics`: follow a public topic by name, or a private one by its key. */
export interface JoinTopic {
  /** A private topic's key: 64 hex digits from its invite. */
  key?: string | null;
  /** A public topic's name (NFC, trimmed, at most 128 bytes), or the name to show a private one by. */
  name: string;
  /** Start a new private topic (a fresh key; the answer carries it) when no `key` is given. */
  private?: boolean;
}

/** A post or letter as people see it. */
export interface MessageView {
  /** The author's peer id. */
  author: string;
  /** The author's petname, if it is a contact. */
  author_name?: string | null;
  /** A post's Lamport clock (the shared order is clock, then id); a letter's time. */
  clock: number;
  /** A post's topic name, or the other peer of a letter (its petname if it has one, else its peer id). */
  conversation: string;
  /** Some posts before this one never arrived. */
  gap: boolean;
  /** Its id, hex. */
  id: string;
  /** `post` or `letter`. */
  kind: string;
  /** Written by this peer. */
  mine: boolean;
  /** A letter's delivery state: `sent`, `held` (by N peers), `delivered`, `expired`, or `received`. */
  status?: string | null;
  /** The text. */
  text: string;
  /** The author's time, Unix ms. */
  time_ms: number;
}

/**
 * What messaging tells the node's event feed. As JSON: `{"type": "message", ...MessageView}` for a post
 * or letter that arrived or was written here, `{"type": "letter_status", id, to, status}`.
 */
export type MessagingEvent = ((MessageView & {
  type: "message";
}) | {
  /** The letter's id, hex. */
  id: string;
  /** `sent`, `held`, `delivered` or `expired`. */
  status: string;
  /** Its recipient's peer id. */
  to: string;
  type: "letter_status";
});

/** Peers connecting and leaving. */
export type PeerEvent = ({
  /** Peer id. */
  peer: string;
  type: "peer_connected";
} | {
  /** Peer id. */
  peer: string;
  type: "peer_disconnected";
});

/** One provider's part in a running download. */
export interface PeerRate {
  /** Verified bytes it delivered in this run. */
  bytes: number;
  /** Peer id. */
  peer: string;
  /** Recent rate in bytes per second (moving average over about two seconds). */
  rate: number;
}

/** What one provider contributed. */
export interface PeerReport {
  /** Verified bytes it delivered that completed pieces. */
  bytes: number;
  /** Why it was dropped, if it was. */
  dropped?: string | null;
  /** Peer id. */
  peer: string;
  /** Payload bytes received from it (including proofs, duplicates and rejected data). */
  received: number;
}

/** One line of `GET /api/v1/peers`. */
export interface PeerView {
  /** Its addresses as we know them. */
  addrs: string[];
  /** What it says it runs (`shoal/0.1.0 topology=structured`). */
  agent?: string | null;
  /** Bytes received from it since the daemon started. */
  downloaded: number;
  /** Peer id. */
  peer: string;
  /** Bytes served to it since the daemon started. */
  uploaded: number;
}

/** Progress of a running download. */
export interface Progress {
  /** Files completed (for a folder). */
  files_done: number;
  /** Files in all (1 for a file). */
  files_total: number;
  /** Providers currently in the download. */
  peers: number;
  /** Each provider's share of this download: verified bytes and recent rate. */
  per_peer?: PeerRate[];
  /** Bytes received in this run (payload, including proofs and discarded data). */
  received: number;
  /** Total bytes (0 until the first provider answered). */
  size: number;
  /** Bytes verified so far (including those verified before a restart). */
  verified: number;
}

/** What `POST /api/v1/shares/{id}/remove` answers. */
export interface Removed {
  /** The share that was removed. */
  removed: ContentId;
}

/** What a peer is. */
export type Role = "leaf" | "super";

/** `POST /api/v1/search`. Give `text` or `id`. */
export interface SearchBody {
  /** File extension without the dot. */
  ext?: string | null;
  /** Or: a content id whose providers to find. */
  id?: string | null;
  /** Stop after this many distinct ids (1-1000, default 50). */
  limit?: number | null;
  /** Largest size in bytes. */
  max_size?: number | null;
  /** Smallest size in bytes. */
  min_size?: number | null;
  /** Words (prefixes) to look for. */
  text?: string | null;
  /** Stop after this many seconds (1-300, default 10). */
  timeout_secs?: number | null;
}

/** Search counters since start, for `/metrics`. */
export type SearchCounters = (Counters & {
  /** Hits delivered to searches started here. */
  hits: number;
  /** See `index_peers`. */
  index_entries: number;
  /** On an index server: peers registered and the names they list. */
  index_peers: number;
  /** Index servers connected (`hybrid`). */
  index_servers_up: number;
  /** On a supernode: its leaves. */
  leaves: number;
  /** Current overlay neighbours (`pure`, `hybrid`). */
  neighbours: number;
  role?: (null | Role);
  /** Searches started here. */
  searches: number;
  /** `supernode` topology: a leaf's supernodes, or a supernode's linked supernodes (peer ids). */
  supers: string[];
});

/**
 * What a running search reports. As JSON: `{"type":"hit", id, name, size, collection, peer, addrs}` and
 * `{"type":"done", messages, hits, responders, first_hit_ms, rings, elapsed_ms}`.
 */
export type SearchEvent = ((FoundHit & {
  type: "hit";
}) | (SearchStats & {
  type: "done";
}));

/**
 * A search's events as the node's feed carries them, tagged with the number of the search
 * (`{"type": "search_hit", "search": 3, "id": ..., ...}`).
 */
export type SearchFeedEvent = ((FoundHit & {
  /** Which search. */
  search: number;
} & {
  type: "search_hit";
}) | (SearchStats & {
  /** Which search. */
  search: number;
} & {
  type: "search_done";
}));

/**
 * One line of the answer to `POST /api/v1/search` (newline-delimited JSON): a search event and the
 * number of the search on this daemon.
 */
export type SearchLine = (SearchEvent & {
  /** Which search (the same number tags its events on the feed). */
  search: number;
});

/** What a finished search measured. Serialized with times in milliseconds (`first_hit_ms`, `elapsed_ms`). */
export interface SearchStats {
  /** Time from start to end. */
  elapsed_ms: number;
  /** Time from start to the first hit. */
  first_hit_ms?: number | null;
  /** Distinct content ids found. */
  hits: number;
  /** Query messages this peer sent for it. */
  messages: number;
  /** Distinct peers that answered. */
  responders: number;
  /** Rings of the expanding ring used. */
  rings: number;
}

/** Something this peer shares. */
export interface ShareRecord {
  /** Root id (a file's id, or a folder's collection id). */
  id: ContentId;
  /** True for a folder. */
  is_collection: boolean;
  /** Display name (file or folder name). */
  name: string;
  /** Where it is on disk. */
  path: string;
  /** Bytes (for a folder: the sum of its files). */
  size: number;
}

/** What `GET /api/v1/shares/{id}/ticket` answers. */
export interface ShareTicket {
  /** The ticket to give to others (this peer and its addresses as they are now). */
  ticket: string;
}

/** What `POST /api/v1/shares` answers. */
export interface Shared {
  /** This peer's addresses. */
  addrs: string[];
  /** True for a folder. */
  collection: boolean;
  /** Files in a folder. */
  files: number;
  /** Root id. */
  id: ContentId;
  /** File or folder name. */
  name: string;
  /** This peer's id. */
  peer: string;
  /** Bytes (for a folder: its collection blob). */
  size: number;
  /** The ticket to give to others. */
  ticket: string;
}

/** `POST /api/v1/downloads`. */
export interface StartDownload {
  /** Save it in the downloads folder under this file name (a search hit's); not with `output`. */
  name?: string | null;
  /** Absolute output path (default: `<home>/downloads/<name>`). */
  output?: string | null;
  /** Only record it, paused (resume it later). */
  paused?: boolean;
  /** A ticket or a content id. */
  what: string;
}

/** `GET /api/v1/status`. */
export interface Status {
  /** Listen addresses, each ending in `/p2p/<peer id>`. */
  addrs: string[];
  /** Bytes downloaded since start. */
  downloaded_bytes: number;
  /** Downloads running now. */
  downloads_active: number;
  /** The data directory. */
  home: string;
  /** This peer's id. */
  peer: string;
  /** Peers connected now. */
  peers_connected: number;
  /** Search counters, including the index server's registry size when this peer is one. */
  search: SearchCounters;
  /** Overlay neighbours (`pure`, `hybrid`). */
  search_neighbours: number;
  /** Each running service's own status, by name (`peers`, `transfer`, `search`, ...). */
  services: Record<string, unknown>;
  /** Shares. */
  shares: number;
  /** `pure`, `structured`, `hybrid` or `supernode`. */
  topology: string;
  /** Peers met that run another topology: `[peer id, their topology]`. */
  topology_mismatches: ([string, string])[];
  /** Bytes uploaded since start. */
  uploaded_bytes: number;
  /** Pieces that failed verification since start. */
  verification_failures: number;
}

/** What `POST /api/v1/stop` answers. */
export interface Stopping {
  /** Always true: the daemon stops once it has answered. */
  stopping: boolean;
}

/** A topic this peer follows. */
export interface TopicView {
  /** Posts shown with a gap before them. */
  gaps: number;
  /** Its id, hex (what gossipsub and refills use). */
  id: string;
  /**
   * A private topic's key (64 hex digits): what members join with (`shoal topics join NAME --key
   * KEY`). Whoever has it reads the topic: give it only to members.
   */
  key?: string | null;
  /** Its name. */
  name: string;
  /** Connected peers that follow it. */
  peers: number;
  /** Posts placed in its log. */
  posts: number;
  /** A private topic (joined with its key). */
  private: boolean;
  /** Posts waiting for their parents. */
  waiting: number;
}

/** Bytes moved per bucket over a window that ends now, oldest bucket first. */
export interface TrafficHistory {
  /** Length of each bucket, ms. */
  bucket_ms: number;
  /** Bytes received in each bucket. */
  down: number[];
  /** Start of the first bucket, Unix ms. */
  from_ms: number;
  /** Bytes sent in each bucket. */
  up: number[];
}

/** What the transfer service reports on the node's event feed. */
export type TransferEvent = ({
  /** Root id. */
  id: ContentId;
  /** File or folder name. */
  name: string;
  type: "share_added";
} | {
  /** Root id. */
  id: ContentId;
  type: "share_removed";
} | {
  /** Root id. */
  id: ContentId;
  /** Where it stands. */
  progress: Progress;
  type: "download_progress";
} | {
  /** Root id. */
  id: ContentId;
  /** The outcome. */
  report: DownloadReport;
  type: "download_done";
} | {
  /** What went wrong. */
  error: string;
  /** Root id. */
  id: ContentId;
  type: "download_failed";
} | {
  /** Root id. */
  id: ContentId;
  type: "download_paused";
} | {
  /** Root id. */
  id: ContentId;
  type: "download_resumed";
} | {
  /** Root id. */
  id: ContentId;
  type: "download_cancelled";
} | {
  /** End of the period, Unix ms. */
  at_ms: number;
  /** Bytes received. */
  down: number;
  /** Length of the period, ms. */
  span_ms: number;
  type: "traffic";
  /** Bytes sent. */
  up: number;
});

/** `POST /api/v1/ui/code`: a one-time login code for the web UI. */
export interface UiCode {
  /** Spend it at `POST /ui/login` within `expires_secs`; it works once. */
  code: string;
  /** Seconds it stays valid. */
  expires_secs: number;
  /** The UI's path with the code (`/#code=...`), to append to the API's address. */
  path: string;
}

/** `POST /ui/login`. */
export interface UiLogin {
  /** The one-time code. */
  code: string;
}

/** What `POST /ui/login` and `GET /ui/session` answer (the session itself is the cookie). */
export interface UiSession {
  /** Send it as `X-Shoal-Csrf` with every request that changes something. */
  csrf: string;
}

/** `POST /api/v1/letters`. */
export interface WriteLetter {
  /** The text (at most 64 KiB). */
  text: string;
  /** The recipient: a peer id, or a contact's name. */
  to: string;
}

/** `POST /api/v1/topics/{topic}/messages`. */
export interface WritePost {
  /** The text (at most 64 KiB; larger content goes as a share's ticket). */
  text: string;
}

