//! `emcee bench`: a load generator for MCP servers (Streamable HTTP or stdio).
//!
//! - [`args`]: flags → a validated [`args::Plan`] (bad values: exit 2).
//! - [`rpc`]: request bodies and the check of every answer (errors counted by kind).
//! - [`http`]: a minimal keep-alive HTTP/1.1 client; [`sse`]: the SSE response reader.
//! - [`stdio`]: a spawned server with many requests in flight on its pipes.
//! - [`procfs`]: the server's RSS and CPU time from `/proc`.
//! - [`report`]: HdrHistogram latencies, the table and the JSON object.
//!
//! Threading: one multi-thread tokio runtime (`--threads` workers, default one per
//! CPU) runs `--concurrency` worker tasks; each HTTP worker owns one keep-alive
//! connection and sends its next request when the previous one is answered (closed
//! loop), so `--concurrency` is the number of requests in flight. Workers keep their
//! own counts and histograms (no shared state on the hot path but one atomic
//! counter); they are merged at the end of each phase.

pub mod args;
pub mod http;
pub mod procfs;
pub mod report;
pub mod rpc;
pub mod sse;
pub mod stdio;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use args::{BenchArgs, Plan};

use args::{HttpTarget, Profile, Protocol, Stop, Target};
use http::{Answer, Conn, Requests};
use report::{Report, Server, Stats};
use rpc::{Fail, Messages};
use stdio::StdioClient;

/// Why a run could not happen.
#[derive(Debug)]
pub enum BenchError {
    /// Bad arguments (exit 2).
    Usage(String),
    /// The target could not be reached or started (exit 1).
    Unreachable(String),
}

impl BenchError {
    /// The exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            BenchError::Usage(_) => 2,
            BenchError::Unreachable(_) => 1,
        }
    }

    fn message(&self) -> &str {
        match self {
            BenchError::Usage(m) | BenchError::Unreachable(m) => m,
        }
    }
}

/// Run `emcee bench`: print the report and return the exit code (0 the run completed,
/// 1 the target is unreachable at start, 2 bad arguments; see `emcee bench --help`).
pub fn run(args: BenchArgs) -> i32 {
    let result = Plan::from_args(args)
        .map_err(BenchError::Usage)
        .and_then(|plan| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(plan.threads)
                .enable_all()
                .build()
                .map_err(|e| BenchError::Unreachable(format!("cannot start the runtime: {e}")))?;
            let out = rt.block_on(execute(&plan));
            // Workers still blocked on a dead target must not hold the exit.
            rt.shutdown_timeout(Duration::from_secs(1));
            out.map(|r| (plan, r))
        });
    match result {
        Ok((plan, report)) => {
            let text = if plan.json {
                report.json() + "\n"
            } else {
                report.table()
            };
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            0
        }
        Err(e) => {
            let line = e.message().replace(['\n', '\r'], " ");
            eprintln!("emcee bench: {line}");
            e.exit_code()
        }
    }
}

/// Run `plan` and return its report.
pub async fn execute(plan: &Plan) -> Result<Report, BenchError> {
    if let Some(pid) = plan.pid {
        if procfs::sample(pid).is_none() {
            return Err(BenchError::Usage(format!(
                "invalid value for --pid: no process {pid} (or /proc/{pid} is unreadable)"
            )));
        }
    }
    match (&plan.target, plan.profile) {
        (Target::Stdio(argv), _) => run_stdio(plan, argv).await,
        (Target::Http(t), Profile::Call) => run_call(plan, t).await,
        (Target::Http(t), Profile::Sessions) => run_sessions(plan, t).await,
        (Target::Http(t), Profile::Churn) => run_churn(plan, t).await,
        (Target::Http(_), Profile::Stdio) => Err(BenchError::Usage(
            "--profile stdio needs --cmd, not --url".into(),
        )),
    }
}

// ---------------------------------------------------------------------------
// Phases

/// How much work a phase does; shared by its workers.
struct Budget {
    /// Requests to issue, or `None` for a deadline.
    total: Option<u64>,
    deadline: Option<Instant>,
    start: Instant,
    length: Option<Duration>,
    issued: AtomicU64,
    done: AtomicU64,
}

