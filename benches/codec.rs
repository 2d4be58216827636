//! JSON-RPC decode/encode: the per-message cost every transport pays.
//!
//! Run with: `cargo bench --bench codec`

use criterion::{criterion_group, criterion_main, Criterion};
use emcee::protocol::jsonrpc::{encode_result, parse, Payload};
use emcee::protocol::mcp::CallToolParams;
use emcee::protocol::{CallToolResult, Message, RequestId};
use std::hint::black_box;

const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello world"}}}"#;

fn decode(c: &mut Criterion) {
    c.bench_function("parse tools/call envelope", |b| {
        b.iter(|| black_box(parse(black_box(CALL))))
    });
    c.bench_function("parse + decode tools/call params", |b| {
        b.iter(|| {
            let Payload::Single(Ok(Message::Request(req))) = parse(black_box(CALL)) else {
                unreachable!()
            };
            black_box(emcee::protocol::jsonrpc::decode_params::<CallToolParams>(
                req.params.as_deref(),
            ))
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
