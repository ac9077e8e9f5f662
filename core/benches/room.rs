//! The core's hot paths, in memory: fan-out of one line to N clients, and
//! reading input.
//!
//! `cargo bench -p core`. Fan-out throughput is in deliveries (one line
//! reaching one client), so criterion's time per element is the cost per
//! delivery; input throughput is in bytes.

use std::hint::black_box;

use chat_core::{ClientId, ClientStorage, Config, Instant, LineStorage, Room};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

struct Bench {
    clients: Vec<ClientStorage>,
    lines: Vec<LineStorage>,
    bytes: Vec<u8>,
}

impl Bench {
    fn new(capacity: usize) -> Bench {
        Bench {
            clients: vec![ClientStorage::EMPTY; capacity],
            lines: vec![LineStorage::EMPTY; 1 << 15],
            bytes: vec![0; 1 << 20],
        }
    }

    /// A room of `n` registered line clients, everything they were sent read.
    fn room(&mut self, n: usize) -> (Room<'_>, Vec<ClientId>) {
        let config = Config { throttle: None, ..Config::default() };
        let mut room = Room::new(&mut self.clients, &mut self.lines, &mut self.bytes, config);
        let ids: Vec<ClientId> = (0..n)
            .map(|i| {
                let id = room.accept(Instant::ZERO, None).expect("capacity");
                room.receive(id, format!("user{i}\n").as_bytes(), Instant::ZERO);
                id
            })
            .collect();
        let mut buf = vec![0; 1 << 16];
        for &id in &ids {
            while room.transmit(id, &mut buf) > 0 {}
        }
        (room, ids)
    }
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("fan_out");
    let line = [b'x'; 63].iter().copied().chain([b'\n']).collect::<Vec<u8>>();
    for n in [10, 100, 1000] {
        let mut bench = Bench::new(n);
        let (mut room, ids) = bench.room(n);
        let mut out = vec![0; 4096];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                room.receive(ids[0], &line, Instant::ZERO);
                for &id in &ids {
                    black_box(room.transmit(id, &mut out));
                }
            })
        });
    }
    group.finish();
}

fn input(c: &mut Criterion) {
    let mut group = c.benchmark_group("input");
    let chunk: Vec<u8> =
        (0..256).flat_map(|i| format!("message number {i:05} with some text\n").into_bytes()).collect();
    let mut bench = Bench::new(1);
    let (mut room, ids) = bench.room(1);
    let mut out = vec![0; 1 << 16];
    group.throughput(Throughput::Bytes(chunk.len() as u64));
    group.bench_function("lines", |b| {
        b.iter(|| {
            room.receive(ids[0], &chunk, Instant::ZERO);
            while room.transmit(ids[0], &mut out) > 0 {}
        })
    });
    group.finish();
}

criterion_group!(benches, fan_out, input);
criterion_main!(benches);
