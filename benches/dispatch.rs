//! In-process dispatch costs, no network: Root → Session → Call for one `tools/call`
//! (and `ping`, answered by the Session itself, so the difference is the Call actor),
//! session create/teardown, and the stdio transport over in-memory pipes.
//! `dispatch/tools_call_kv_get` is a call whose argument is checked against a schema
//! constraint (`minLength`), plus a sled read.
//!
//! Run with: `cargo bench --bench dispatch`
//!
//! Everything runs on one actix `System` per bench function (one thread, as a stdio
//! server or one HTTP worker does); the service has the built-in tools and logs at
//! `info` (the default level) into `io::sink()`, so log formatting is counted but no
//! write. Messages reach the session with `Addr::send(..).await`, as the stdio reader
//! hands them over. The `x32` cases keep 32 calls in flight and time a whole batch:
//! divide by 32 for the per-call cost.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use emcee::config::{Limits, LogLevel};
use emcee::internals::Service;
use emcee::internals::{
    CloseSession, FrameKind, FrameReceiver, Inbound, OpenSession, Ping, Registry, Root,
    SessionEntry, SessionKind, Sink,
};
use emcee::protocol::jsonrpc;
use emcee::storage::Storage;
use emcee::telemetry::logging::logger_to;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const INITIALIZE: &[u8] = br#"{"jsonrpc":"2.0","id":"init","method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#;
const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// Calls kept in flight by the pipelined cases.
const PIPELINE: usize = 32;
/// Distinct request ids cycled through, so that no id is reused while a previous call
/// with it could still be finishing.
const RING: usize = 8 * PIPELINE;

fn call(id: usize) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hello world"}}}}}}"#
    )
    .into_bytes()
}

/// The same call as a 2026-07-28 request: its state rides in `_meta`, and its result
/// gets `resultType` and the server's identity.
fn modern_call(id: usize) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"text":"hello world"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"bench","version":"1"}}}}}}}}"#
    )
    .into_bytes()
}

/// A `kv_get` of a key the bench stored first: a tool whose argument carries a schema
/// constraint (`key`: `minLength` 1), read from sled (in memory).
fn kv_get(id: usize) -> Vec<u8> {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"kv_get","arguments":{{"key":"bench"}}}}}}"#
    )
    .into_bytes()
}

const KV_SET: &[u8] = br#"{"jsonrpc":"2.0","id":"set","method":"tools/call","params":{"name":"kv_set","arguments":{"key":"bench","value":"hello world"}}}"#;

fn ping(id: usize) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#).into_bytes()
}

/// The binary's built-in tools, compiled into this bench as they are into the binary.
#[path = "../src/bin/emcee/tools/builtin.rs"]
#[allow(dead_code)]
mod builtin;

/// The service `emcee` serves without fixtures: its built-in tools and resources.
fn service(storage: Storage) -> Arc<Service> {
    let log = logger_to(std::io::sink(), LogLevel::Info);
    let limits = Limits::default();
    let mut server = emcee::Server::builder()
        .limits(limits.clone())
        .logger(log)
        .kv_bounded(builtin::KV_NAMESPACE);
    let r = server.registries();
    builtin::register(r.tools, &limits).expect("builtin tools");
    builtin::register_resources(r.resources).expect("builtin resources");
    let server = server.build().expect("a valid definition");
    emcee::internals::service_on(server, storage).expect("service")
}

/// Start a Root and wait until it runs (an actor dropped with the runtime before its
/// first poll would start its timers outside the runtime, and panic).
async fn start_root(service: Arc<Service>, registry: Registry) -> Addr<Root> {
    let root = Root::new(service, registry).start();
    root.send(Ping).await.expect("root alive");
    root
}

/// Panics unless `json` is a successful, non-`isError` result.
fn check(json: &[u8]) {
    let ok = |needle: &[u8]| json.windows(needle.len()).any(|w| w == needle);
    assert!(
        ok(b"\"result\":") && !ok(b"\"isError\""),
        "unexpected answer: {}",
        String::from_utf8_lossy(json)
    );
}

/// Hand one message to the session as a transport does (waits for the mailbox).
async fn deliver(entry: &SessionEntry, bytes: &[u8], sink: &Sink) {
    entry
        .addr
        .send(Inbound::new(jsonrpc::parse(bytes), sink.clone()))
        .await
        .expect("session alive");
}

/// The next frame on `rx`, checked to be a successful response.
async fn response(rx: &mut FrameReceiver) {
    let frame = rx.recv().await.expect("sink open");
    assert_eq!(frame.kind, FrameKind::Response);
    check(frame.json.as_bytes());
    black_box(frame);
}

/// Open a session through Root and initialize it, as a client does.
async fn open_initialized(
    root: &Addr<Root>,
    persist: bool,
) -> (Arc<SessionEntry>, Sink, FrameReceiver) {
    let entry = root
        .send(OpenSession {
            arbiter: None,
            kind: if persist {
                SessionKind::Http
            } else {
                SessionKind::Connection
            },
            owner: None,
        })
        .await
        .expect("root alive")
        .expect("session opened");
    let (sink, mut rx) = Sink::channel();
    deliver(&entry, INITIALIZE, &sink).await;
    response(&mut rx).await;
    deliver(&entry, INITIALIZED, &sink).await;
    (entry, sink, rx)
}

