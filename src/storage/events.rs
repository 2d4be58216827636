//! The SSE replay log: what a session-era client missed, kept for `Last-Event-ID`.
//!
//! Three trees index each event: `events` (global arrival order → time and stream
//! key; trimmed oldest first), `event_index` (session, stream, seq → the event: what
//! a replay reads), `event_session` (session, arrival order: the session's oldest
//! first). Events are not flushed one by one: a crash loses at most the last half
//! second of replayable events, never an acknowledged write.
//!
//! Bounds: the whole log by count, bytes and age (`trim_events`, run periodically),
//! and each session by its share of count and bytes, enforced as it appends (so one
//! session cannot push another's events out); a session's events go with it.
//!
//! An event of [`FILE_THRESHOLD`] bytes or more is written to a file of its own under
//! `<data dir>/events/` and the index holds a reference: sled writes a leaf holding a
//! big value again whole at every change of that leaf and gives the space back only as
//! later writes recycle its segments (measured: 150 events of 4 MiB took 1.8 GB of
//! disk with the log trimmed to 64 MiB), while a file is gone the moment its event is
//! trimmed. Replays read such a file in chunks as the connection takes them.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

use super::{unix_ms, Storage, StorageError, Trees, NS_SEP};

/// Events this big or bigger are kept in a file of their own.
pub const FILE_THRESHOLD: usize = 64 * 1024;

/// First byte of an index value that refers to a file (JSON text never starts so).
const FILE_REF: u8 = 0;