impl Budget {
    fn new(stop: Stop) -> Arc<Budget> {
        let start = Instant::now();
        let (total, length) = match stop {
            Stop::Requests(n) => (Some(n), None),
            Stop::Duration(d) => (None, Some(d)),
        };
        Arc::new(Budget {
            total,
            deadline: length.map(|d| start + d),
            start,
            length,
            issued: AtomicU64::new(0),
            done: AtomicU64::new(0),
        })
    }

    /// Claim the next request; false when the phase is over.
    fn take(&self) -> bool {
        match (self.total, self.deadline) {
            (Some(n), _) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
            (None, Some(d)) => Instant::now() < d,
            (None, None) => false,
        }
    }
}

/// Run `workers` until `budget` is spent; they come back for the next phase, with the
/// merged counts and the phase's wall time.
async fn phase(
    workers: Vec<Worker>,
    budget: Arc<Budget>,
    label: &str,
) -> (Vec<Worker>, Stats, Duration) {
    let bar = Progress::start(budget.clone(), label);
    let handles: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            let b = budget.clone();
            tokio::spawn(async move {
                let mut stats = Stats::new();
                while b.take() {
                    match w.one().await {
                        Ok(latency) => stats.ok(latency),
                        Err(f) => {
                            let pause = matches!(f, Fail::Transport(_));
                            stats.fail(&f);
                            if pause {
                                // A dead target: don't spin.
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                    }
                    b.done.fetch_add(1, Ordering::Relaxed);
                }
                (w, stats)
            })
        })
        .collect();
    let mut workers = Vec::with_capacity(handles.len());
    let mut stats = Stats::new();
    for h in handles {
        let (w, s) = match h.await {
            Ok(x) => x,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        stats.merge(&s);
        workers.push(w);
    }
    let wall = budget.start.elapsed();
    if let Some(bar) = bar {
        bar.finish();
    }
    (workers, stats, wall)
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
///
/// Drawn by hand (one line, redrawn with `\r` ten times a second) rather than with
/// a progress-bar crate: that crate and its terminal dependencies cost ~80 KB of a
/// binary whose size is one of emcee's targets.
struct Progress {
    ticker: tokio::task::JoinHandle<()>,
}

/// Cells in the drawn bar.
const BAR_CELLS: usize = 30;

impl Progress {
    fn start(budget: Arc<Budget>, label: &str) -> Option<Progress> {
        if !std::io::stderr().is_terminal() || (budget.total.is_none() && budget.length.is_none()) {
            return None;
        }
        let label = label.to_owned();
        let ticker = tokio::spawn(async move {
            loop {
                let line = progress_line(&label, &budget, budget.start.elapsed());
                {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "\r{line}\x1b[K");
                    let _ = err.flush();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Some(Progress { ticker })
    }

    fn finish(self) {
        self.ticker.abort();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}

/// One progress line: `label [mm:ss] [=====>    ] what is done`.
fn progress_line(label: &str, budget: &Budget, elapsed: Duration) -> String {
    let done = budget.done.load(Ordering::Relaxed);
    let (fraction, detail) = match (budget.total, budget.length) {
        (Some(n), _) => {
            let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
            (
                done as f64 / n.max(1) as f64,
                format!("{done}/{n} ({rate:.0}/s)"),
            )
        }
        (None, Some(d)) => (
            elapsed.as_secs_f64() / d.as_secs_f64().max(1e-3),
            format!("{done} requests"),
        ),
        (None, None) => (0.0, String::new()),
    };
    let filled = ((fraction.clamp(0.0, 1.0) * BAR_CELLS as f64) as usize).min(BAR_CELLS);
    let head = if filled < BAR_CELLS { ">" } else { "" };
    let secs = elapsed.as_secs();
    format!(
        "{label:>8} [{:02}:{:02}] [{}{head}{}] {detail}",
        secs / 60,
        secs % 60,
        "=".repeat(filled),
        " ".repeat(BAR_CELLS - filled - head.len()),
    )
}

/// One worker: does one unit of the profile's work per call.
enum Worker {
    /// tools/call over HTTP.
    Call(HttpCall),
    /// initialize → initialized → tools/call → DELETE.
    Churn(Box<Churn>),
    /// initialize → initialized, keeping the session.
    Open(Box<Opener>),
    /// tools/call over stdio.
    Stdio(StdioCall),
}

impl Worker {
    /// One unit of work: its latency, or why it failed.
    async fn one(&mut self) -> Result<Duration, Fail> {
        match self {
            Worker::Call(w) => w.one().await,
            Worker::Churn(w) => w.one().await,
            Worker::Open(w) => w.one().await,
            Worker::Stdio(w) => w.one().await,
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP

/// An exchange bounded by `timeout`; a timed-out connection is dropped.
async fn exchange(conn: &mut Conn, request: &[u8], timeout: Duration) -> Result<Answer, Fail> {
    match tokio::time::timeout(timeout, conn.exchange(request)).await {
        Ok(r) => r,
        Err(_) => {
            conn.reset();
            Err(Fail::Timeout)
        }
    }
}

/// The JSON-RPC response of a 200 answer, checked.
fn checked(a: &Answer, id: u64, tool_call: bool) -> Result<(), Fail> {
    if a.status != 200 {
        return Err(Fail::Http(a.status));
    }
    let msg = a
        .message
        .as_deref()
        .ok_or_else(|| Fail::Protocol("the SSE stream ended without the response".into()))?;
    rpc::check_response(msg, id, tool_call)
}

/// What every HTTP worker shares.
struct HttpCtx {
    target: HttpTarget,
    addr: SocketAddr,
    msgs: Messages,
    /// Requests without a session (initialize; modern calls).
    base: Requests,
    timeout: Duration,
}

impl HttpCtx {
    /// Open a legacy session on `conn`: initialize, then notifications/initialized.
    async fn open_session(&self, conn: &mut Conn) -> Result<(String, Requests), Fail> {
        let a = exchange(conn, &self.base.initialize(0), self.timeout).await?;
        checked(&a, 0, false)?;
        let sid = a.session_id.ok_or_else(|| {
            Fail::Protocol("initialize was answered without an Mcp-Session-Id".into())
        })?;
        let reqs = Requests::new(&self.target, &self.msgs, Some(&sid));
        let a = exchange(conn, &reqs.initialized(), self.timeout).await?;
        if !matches!(a.status, 200 | 202 | 204) {
            return Err(Fail::Http(a.status));
        }
        Ok((sid, reqs))
    }

    /// One tools/call (id 1) on a session, checked.
    async fn call(
        &self,
        conn: &mut Conn,
        reqs: &Requests,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> Result<(), Fail> {
        reqs.call(&self.msgs, 1, out, scratch);
        let a = exchange(conn, out, self.timeout).await?;
        checked(&a, 1, true)
    }

    /// DELETE a session.
    async fn delete(&self, conn: &mut Conn, reqs: &Requests) -> Result<(), Fail> {
        let Some(req) = reqs.delete() else {
            return Ok(());
        };
        let a = exchange(conn, req, self.timeout).await?;
        match a.status {
            200 | 202 | 204 => Ok(()),
            s => Err(Fail::Http(s)),
        }
    }
}

struct HttpCall {
    ctx: Arc<HttpCtx>,
    conn: Conn,
    reqs: Arc<Requests>,
    next_id: u64,
    step: u64,
    out: Vec<u8>,
    scratch: Vec<u8>,
}

impl HttpCall {
    async fn one(&mut self) -> Result<Duration, Fail> {
        let id = self.next_id;
        self.next_id += self.step;
        self.reqs
            .call(&self.ctx.msgs, id, &mut self.out, &mut self.scratch);
        let start = Instant::now();
        let a = exchange(&mut self.conn, &self.out, self.ctx.timeout).await?;
        checked(&a, id, true)?;
        Ok(a.at.saturating_duration_since(start))
    }
}

struct Churn {
    ctx: Arc<HttpCtx>,
    conn: Conn,
    out: Vec<u8>,
    scratch: Vec<u8>,
}

impl Churn {
    async fn one(&mut self) -> Result<Duration, Fail> {
        let start = Instant::now();
        let (_, reqs) = self.ctx.open_session(&mut self.conn).await?;
        let called = (self.ctx)
            .call(&mut self.conn, &reqs, &mut self.out, &mut self.scratch)
            .await;
        let deleted = self.ctx.delete(&mut self.conn, &reqs).await;
        called?;
        deleted?;
        Ok(start.elapsed())
    }
}

struct Opener {
    ctx: Arc<HttpCtx>,
    conn: Conn,
    opened: Arc<Mutex<Vec<(String, Requests)>>>,
}

impl Opener {
    async fn one(&mut self) -> Result<Duration, Fail> {
        let start = Instant::now();
        let s = self.ctx.open_session(&mut self.conn).await?;
        let latency = start.elapsed();
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(s);
        Ok(latency)
    }
}

/// Resolve the target and connect once: the start-up reachability check.
async fn http_ctx(plan: &Plan, target: &HttpTarget) -> Result<Arc<HttpCtx>, BenchError> {
    let unreachable =
        |why: String| BenchError::Unreachable(format!("cannot reach {}: {why}", target.url));
    let addr = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("the host has no address".into()))?;
    let mut probe = Conn::new(addr);
    match tokio::time::timeout(plan.timeout, probe.connect()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable("connect timed out".into())),
    }
    let msgs = Messages::new(plan.protocol, &plan.tool, &plan.tool_args);
    Ok(Arc::new(HttpCtx {
        base: Requests::new(target, &msgs, None),
        target: target.clone(),
        addr,
        msgs,
        timeout: plan.timeout,
    }))
}

/// Connect `n` connections up front (so no measured request pays for a connect).
async fn connections(ctx: &HttpCtx, n: usize) -> Result<Vec<Conn>, BenchError> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = Conn::new(ctx.addr);
        c.connect().await.map_err(|e| {
            BenchError::Unreachable(format!("cannot reach {}: {e}", ctx.target.url))
        })?;
        conns.push(c);
    }
    Ok(conns)
}

/// Open `n` sessions with up to `concurrency` workers; their ids and requests, plus
/// the counts and wall time of the opening.
async fn open_sessions(
    ctx: &Arc<HttpCtx>,
    n: usize,
    concurrency: usize,
    label: &str,
) -> Result<(Vec<(String, Requests)>, Stats, Duration), BenchError> {
    let opened = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let workers = connections(ctx, concurrency.min(n))
        .await?
        .into_iter()
        .map(|conn| {
            Worker::Open(Box::new(Opener {
                ctx: ctx.clone(),
                conn,
                opened: opened.clone(),
            }))
        })
        .collect();
    let (_, stats, wall) = phase(workers, Budget::new(Stop::Requests(n as u64)), label).await;
    let sessions = std::mem::take(&mut *opened.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((sessions, stats, wall))
}

/// DELETE `sessions` with up to `concurrency` connections; warns on stderr about
/// those that could not be deleted.
async fn delete_sessions(
    ctx: &Arc<HttpCtx>,
    sessions: impl Into<Arc<[(String, Requests)]>>,
    concurrency: usize,
) {
    let sessions = sessions.into();
    let deleted = each_session(ctx, &sessions, concurrency, SessionStep::Delete).await;
    let failed = deleted.error_count();
    if failed > 0 {
        let total = deleted.ok + failed;
        eprintln!("emcee bench: warning: {failed} of {total} sessions could not be deleted");
    }
}

/// What [`each_session`] does to every held session.
#[derive(Clone, Copy)]
enum SessionStep {
    /// One tools/call: the check that a held session is still served.
    Call,
    /// DELETE.
    Delete,
}

/// Do `step` once on every session of `sessions`, with up to `concurrency`
/// connections; the failures, by kind.
async fn each_session(
    ctx: &Arc<HttpCtx>,
    sessions: &Arc<[(String, Requests)]>,
    concurrency: usize,
    step: SessionStep,
) -> Stats {
    let cursor = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency.min(sessions.len()))
        .map(|_| {
            let (ctx, sessions, cursor) = (ctx.clone(), sessions.clone(), cursor.clone());
            tokio::spawn(async move {
                let mut conn = Conn::new(ctx.addr);
                let (mut out, mut scratch) = (Vec::new(), Vec::new());
                let mut stats = Stats::new();
                while let Some((_, reqs)) = sessions.get(cursor.fetch_add(1, Ordering::Relaxed)) {
                    let result = match step {
                        SessionStep::Delete => ctx.delete(&mut conn, reqs).await,
                        SessionStep::Call => {
                            ctx.call(&mut conn, reqs, &mut out, &mut scratch).await
                        }
                    };
                    match result {
                        Ok(()) => stats.ok += 1,
                        Err(f) => stats.fail(&f),
                    }
                }
                stats
            })
        })
        .collect();
    let mut stats = Stats::new();
    for t in tasks {
        if let Ok(s) = t.await {
            stats.merge(&s);
        }
    }
    stats
}

fn sample(pid: Option<u32>) -> Option<(u32, procfs::Sample)> {
    let pid = pid?;
    procfs::sample(pid).map(|s| (pid, s))
}

fn server_of(
    before: Option<(u32, procfs::Sample)>,
    after: Option<(u32, procfs::Sample)>,
    wall: Duration,
) -> Option<Server> {
    match (before, after) {
        (Some((pid, b)), Some((_, a))) => Some(Server::of(pid, b, a, wall)),
        _ => None,
    }
}

async fn run_call(plan: &Plan, target: &HttpTarget) -> Result<Report, BenchError> {
    let ctx = http_ctx(plan, target).await?;
    let sessions = match plan.protocol {
        Protocol::Legacy => {
            let (sessions, stats, _) =
                open_sessions(&ctx, plan.sessions, plan.concurrency, "sessions").await?;
            if let Some((kind, example)) = stats.examples.iter().next() {
                let (ok, n) = (sessions.len(), plan.sessions);
                delete_sessions(&ctx, sessions, plan.concurrency).await;
                return Err(BenchError::Unreachable(format!(
                    "cannot open sessions on {} ({ok} of {n} opened): {kind}: {example}",
                    target.url
                )));
            }
            sessions
        }
        Protocol::Modern => Vec::new(),
    };
    let per_session: Vec<Arc<Requests>> = if sessions.is_empty() {
        vec![Arc::new(ctx.base.clone())]
    } else {
        sessions.iter().map(|(_, r)| Arc::new(r.clone())).collect()
    };
    let step = plan.concurrency as u64;
    let workers: Vec<Worker> = connections(&ctx, plan.concurrency)
        .await?
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            Worker::Call(HttpCall {
                ctx: ctx.clone(),
                conn,
                reqs: per_session[i % per_session.len()].clone(),
                next_id: i as u64 + 1,
                step,
                out: Vec::with_capacity(1024),
                scratch: Vec::with_capacity(512),
            })
        })
        .collect();
    let (workers, report) = measure(plan, workers).await;
    drop(workers);
    delete_sessions(&ctx, sessions, plan.concurrency).await;
    Ok(report)
}

/// Warm up, then the measured phase with the server sampled around it.
async fn measure(plan: &Plan, mut workers: Vec<Worker>) -> (Vec<Worker>, Report) {
    if plan.warmup > 0 {
        (workers, _, _) = phase(workers, Budget::new(Stop::Requests(plan.warmup)), "warmup").await;
    }
    let before = sample(plan.pid);
    let (workers, stats, wall) = phase(workers, Budget::new(plan.stop), "bench").await;
    let after = sample(plan.pid);
    let report = Report::new(plan, &stats, wall, server_of(before, after, wall));
    (workers, report)
}

async fn run_sessions(plan: &Plan, target: &HttpTarget) -> Result<Report, BenchError> {
    let ctx = http_ctx(plan, target).await?;
    let before = sample(plan.pid);
    let (sessions, mut stats, wall) =
        open_sessions(&ctx, plan.sessions, plan.concurrency, "sessions").await?;
    let after = sample(plan.pid);
    if !plan.hold.is_zero() {
        tokio::time::sleep(plan.hold).await;
    }
    // Every held session must still be served: its failures are the run's errors too.
    let sessions: Arc<[(String, Requests)]> = sessions.into();
    let served = each_session(&ctx, &sessions, plan.concurrency, SessionStep::Call).await;
    stats.merge_errors(&served);
    delete_sessions(&ctx, sessions, plan.concurrency).await;
    Ok(Report::new(
        plan,
        &stats,
        wall,
        server_of(before, after, wall),
    ))
}

async fn run_churn(plan: &Plan, target: &HttpTarget) -> Result<Report, BenchError> {
    let ctx = http_ctx(plan, target).await?;
    let workers = connections(&ctx, plan.concurrency)
        .await?
        .into_iter()
        .map(|conn| {
            Worker::Churn(Box::new(Churn {
                ctx: ctx.clone(),
                conn,
                out: Vec::with_capacity(1024),
                scratch: Vec::with_capacity(512),
            }))
        })
        .collect();
    let before = sample(plan.pid);
    let (_, stats, wall) = phase(workers, Budget::new(plan.stop), "churn").await;
    let after = sample(plan.pid);
    Ok(Report::new(
        plan,
        &stats,
        wall,
        server_of(before, after, wall),
    ))
}

// ---------------------------------------------------------------------------
// stdio

struct StdioCall {
    client: StdioClient,
    msgs: Arc<Messages>,
    next_id: u64,
    step: u64,
    timeout: Duration,
}

impl StdioCall {
    async fn one(&mut self) -> Result<Duration, Fail> {
        let id = self.next_id;
        self.next_id += self.step;
        let mut line = Vec::with_capacity(256);
        self.msgs.call(id, &mut line);
        line.push(b'\n');
        let start = Instant::now();
        let (resp, at) = self.client.request(id, line, self.timeout).await?;
        rpc::check_response(&resp, id, true)?;
        Ok(at.saturating_duration_since(start))
    }
}

async fn run_stdio(plan: &Plan, argv: &[String]) -> Result<Report, BenchError> {
    let (client, process) = StdioClient::spawn(argv).map_err(BenchError::Unreachable)?;
    let pid = plan.pid.or(process.child.id());
    if plan.protocol == Protocol::Legacy {
        let mut init = Messages::initialize(0);
        init.push(b'\n');
        let answer = client
            .request(0, init, plan.timeout)
            .await
            .and_then(|(resp, _)| rpc::check_response(&resp, 0, false));
        if let Err(f) = answer {
            let stderr = client.last_stderr();
            let tail = if stderr.is_empty() {
                String::new()
            } else {
                format!(" (its stderr: {stderr})")
            };
            return Err(BenchError::Unreachable(format!(
                "`{}` did not answer initialize: {f}{tail}",
                argv.join(" ")
            )));
        }
        let mut note = rpc::INITIALIZED.to_vec();
        note.push(b'\n');
        client
            .notify(note)
            .map_err(|f| BenchError::Unreachable(format!("`{}`: {f}", argv.join(" "))))?;
    }
    let msgs = Arc::new(Messages::new(plan.protocol, &plan.tool, &plan.tool_args));
    let step = plan.concurrency as u64;
    let workers = (0..plan.concurrency)
        .map(|i| {
            Worker::Stdio(StdioCall {
                client: client.clone(),
                msgs: msgs.clone(),
                next_id: i as u64 + 1,
                step,
                timeout: plan.timeout,
            })
        })
        .collect();
    let sampled = Plan {
        pid,
        ..plan.clone()
    };
    let (workers, report) = measure(&sampled, workers).await;
    drop(workers);
    drop(client);
    process.finish(Duration::from_secs(10)).await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_fills_with_the_work_done() {
        let budget = Budget::new(Stop::Requests(200));
        let empty = progress_line("call", &budget, Duration::from_secs(0));
        assert_eq!(
            empty,
            format!("    call [00:00] [>{}] 0/200 (0/s)", " ".repeat(29))
        );
        budget.done.store(100, Ordering::Relaxed);
        let half = progress_line("call", &budget, Duration::from_secs(2));
        assert_eq!(
            half,
            format!(
                "    call [00:02] [{}>{}] 100/200 (50/s)",
                "=".repeat(15),
                " ".repeat(14)
            )
        );
        budget.done.store(200, Ordering::Relaxed);
        let full = progress_line("call", &budget, Duration::from_secs(61));
        assert_eq!(
            full,
            format!("    call [01:01] [{}] 200/200 (3/s)", "=".repeat(30))
        );
    }

    #[test]
    fn progress_line_of_a_timed_run_follows_the_clock() {
        let budget = Budget::new(Stop::Duration(Duration::from_secs(10)));
        budget.done.store(1234, Ordering::Relaxed);
        let line = progress_line("warm-up", &budget, Duration::from_secs(5));
        assert_eq!(
            line,
            format!(
                " warm-up [00:05] [{}>{}] 1234 requests",
                "=".repeat(15),
                " ".repeat(14)
            )
        );
    }
}
