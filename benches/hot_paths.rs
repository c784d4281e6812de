//! The per-key costs that bound a scan once I/O is fast: recording a
//! reference, probing one, judging a path by the coverage rule, and the whole
//! judge pipeline over an in-memory listing.

use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use djgc::judge::{scan_with, ScanOptions};
use djgc::layout::{Section, SectionKind};
use djgc::progress::Silent;
use djgc::refs::codec::RefKind;
use djgc::refs::refset::{path_hash, PackedSet};
use djgc::refs::{ReferenceScan, References};
use djgc::store::MemoryStore;

const KEYS: usize = 100_000;

fn schema_key(i: usize) -> String {
    format!(
        "_schema/lab/recording/session_id={}/trial={}/wave_{i:08x}.npy",
        i / 100,
        i % 100
    )
}

fn hash_key(i: usize) -> String {
    let h = djgc::fixture::content_hash(&i.to_le_bytes());
    format!("_hash/lab/{}/{}/{h}", &h[..2], &h[2..4])
}

fn reference_set(c: &mut Criterion) {
    let hashes: Vec<u64> = (0..KEYS).map(|i| path_hash(&hash_key(i))).collect();
    let mut group = c.benchmark_group("refset");
    group.throughput(Throughput::Elements(KEYS as u64));
    group.bench_function("build", |b| {
        b.iter(|| hashes.iter().copied().collect::<PackedSet>())
    });
    let set: PackedSet = hashes.iter().copied().collect();
    group.bench_function("probe", |b| {
        b.iter(|| hashes.iter().filter(|&&h| set.contains(h)).count())
    });
    group.finish();
}

fn coverage(c: &mut Criterion) {
    let paths: Vec<String> = (0..KEYS).step_by(2).map(schema_key).collect();
    let refs = References::from_paths(paths.iter().map(|p| (RefKind::Schema, p.as_str())));
    let keys: Vec<String> = (0..KEYS).map(schema_key).collect();
    let mut group = c.benchmark_group("coverage");
    group.throughput(Throughput::Elements(KEYS as u64));
    group.bench_function("schema paths, half referenced", |b| {
        b.iter(|| keys.iter().filter(|k| refs.covers(k)).count())
    });
    group.finish();
}

fn pipeline(c: &mut Criterion) {
    let store = MemoryStore::new("bench");
    let old = SystemTime::now() - Duration::from_secs(30 * 86400);
    for i in 0..KEYS {
        store.insert(&hash_key(i), 100, old);
        store.insert(&schema_key(i), 100, old);
    }
    let sections = vec![
        Section::new("lab", SectionKind::Hash, "_hash/lab/"),
        Section::new("lab", SectionKind::Schema, "_schema/lab/"),
    ];
    let options = ScanOptions {
        schemas: vec!["lab".into()],
        cutoff: SystemTime::now(),
        jobs: 2,
        schema_codecs: Vec::new(),
        shard: None,
        inventory: None,
        interrupt: Default::default(),
    };
    let references = || {
        let paths: Vec<(RefKind, String)> = (0..KEYS)
            .filter(|i| i % 5 != 0)
            .flat_map(|i| {
                [
                    (RefKind::Hash, hash_key(i)),
                    (RefKind::Schema, schema_key(i)),
                ]
            })
            .collect();
        ReferenceScan {
            references: References::from_paths(paths.iter().map(|(k, p)| (*k, p.as_str()))),
            ..ReferenceScan::default()
        }
    };
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(2 * KEYS as u64));
    group.sample_size(10);
    group.bench_function("in-memory listing, 20% orphans", |b| {
        b.iter_batched(
            references,
            |refs| scan_with(|| Ok(refs), sections.clone(), &store, &options, &Silent).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, reference_set, coverage, pipeline);
criterion_main!(benches);