/// Counters and bounds of the log.
pub(super) struct EventLog {
    next: AtomicU64,
    count: AtomicUsize,
    /// Bytes of logged event JSON.
    bytes: AtomicU64,
    /// What each session holding events has logged.
    sessions: Mutex<HashMap<Box<[u8]>, Share>>,
    /// A session's share: bytes, then count (`u64::MAX`/`usize::MAX` = unbounded).
    share_bytes: AtomicU64,
    share_count: AtomicUsize,
    /// Where big events go (`None` for a temporary database: all inline).
    files: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Share {
    bytes: u64,
    count: usize,
}

/// One logged event's JSON: in sled's cache, or in a file of its own.
pub struct Event(Body);

enum Body {
    Inline(sled::IVec),
    File { path: PathBuf, len: u64 },
}

impl Event {
    /// Bytes of JSON.
    pub fn len(&self) -> u64 {
        match &self.0 {
            Body::Inline(v) => v.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    /// True for an empty event (never logged in practice).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The JSON in pieces of at most `size` bytes, read as the iterator advances. A
    /// file shorter than logged (its data lost in a crash) is an error before any
    /// piece; a read failing later ends the pieces early.
    pub fn chunks(self, size: usize) -> std::io::Result<Box<dyn Iterator<Item = Bytes> + Send>> {
        match self.0 {
            Body::Inline(v) => {
                let data = Bytes::from_owner(v);
                let pieces = (0..data.len())
                    .step_by(size.max(1))
                    .map(move |at| data.slice(at..(at + size).min(data.len())));
                Ok(Box::new(pieces))
            }
            Body::File { path, len } => {
                let mut file = std::fs::File::open(&path)?;
                let on_disk = file.metadata()?.len();
                if on_disk != len {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} holds {on_disk} bytes, {len} were logged",
                            path.display()
                        ),
                    ));
                }
                let pieces = std::iter::from_fn(move || {
                    let mut piece = vec![0u8; size.max(1)];
                    match file.read(&mut piece) {
                        Ok(0) | Err(_) => None,
                        Ok(n) => {
                            piece.truncate(n);
                            Some(Bytes::from(piece))
                        }
                    }
                });
                Ok(Box::new(pieces))
            }
        }
    }

    /// The whole JSON text.
    pub fn into_string(self) -> std::io::Result<String> {
        let mut text = Vec::new();
        for piece in self.chunks(64 * 1024)? {
            text.extend_from_slice(&piece);
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

fn stream_key(session: &str, stream: u64, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(session.len() + 17);
    k.extend_from_slice(session.as_bytes());
    k.push(NS_SEP);
    k.extend_from_slice(&stream.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// The session part of a stream key.
fn session_of(stream_key: &[u8]) -> &[u8] {
    &stream_key[..stream_key.len().saturating_sub(17)]
}

/// The keys of `session`'s events in `event_session` start with this.
fn session_prefix(session: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(session.len() + 9);
    k.extend_from_slice(session);
    k.push(NS_SEP);
    k
}

fn session_key(session: &[u8], order: u64) -> Vec<u8> {
    let mut k = session_prefix(session);
    k.extend_from_slice(&order.to_be_bytes());
    k
}

fn be_u64(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// Bytes of JSON an index value stands for.
fn json_len(value: &[u8]) -> u64 {
    match value.first() {
        Some(&FILE_REF) if value.len() == 17 => be_u64(&value[9..]),
        _ => value.len() as u64,
    }
}

impl EventLog {
    pub(super) fn new(dir: Option<&Path>) -> EventLog {
        EventLog {
            next: AtomicU64::new(0),
            count: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            sessions: Mutex::default(),
            share_bytes: AtomicU64::new(u64::MAX),
            share_count: AtomicUsize::new(usize::MAX),
            files: dir.map(|d| d.join("events")),
        }
    }

    fn file(&self, order: u64) -> Option<PathBuf> {
        self.files
            .as_ref()
            .map(|dir| dir.join(format!("{order:016x}.json")))
    }

    fn added(&self, session: &[u8], bytes: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Ok(mut sessions) = self.sessions.lock() {
            let share = sessions.entry(session.into()).or_default();
            share.bytes += bytes;
            share.count += 1;
        }
    }

    fn removed(&self, session: &[u8], bytes: u64) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
        if let Ok(mut sessions) = self.sessions.lock() {
            if let Some(share) = sessions.get_mut(session) {
                share.bytes = share.bytes.saturating_sub(bytes);
                share.count = share.count.saturating_sub(1);
                if share.count == 0 {
                    sessions.remove(session);
                }
            }
        }
    }

    /// Whether `session` holds more than its share, beyond its newest event.
    fn over_share(&self, session: &[u8]) -> bool {
        let share = self
            .sessions
            .lock()
            .ok()
            .and_then(|s| s.get(session).copied())
            .unwrap_or_default();
        share.count > 1
            && (share.bytes > self.share_bytes.load(Ordering::Relaxed)
                || share.count > self.share_count.load(Ordering::Relaxed))
    }

    /// Count what the log of `trees` holds (the next sequence number never goes
    /// back), index events by session if an older emcee did not, and remove event
    /// files no event refers to (a crash between writing one and indexing it).
    pub(super) fn recount(&self, trees: &Trees) -> Result<(), StorageError> {
        let next = match trees.by_order.last()? {
            Some((k, _)) => be_u64(&k) + 1,
            None => 0,
        };
        self.next.fetch_max(next, Ordering::Relaxed);
        let index_sessions = trees.by_session.len() != trees.by_order.len();
        if index_sessions {
            trees.by_session.clear()?;
        }
        let mut sessions: HashMap<Box<[u8]>, Share> = HashMap::new();
        let (mut count, mut bytes) = (0usize, 0u64);
        for item in trees.by_order.iter() {
            let (order, value) = item?;
            let key = &value[8..];
            let len = trees.by_stream.get(key)?.map_or(0, |v| json_len(&v));
            let session = session_of(key);
            if index_sessions {
                trees
                    .by_session
                    .insert(session_key(session, be_u64(&order)), &[])?;
            }
            let share = sessions.entry(session.into()).or_default();
            share.bytes += len;
            share.count += 1;
            count += 1;
            bytes += len;
        }
        self.count.store(count, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        if let Ok(mut s) = self.sessions.lock() {
            *s = sessions;
        }
        if let Some(dir) = &self.files {
            std::fs::create_dir_all(dir).map_err(|e| {
                StorageError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
            for file in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let name = file.file_name();
                let order = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| u64::from_str_radix(n, 16).ok());
                let orphan = match order {
                    Some(order) => !trees.by_order.contains_key(order.to_be_bytes())?,
                    None => false,
                };
                if orphan {
                    let _ = std::fs::remove_file(file.path());
                }
            }
        }
        Ok(())
    }
}

impl Storage {
    /// Bound what one session may keep in the replay log: past `max_bytes` or `max`
    /// events its oldest events are dropped as it appends (its newest is always kept).
    pub fn set_event_share(&self, max_bytes: u64, max: usize) {
        let log = &self.shared.events;
        log.share_bytes.store(max_bytes, Ordering::Relaxed);
        log.share_count.store(max, Ordering::Relaxed);
    }

    /// [`Storage::append_event`], awaited: on Redis without blocking the caller's
    /// thread.
    pub async fn append_event_async(
        &self,
        session: &str,
        stream: u64,
        seq: u64,
        json: &str,
    ) -> Result<(), StorageError> {
        #[cfg(feature = "redis")]
        if let Some(r) = self.remote() {
            let log = &self.shared.events;
            let share = (
                log.share_count.load(Ordering::Relaxed),
                log.share_bytes.load(Ordering::Relaxed),
            );
            return r.append_event(session, stream, seq, json, share).await;
        }
        self.append_event(session, stream, seq, json)
    }

    /// Append an SSE event to the replay log, then keep its session within its share.
    pub fn append_event(
        &self,
        session: &str,
        stream: u64,
        seq: u64,
        json: &str,
    ) -> Result<(), StorageError> {
        let trees = self.trees()?;
        let log = &self.shared.events;
        let key = stream_key(session, stream, seq);
        let order = log.next.fetch_add(1, Ordering::Relaxed);
        let mut value = Vec::with_capacity(8 + key.len());
        value.extend_from_slice(&unix_ms().to_be_bytes());
        value.extend_from_slice(&key);
        match log.file(order).filter(|_| json.len() >= FILE_THRESHOLD) {
            Some(path) => {
                std::fs::write(&path, json).map_err(|e| {
                    StorageError::Unavailable(format!("cannot write {}: {e}", path.display()))
                })?;
                let mut reference = Vec::with_capacity(17);
                reference.push(FILE_REF);
                reference.extend_from_slice(&order.to_be_bytes());
                reference.extend_from_slice(&(json.len() as u64).to_be_bytes());
                trees.by_stream.insert(&key, reference)?;
            }
            None => {
                trees.by_stream.insert(&key, json.as_bytes())?;
            }
        }
        trees
            .by_session
            .insert(session_key(session.as_bytes(), order), &[])?;
        trees.by_order.insert(order.to_be_bytes(), value)?;
        log.added(session.as_bytes(), json.len() as u64);
        while log.over_share(session.as_bytes()) {
            let oldest = trees
                .by_session
                .scan_prefix(session_prefix(session.as_bytes()))
                .next()
                .transpose()?;
            let Some((k, _)) = oldest else { break };
            self.remove_event(&trees, be_u64(&k[k.len() - 8..]))?;
        }
        Ok(())
    }

    /// Remove event `order` from every index, and its file; counted once even if two
    /// trims race for it.
    fn remove_event(&self, trees: &Trees, order: u64) -> Result<(), StorageError> {
        let Some(value) = trees.by_order.remove(order.to_be_bytes())? else {
            return Ok(());
        };
        let key = &value[8..];
        let session = session_of(key);
        trees.by_session.remove(session_key(session, order))?;
        let len = match trees.by_stream.remove(key)? {
            Some(v) => {
                if v.first() == Some(&FILE_REF) {
                    if let Some(path) = self.shared.events.file(order) {
                        let _ = std::fs::remove_file(path);
                    }
                }
                json_len(&v)
            }
            None => 0,
        };
        self.shared.events.removed(session, len);
        Ok(())
    }

    /// Remove every event of `session` (it ended: no one can resume it).
    pub fn delete_events_of(&self, session: &str) -> Result<usize, StorageError> {
        #[cfg(feature = "redis")]
        if let Some(r) = self.remote() {
            return r.delete_events_of(session).map(|()| 0);
        }
        let trees = self.trees()?;
        let orders: Vec<u64> = trees
            .by_session
            .scan_prefix(session_prefix(session.as_bytes()))
            .keys()
            .map(|k| k.map(|k| be_u64(&k[k.len() - 8..])))
            .collect::<Result<_, _>>()?;
        for &order in &orders {
            self.remove_event(&trees, order)?;
        }
        Ok(orders.len())
    }

    /// The logged events of `stream` after `after_seq`, read lazily in order as the
    /// iterator is advanced (a replay never holds more than one event it has not
    /// sent; inline values are shared with sled's cache, not copied).
    pub fn events_after_lazily(
        &self,
        session: &str,
        stream: u64,
        after_seq: u64,
    ) -> Box<dyn Iterator<Item = Result<(u64, Event), StorageError>> + Send + 'static> {
        #[cfg(feature = "redis")]
        if let Some(r) = self.remote() {
            let events = r
                .events_after(session, stream, after_seq)
                .map(|item| item.map(|(seq, json)| (seq, Event(Body::Inline(json.into())))));
            return Box::new(events) as Box<dyn Iterator<Item = _> + Send>;
        }
        let start = stream_key(session, stream, after_seq.saturating_add(1));
        let end = stream_key(session, stream, u64::MAX);
        let (range, unavailable) = match self.trees() {
            Ok(trees) => (Some(trees.by_stream.range(start..=end)), None),
            Err(e) => (None, Some(Err(e))),
        };
        let storage = self.clone();
        Box::new(
            unavailable
                .into_iter()
                .chain(range.into_iter().flatten().map(move |item| {
                    let (k, v) = item?;
                    let seq = be_u64(&k[k.len() - 8..]);
                    let body = if v.first() == Some(&FILE_REF) && v.len() == 17 {
                        let order = be_u64(&v[1..]);
                        let path = storage.shared.events.file(order).ok_or_else(|| {
                            StorageError::Unavailable("an event file without a data dir".into())
                        })?;
                        Body::File {
                            path,
                            len: json_len(&v),
                        }
                    } else {
                        Body::Inline(v)
                    };
                    Ok((seq, Event(body)))
                })),
        )
    }

    /// Events of one stream after `after_seq`, in order: `(seq, json)`.
    pub fn events_after(
        &self,
        session: &str,
        stream: u64,
        after_seq: u64,
    ) -> Result<Vec<(u64, String)>, StorageError> {
        self.events_after_lazily(session, stream, after_seq)
            .map(|item| {
                let (seq, event) = item?;
                let json = event
                    .into_string()
                    .map_err(|e| StorageError::Unavailable(e.to_string()))?;
                Ok((seq, json))
            })
            .collect()
    }

    /// Number of events in the replay log.
    pub fn event_count(&self) -> usize {
        self.shared.events.count.load(Ordering::Relaxed)
    }

    /// Bytes of logged event JSON.
    pub fn event_bytes(&self) -> u64 {
        self.shared.events.bytes.load(Ordering::Relaxed)
    }

    /// Drop the oldest events until at most `max` remain, they hold at most
    /// `max_bytes`, and none is older than `ttl`.
    pub fn trim_events(
        &self,
        max: usize,
        max_bytes: u64,
        ttl: Duration,
    ) -> Result<usize, StorageError> {
        #[cfg(feature = "redis")]
        if let Some(r) = self.remote() {
            // Bounded per session and by age as events are appended (Redis's
            // `maxmemory` bounds the fleet's whole).
            let _ = (max, max_bytes);
            r.set_event_ttl(ttl);
            return Ok(0);
        }
        let trees = self.trees()?;
        let log = &self.shared.events;
        let cutoff = unix_ms().saturating_sub(ttl.as_millis() as u64);
        let mut removed = 0;
        while let Some((k, v)) = trees.by_order.first()? {
            let within = log.count.load(Ordering::Relaxed) <= max
                && log.bytes.load(Ordering::Relaxed) <= max_bytes;
            if within && be_u64(&v) >= cutoff {
                break;
            }
            self.remove_event(&trees, be_u64(&k))?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_log_replays_by_stream_and_trims_oldest_first() {
        let s = Storage::temporary().unwrap();
        for seq in 1..=3 {
            s.append_event("s1", 7, seq, &format!("e{seq}")).unwrap();
        }
        s.append_event("s1", 8, 1, "other stream").unwrap();
        s.append_event("s2", 7, 1, "other session").unwrap();
        assert_eq!(
            s.events_after("s1", 7, 1).unwrap(),
            vec![(2, "e2".to_owned()), (3, "e3".to_owned())]
        );
        assert_eq!(s.events_after("s1", 7, 0).unwrap().len(), 3);
        assert_eq!(s.events_after("s1", 8, 0).unwrap().len(), 1);
        assert_eq!(s.event_count(), 5);
        assert_eq!(
            s.trim_events(3, u64::MAX, Duration::from_secs(60)).unwrap(),
            2
        );
        assert_eq!(s.event_count(), 3);
        assert_eq!(
            s.events_after("s1", 7, 0).unwrap(),
            vec![(3, "e3".to_owned())]
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            s.trim_events(10, u64::MAX, Duration::from_millis(1))
                .unwrap(),
            3,
            "all past the ttl"
        );
        assert_eq!(s.event_bytes(), 0);
    }

    #[test]
    fn the_replay_log_is_bounded_in_bytes_and_counts_them_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), 1 << 20).unwrap();
            for seq in 1..=10 {
                s.append_event("s", 1, seq, &"x".repeat(1000)).unwrap();
            }
            assert_eq!(s.event_bytes(), 10_000);
            // Oldest first, until at most 3,500 bytes are kept.
            assert_eq!(
                s.trim_events(100, 3_500, Duration::from_secs(60)).unwrap(),
                7
            );
            assert_eq!(s.event_bytes(), 3_000);
            assert_eq!(s.events_after("s", 1, 0).unwrap()[0].0, 8);
            s.flush_blocking().unwrap();
        }
        let s = Storage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.event_bytes(), 3_000, "counted again at open");
        assert_eq!(s.event_count(), 3);
    }

    /// One session logging a lot drops its own oldest events, not another's.
    #[test]
    fn a_session_keeps_its_share_and_cannot_evict_another() {
        let s = Storage::temporary().unwrap();
        s.set_event_share(2_500, 4);
        s.append_event("victim", 1, 1, &"v".repeat(1000)).unwrap();
        for seq in 1..=1000 {
            s.append_event("noisy", 2, seq, "{}").unwrap();
        }
        assert_eq!(
            s.events_after("noisy", 2, 0).unwrap().len(),
            4,
            "count share"
        );
        assert_eq!(
            s.events_after("noisy", 2, 0).unwrap()[0].0,
            997,
            "newest kept"
        );
        for seq in 1..=5 {
            s.append_event("noisy", 3, seq, &"n".repeat(1000)).unwrap();
        }
        let kept = s.events_after("noisy", 3, 0).unwrap();
        assert_eq!(kept.len(), 2, "byte share");
        // One event above the share is still kept: it is the newest.
        s.append_event("noisy", 4, 1, &"n".repeat(10_000)).unwrap();
        assert_eq!(s.events_after("noisy", 4, 0).unwrap().len(), 1);
        assert_eq!(s.events_after("noisy", 3, 0).unwrap().len(), 0);
        assert_eq!(s.events_after("victim", 1, 0).unwrap().len(), 1);
        assert_eq!(s.event_count(), 2);
        assert_eq!(s.event_bytes(), 11_000);
        // An ended session's events go with it.
        assert_eq!(s.delete_events_of("noisy").unwrap(), 1);
        assert_eq!(s.event_count(), 1);
        assert_eq!(s.events_after("victim", 1, 0).unwrap().len(), 1);
    }

    /// Big events live in files that go when they are trimmed; a replay reads them in
    /// pieces; files nothing refers to are removed at open.
    #[test]
    fn big_events_are_files_removed_with_their_event() {
        let dir = tempfile::tempdir().unwrap();
        let files = dir.path().join("events");
        let count = || std::fs::read_dir(&files).unwrap().count();
        {
            let s = Storage::open(dir.path(), 1 << 20).unwrap();
            let big = "b".repeat(FILE_THRESHOLD + 10);
            for seq in 1..=3 {
                s.append_event("s", 1, seq, &big).unwrap();
            }
            s.append_event("s", 1, 4, "small").unwrap();
            assert_eq!(count(), 3);
            assert_eq!(s.event_bytes(), 3 * big.len() as u64 + 5);
            let mut events = s.events_after_lazily("s", 1, 2);
            let (seq, event) = events.next().unwrap().unwrap();
            assert_eq!((seq, event.len()), (3, big.len() as u64));
            let pieces: Vec<Bytes> = event.chunks(50_000).unwrap().collect();
            assert_eq!(pieces.len(), 2);
            assert_eq!(pieces.concat(), big.as_bytes());
            drop(events);
            s.trim_events(100, big.len() as u64 + 5, Duration::from_secs(60))
                .unwrap();
            assert_eq!(count(), 1, "trimmed events' files are gone");
            s.flush_blocking().unwrap();
        }
        std::fs::write(files.join(format!("{:016x}.json", 999u64)), "orphan").unwrap();
        let s = Storage::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(count(), 1, "the orphan is removed at open");
        assert_eq!(s.events_after("s", 1, 0).unwrap().len(), 2);
        // A file cut short is refused before anything is sent.
        let only = std::fs::read_dir(&files).unwrap().next().unwrap().unwrap();
        std::fs::write(only.path(), "short").unwrap();
        let (_, event) = s.events_after_lazily("s", 1, 2).next().unwrap().unwrap();
        assert!(event.chunks(1000).is_err());
    }
}
