//! The stdio target: spawn the server command, write newline-delimited JSON-RPC to its
//! stdin from one writer task (batched: everything queued is written before one
//! flush), read its stdout on one reader task that routes each response by id to the
//! worker waiting for it. Many requests are in flight on the one pipe at once.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use super::rpc::{self, Fail};

type Waiter = oneshot::Sender<(Vec<u8>, Instant)>;

/// State shared by the reader task and the workers.
#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, Waiter>>,
    closed: AtomicBool,
    /// The last line the child wrote on stderr (for a failure message).
    last_stderr: Mutex<String>,
}

impl Shared {
    /// The pipe is gone: fail every waiter now and every later one at once.
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// A handle on the spawned server; cloned into every worker.
#[derive(Clone)]
pub struct StdioClient {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    shared: Arc<Shared>,
}

/// The spawned process and the writer task (awaited at shutdown).
pub struct StdioProcess {
    /// The child.
    pub child: Child,
    writer: tokio::task::JoinHandle<()>,
}

impl StdioClient {
    /// Spawn `argv`; `Err` says why it could not start.
    pub fn spawn(argv: &[String]) -> Result<(StdioClient, StdioProcess), String> {
        let (program, args) = argv.split_first().ok_or("empty command")?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start `{program}`: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let shared = Arc::new(Shared::default());
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let sh = shared.clone();
        let writer = tokio::spawn(async move {
            let mut w = BufWriter::with_capacity(64 * 1024, stdin);
            'outer: while let Some(line) = rx.recv().await {
                if w.write_all(&line).await.is_err() {
                    break;
                }
                while let Ok(more) = rx.try_recv() {
                    if w.write_all(&more).await.is_err() {
                        break 'outer;
                    }
                }
                if w.flush().await.is_err() {
                    break;
                }
            }
            sh.close();
            // Dropping `w` closes the child's stdin: its EOF.
        });
        let sh = shared.clone();
        tokio::spawn(async move {
            let mut r = BufReader::with_capacity(64 * 1024, stdout);
            let mut line = Vec::with_capacity(1024);
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let at = Instant::now();
                let Some(id) = rpc::response_id(&line) else {
                    continue; // a notification, a server request, or junk for nobody
                };
                let waiter = sh
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                if let Some(w) = waiter {
                    let _ = w.send((std::mem::take(&mut line), at));
                }
            }
            sh.close();
        });
        let sh = shared.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if !l.trim().is_empty() {
                    *sh.last_stderr.lock().unwrap_or_else(|e| e.into_inner()) = l;
                }
            }
        });
        Ok((StdioClient { tx, shared }, StdioProcess { child, writer }))
    }

    /// Send `line` (newline included) as request `id` and wait for its response, at
    /// most `timeout`; the response and when it was read.
    pub async fn request(
        &self,
        id: u64,
        line: Vec<u8>,
        timeout: Duration,
    ) -> Result<(Vec<u8>, Instant), Fail> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        if self.shared.closed.load(Ordering::SeqCst) || self.tx.send(line).is_err() {
            self.forget(id);
            return Err(self.gone());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(self.gone()),
            Err(_) => {
                self.forget(id);
                Err(Fail::Timeout)
            }
        }
    }

    /// Send a notification (newline included).
    pub fn notify(&self, line: Vec<u8>) -> Result<(), Fail> {
        self.tx.send(line).map_err(|_| self.gone())
    }

    fn forget(&self, id: u64) {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    fn gone(&self) -> Fail {
        Fail::Transport("the server closed its stdin or stdout".into())
    }

    /// The last line the server wrote on stderr.
    pub fn last_stderr(&self) -> String {
        self.shared
            .last_stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl StdioProcess {
    /// Close the server's stdin once every [`StdioClient`] clone is dropped, and wait
    /// up to `grace` for it to exit (then kill it).
    pub async fn finish(mut self, grace: Duration) {
        let _ = tokio::time::timeout(grace, &mut self.writer).await;
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
