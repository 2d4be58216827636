//! JSON-RPC decode/encode: the per-message cost every transport pays.
//!
//! Run with: `cargo bench --bench codec`

use criterion::{criterion_group, criterion_main, Criterion};
use emcee::protocol::jsonrpc::{encode_result, parse, Payload};
use emcee::protocol::{CallToolResult, Message, RequestId};
use std::hint::black_box;

const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello world"}}}"#;

const MODERN_CALL: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello world"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}}}}"#;

fn decode(c: &mut Criterion) {
    // `parse` decodes the envelope, the typed params and `_meta` in one call.
    c.bench_function("parse + decode tools/call", |b| {
        b.iter(|| {
            let Payload::Single(Ok(Message::Request(req))) = parse(black_box(CALL)) else {
                unreachable!()
            };
            black_box(req)
        })
    });
    c.bench_function("parse + decode tools/call (2026-07-28 _meta)", |b| {
        b.iter(|| {
            let Payload::Single(Ok(Message::Request(req))) = parse(black_box(MODERN_CALL)) else {
                unreachable!()
            };
            black_box(req)
        })
    });
}

fn encode(c: &mut Criterion) {
    let id = RequestId::Number(42);
    let result = CallToolResult::text("hello world");
    c.bench_function("encode tool result", |b| {
        b.iter(|| black_box(encode_result(&id, black_box(&result))))
    });
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
