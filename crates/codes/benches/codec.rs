//! How long decoding and encoding a typical payload take: a dynamic code of one merchant
//! account template, MCC, currency, amount, country, name, city and additional data.
//!
//! Run with `cargo bench -p zhifu-codes`. The target is at most 2 µs for each.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use zhifu_codes::{decode, decode_lenient, encode};

/// A dynamic code as a till shows it: zhifu's template with an order reference, an amount,
/// and a bill number and terminal label in 62. 142 characters.
const TYPICAL: &str = "00020101021226380008cn.zhifu0106M100230212ORD-202611305204581253031565\
                       40523.505802CN5910Noodle Bar6008Shanghai62200110B-202611300702T16304B4EB";

fn codec(c: &mut Criterion) {
    let payload = decode(TYPICAL).expect("the benchmark payload is valid");
    assert_eq!(encode(&payload).as_deref(), Ok(TYPICAL), "and canonical");
    c.bench_function("decode", |b| b.iter(|| decode(black_box(TYPICAL))));
    c.bench_function("decode_lenient", |b| {
        b.iter(|| decode_lenient(black_box(TYPICAL)))
    });
    c.bench_function("encode", |b| b.iter(|| encode(black_box(&payload))));
}

criterion_group!(benches, codec);
criterion_main!(benches);