/// End a session as `DELETE /mcp` does, and wait until its actor has stopped.
async fn close(root: &Addr<Root>, entry: &SessionEntry) {
    let existed = root
        .send(CloseSession(entry.id.clone()))
        .await
        .expect("root alive");
    assert!(existed);
    while entry.addr.connected() {
        tokio::task::yield_now().await;
    }
}

fn dispatch(c: &mut Criterion) {
    let system = System::new();
    let registry = Registry::default();
    let storage = Storage::temporary().expect("storage");
    let root = system.block_on(start_root(service(storage), registry.clone()));
    let (entry, sink, mut rx) = system.block_on(open_initialized(&root, false));
    let calls: Vec<Vec<u8>> = (0..RING).map(call).collect();
    let pings: Vec<Vec<u8>> = (0..RING).map(ping).collect();
    let modern: Vec<Vec<u8>> = (0..RING).map(modern_call).collect();
    let kv_gets: Vec<Vec<u8>> = (0..RING).map(kv_get).collect();
    system.block_on(async {
        deliver(&entry, KV_SET, &sink).await;
        response(&mut rx).await;
    });
    let mut next = 0usize;

    let mut group = c.benchmark_group("dispatch");
    // (name, requests, how many are in flight at once)
    let cases: [(&str, &[Vec<u8>], usize); 5] = [
        ("ping", &pings, 1),
        ("tools_call_echo", &calls, 1),
        ("tools_call_echo_x32", &calls, PIPELINE),
        ("tools_call_echo_2026", &modern, 1),
        ("tools_call_kv_get", &kv_gets, 1),
    ];
    for (name, requests, in_flight) in cases {
        group.throughput(Throughput::Elements(in_flight as u64));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        for _ in 0..in_flight {
                            deliver(&entry, &requests[next % RING], &sink).await;
                            next += 1;
                        }
                        for _ in 0..in_flight {
                            response(&mut rx).await;
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();

    system.block_on(close(&root, &entry));
    assert!(registry.is_empty());
}

fn sessions(c: &mut Criterion) {
    let system = System::new();
    let disk = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("session");
    group.throughput(Throughput::Elements(1));
    let cases: [(&str, bool, Option<&Path>); 3] = [
        ("open_init_close", false, None),
        // sled's temporary storage lives in /dev/shm: the fsyncs cost nothing.
        ("open_init_close_persist_tmpfs", true, None),
        // On the disk: initialize and DELETE each wait for an fsync.
        ("open_init_close_persist_disk", true, Some(disk.path())),
    ];
    for (name, persist, dir) in cases {
        let storage = match dir {
            Some(dir) => Storage::open(dir, 8 << 20).expect("storage"),
            None => Storage::temporary().expect("storage"),
        };
        if dir.is_some() {
            group.sample_size(10);
        }
        let root = system.block_on(start_root(service(storage), Registry::default()));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let (entry, _sink, _rx) = open_initialized(&root, persist).await;
                        close(&root, &entry).await;
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

fn stdio(c: &mut Criterion) {
    let system = System::new();
    let (client, server) = tokio::io::duplex(256 * 1024);
    let (served, mut lines, mut writer) = system.block_on(async {
        let (server_r, server_w) = tokio::io::split(server);
        let served = actix_rt::spawn(emcee::internals::serve_stdio_on(
            service(Storage::temporary().expect("storage")),
            server_r,
            server_w,
            std::future::pending(),
        ));
        let (client_r, mut writer) = tokio::io::split(client);
        let mut lines = BufReader::new(client_r);
        let mut line = Vec::new();
        writer.write_all(INITIALIZE).await.expect("write");
        writer.write_all(b"\n").await.expect("write");
        lines.read_until(b'\n', &mut line).await.expect("read");
        check(&line);
        writer.write_all(INITIALIZED).await.expect("write");
        writer.write_all(b"\n").await.expect("write");
        (served, lines, writer)
    });
    let line_of = |mut bytes: Vec<u8>| {
        bytes.push(b'\n');
        bytes
    };
    let calls: Vec<Vec<u8>> = (0..RING).map(|id| line_of(call(id))).collect();
    let batches: Vec<Vec<u8>> = calls.chunks(PIPELINE).map(|c| c.concat()).collect();
    let (mut next, mut batch) = (0usize, 0usize);
    let mut line = Vec::with_capacity(256);

    let mut group = c.benchmark_group("stdio");
    group.throughput(Throughput::Elements(1));
    group.bench_function("tools_call_echo", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    writer.write_all(&calls[next % RING]).await.expect("write");
                    next += 1;
                    line.clear();
                    lines.read_until(b'\n', &mut line).await.expect("read");
                    check(&line);
                }
                start.elapsed()
            })
        })
    });
    group.throughput(Throughput::Elements(PIPELINE as u64));
    group.bench_function("tools_call_echo_x32", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    writer
                        .write_all(&batches[batch % batches.len()])
                        .await
                        .expect("write");
                    batch += 1;
                    for _ in 0..PIPELINE {
                        line.clear();
                        lines.read_until(b'\n', &mut line).await.expect("read");
                        check(&line);
                    }
                }
                start.elapsed()
            })
        })
    });
    group.finish();

    // EOF on the input ends the session; `serve` returns once the writer is done.
    // (Dropping `writer` alone is not EOF: `lines` still holds the duplex end.)
    system.block_on(async {
        writer.shutdown().await.expect("shutdown");
        served.await.expect("serve task").expect("serve result");
    });
}

criterion_group!(benches, dispatch, sessions, stdio);
criterion_main!(benches);
