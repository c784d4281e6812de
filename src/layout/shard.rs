//! One collection split across N processes that never talk to each other.
//!
//! A petabyte bucket is listed by an array job (Slurm, Kubernetes Indexed
//! Jobs, AWS Batch) whose tasks share nothing but the database and the
//! store. Shard `K` of `N` takes, in every section, the `K`-th of `N`
//! contiguous key ranges ([`KeyRange`]): it lists only that range (S3
//! `StartAfter` and an end key; on a file store only the folders that reach
//! into it), so each task lists about 1/N of the keys, and it keeps only the
//! references that can cover a key of its ranges, so it holds about 1/N of
//! the reference set. The ranges of all shards partition each section, so
//! every object is judged by exactly one shard.
//!
//! Every shard must cut the sections at the same keys without asking the
//! others, so the cuts are computed from what every shard sees alike:
//! * hash sections hold Base32 content hashes, uniform by construction, so
//!   they are cut at the `K/N` quantiles of the hash alphabet (folded by the
//!   store's `subfolding` as the keys are), without reading anything;
//! * schema sections are named by primary keys, whose spread nothing
//!   predicts, so they are cut at quantiles of a sample of their referenced
//!   paths: the paths with the smallest hashes, a sample that is the same
//!   whatever order the rows arrive in. Gathering it costs one extra read of
//!   the schema-addressed columns (and nothing when there are none).
//!
//! If the database changes between two shards' samples, their cuts may
//! differ a little: an object may then be judged by two shards or by none
//! this run. That is never unsafe, because each shard holds every reference
//! that can cover a key of the ranges it lists itself.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::StoreSpec;
use crate::error::{Error, Result};
use crate::layout::{Section, SectionKind};
use crate::store::KeyRange;

/// Shard `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Parses `K/N`, as `--shard` and `DJGC_SHARD` take it; `source` names
    /// where the text came from, for the error.
    pub fn parse(text: &str, source: &str) -> Result<Shard> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "{source} {text:?} is not a shard K/N with 0 <= K < N: {why}"
            ))
        };
        let (index, count) = text.split_once('/').ok_or_else(|| bad("no '/'"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| bad(&format!("{s:?} is not a whole number")))
        };
        Shard::new(number(index)?, number(count)?).map_err(|why| bad(&why))
    }

    fn new(index: usize, count: usize) -> std::result::Result<Shard, String> {
        if count == 0 {
            return Err("N must be at least 1".into());
        }
        if count > MAX_SHARDS {
            return Err(format!("N may be at most {MAX_SHARDS}"));
        }
        if index >= count {
            return Err(format!(
                "K is {index}, but shards are numbered 0 to {}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard an array job's environment names, when `--shard` is not
    /// given: `DJGC_SHARD=K/N`; Slurm's `SLURM_ARRAY_TASK_ID` and
    /// `SLURM_ARRAY_TASK_COUNT` (counted from `SLURM_ARRAY_TASK_MIN`, so
    /// `--array=1-8` works); or a Kubernetes Indexed Job's
    /// `JOB_COMPLETION_INDEX` with `DJGC_SHARD_COUNT`. `var` reads a
    /// variable (the process environment, or a test's).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>> {
        if let Some(text) = var("DJGC_SHARD") {
            return Shard::parse(&text, "DJGC_SHARD").map(Some);
        }
        let number = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| Error::Usage(format!("{name}={v:?} is not a whole number")))
                })
                .transpose()
        };
        let from = |index: usize, count: usize, names: &str| {
            Shard::new(index, count)
                .map(Some)
                .map_err(|why| Error::Usage(format!("{names} do not name a shard: {why}")))
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let names = "SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT";
            let Some(count) = number("SLURM_ARRAY_TASK_COUNT")? else {
                return Err(Error::Usage(
                    "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; \
                     set `shard` K/N"
                        .into(),
                ));
            };
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let index = id.checked_sub(min).ok_or_else(|| {
                Error::Usage(format!("{names}: the task id is below the minimum"))
            })?;
            return from(index, count, names);
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let Some(count) = number("DJGC_SHARD_COUNT")? else {
                return Err(Error::Usage(
                    "JOB_COMPLETION_INDEX is set but DJGC_SHARD_COUNT is not: set it to the \
                     Job's completions, or set `shard` K/N"
                        .into(),
                ));
            };
            return from(index, count, "JOB_COMPLETION_INDEX and DJGC_SHARD_COUNT");
        }
        Ok(None)
    }

    /// Refuses a shard read from a file (a plan) that [`Shard::parse`]
    /// would refuse.
    pub fn check(&self) -> Result<()> {
        Shard::new(self.index, self.count)
            .map(drop)
            .map_err(|why| Error::Usage(format!("shard {self} is not a shard K/N: {why}")))
    }

    /// Whether this shard is the whole collection.
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// This shard's range between sorted `cuts` (N-1 of them).
    pub fn range(&self, cuts: &[String]) -> KeyRange {
        KeyRange {
            after: self.index.checked_sub(1).map(|i| cuts[i].clone()),
            through: cuts.get(self.index).cloned(),
        }
    }
}

/// The most shards a collection is split into: far more tasks than any
/// array job runs, few enough that every cut fits in memory.
pub const MAX_SHARDS: usize = 100_000;

/// Referenced paths sampled per section: the [`SAMPLE_PER_SECTION`] paths
/// with the smallest hashes, by hash, each with the files it is stored as.
pub type PathSample = Vec<BTreeMap<u64, (String, u64)>>;

/// Paths sampled per schema section to place its cuts: enough for cuts
/// within about 2% of the ideal share, few enough to stay in the megabytes.
pub const SAMPLE_PER_SECTION: usize = 2048;

/// Adds `path`, whose hash is `hash`, stored as `files` files, to a
/// section's sample.
pub fn sample_path(sample: &mut BTreeMap<u64, (String, u64)>, hash: u64, path: &str, files: u64) {
    if sample.len() < SAMPLE_PER_SECTION || sample.last_key_value().is_some_and(|(h, _)| hash < *h)
    {
        sample.insert(hash, (path.to_string(), files));
        if sample.len() > SAMPLE_PER_SECTION {
            sample.pop_last();
        }
    }
}

/// Sets each section's range to `shard`'s share of it: hash sections cut
/// by the hash alphabet, schema sections at quantiles of `sample` (indexed
/// like `sections`).
pub fn assign_ranges(
    spec: &StoreSpec,
    sections: &mut [Section],
    shard: Shard,
    sample: &PathSample,
) {
    if shard.is_whole() {
        return;
    }
    let cuts = section_cuts(spec, sections, shard.count, sample);
    for (section, cuts) in sections.iter_mut().zip(&cuts) {
        section.range = shard.range(cuts);
    }
}

/// The `count - 1` cuts of each section between `count` shards, sorted:
/// shard `K` takes the keys after its `K-1`-th cut through its `K`-th.
pub fn section_cuts(
    spec: &StoreSpec,
    sections: &[Section],
    count: usize,
    sample: &PathSample,
) -> Vec<Vec<String>> {
    sections
        .iter()
        .enumerate()
        .map(|(index, section)| match section.kind {
            SectionKind::Hash => hash_cuts(&section.prefix, spec.subfolding.as_deref(), count),
            SectionKind::Schema => {
                let paths = sample
                    .get(index)
                    .map(|s| s.values().collect())
                    .unwrap_or_default();
                sample_cuts(&section.prefix, paths, count)
            }
        })
        .collect()
}

/// The cuts of every shard of a collection at once, for a read that
/// serves all of them (a reference snapshot): which shards hold a
/// reference and which one counts it, as each shard's own read would
/// decide ([`covers_some_range`], [`counts_reference`]), found by binary
/// search instead of asking every shard.
#[derive(Clone, Debug)]
pub struct ShardCuts {
    count: usize,
    /// The sections, whole.
    sections: Vec<Section>,
    /// Each section's `count - 1` sorted cuts.
    cuts: Vec<Vec<String>>,
}

impl ShardCuts {
    /// Refuses cuts that are not `count - 1` sorted keys per section:
    /// [`ShardCuts::place`] relies on their order.
    pub fn new(sections: Vec<Section>, cuts: Vec<Vec<String>>, count: usize) -> Result<ShardCuts> {
        Shard::new(0, count).map_err(|why| Error::Usage(format!("{count} shards: {why}")))?;
        let fits = cuts.len() == sections.len()
            && cuts
                .iter()
                .all(|c| c.len() == count - 1 && c.windows(2).all(|w| w[0] <= w[1]));
        if !fits {
            return Err(Error::Usage(format!(
                "the cuts do not split {} section(s) into {count} shards in key order",
                sections.len()
            )));
        }
        Ok(ShardCuts {
            count,
            sections,
            cuts,
        })
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Each section's cuts, indexed like the sections.
    pub fn cuts(&self) -> &[Vec<String>] {
        &self.cuts
    }

    /// The sections with `shard`'s ranges, as [`assign_ranges`] sets them.
    pub fn sections_of(&self, shard: Shard) -> Vec<Section> {
        self.sections
            .iter()
            .zip(&self.cuts)
            .map(|(section, cuts)| Section {
                range: shard.range(cuts),
                ..section.clone()
            })
            .collect()
    }

    fn range(&self, section: usize, index: usize) -> KeyRange {
        Shard {
            index,
            count: self.count,
        }
        .range(&self.cuts[section])
    }

    /// The shards that hold a reference to `path` (left in `held`, in
    /// order, each once), and the shard that counts it.
    pub fn place(&self, path: &str, held: &mut Vec<usize>) -> usize {
        held.clear();
        for (s, section) in self.sections.iter().enumerate() {
            let cuts = &self.cuts[s];
            if path.starts_with(&section.prefix) {
                // The ranges that can hold a key extending `path` run from
                // the first whose end is not below it, while their start
                // is below every such key.
                let mut k = cuts.partition_point(|c| c.as_str() < path);
                while k < self.count
                    && (k == 0 || cuts[k - 1].as_str() < path || cuts[k - 1].starts_with(path))
                {
                    if self.range(s, k).meets_prefix(path) {
                        held.push(k);
                    }
                    k += 1;
                }
            } else if section.prefix.starts_with(path) {
                // A folder above the section (rare): whoever lists any of it.
                held.extend(
                    (0..self.count).filter(|&k| self.range(s, k).meets_prefix(&section.prefix)),
                );
            }
        }
        held.sort_unstable();
        held.dedup();
        match self.sections.iter().position(|s| s.owns(path)) {
            Some(s) => self.cuts[s].partition_point(|c| c.as_str() < path),
            None => 0,
        }
    }
}

/// The Base32 alphabet of content hashes, in byte order.
const HASH_ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// Cuts a hash section into `count` equal shares of the hash space: the
/// `j/count` quantile written as a hash prefix, folded into the folders
/// the store's `subfolding` puts before the name.
fn hash_cuts(prefix: &str, subfolding: Option<&[usize]>, count: usize) -> Vec<String> {
    let folds = subfolding.unwrap_or_default();
    // Folds past the digits (a folding longer than 12 characters, or than
    // the hash itself) take what is left of the name, as slicing in
    // DataJoint does.
    let digits = folds.iter().sum::<usize>().clamp(4, 12) as u32;
    let space = 32u128.pow(digits);
    (1..count)
        .map(|j| {
            let mut value = space * j as u128 / count as u128;
            let mut name = vec![0u8; digits as usize];
            for digit in name.iter_mut().rev() {
                *digit = HASH_ALPHABET[(value % 32) as usize];
                value /= 32;
            }
            let name = String::from_utf8(name).expect("ASCII");
            let mut key = prefix.to_string();
            let mut start = 0usize;
            for &fold in folds {
                let end = start.saturating_add(fold).min(name.len());
                key.push_str(&name[start.min(end)..end]);
                key.push('/');
                start = end;
            }
            key.push_str(&name);
            key
        })
        .collect()
}

/// Cuts a schema section at quantiles of its sampled paths, each weighed
/// by the files it is stored as (a Zarr folder outweighs an `.npy` file);
/// with no sample, the last shard takes the whole section.
fn sample_cuts(prefix: &str, mut paths: Vec<&(String, u64)>, count: usize) -> Vec<String> {
    paths.sort();
    let total: u64 = paths.iter().map(|(_, files)| files).sum();
    let mut cuts = Vec::with_capacity(count - 1);
    let mut below = 0u64;
    let mut next = paths.iter();
    // Cuts only move forward: a share of nothing gets an empty range (with
    // no sample at all, every cut is the prefix and the last shard takes
    // the whole section).
    let mut cut = prefix;
    for j in 1..count as u64 {
        // The first path at which `j` shares of the files are reached.
        let share = total * j / count as u64;
        while below < share {
            let Some((path, files)) = next.next() else {
                break;
            };
            below += files;
            cut = path;
        }
        cuts.push(cut.to_string());
    }
    cuts
}

/// Whether a reference to `path` can cover a key that this shard lists in
/// one of `sections`: the keys it covers (itself, what lies under it, its
/// manifest) all start with it.
pub fn covers_some_range(sections: &[Section], path: &str) -> bool {
    sections.iter().any(|s| {
        if path.starts_with(&s.prefix) {
            s.range.meets_prefix(path)
        } else {
            s.prefix.starts_with(path) && s.range.meets_prefix(&s.prefix)
        }
    })
}

/// Whether this shard counts a reference to `path` in its report: the one
/// shard whose range of the path's own section holds it, or for a path in
/// no section, the first shard. So counts add up over shards.
pub fn counts_reference(sections: &[Section], shard: Shard, path: &str) -> bool {
    match sections.iter().find(|s| s.owns(path)) {
        Some(section) => section.range.contains(path),
        None => shard.index == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::sections;
    use crate::refs::refset::path_hash;

    fn spec(subfolding: Option<Vec<usize>>) -> StoreSpec {
        StoreSpec {
            subfolding,
            ..crate::layout::tests::spec("_hash", "_schema")
        }
    }

    #[test]
    fn shards_come_from_the_flag_or_an_array_job() {
        assert_eq!(
            Shard::parse("2/8", "--shard").unwrap(),
            Shard { index: 2, count: 8 }
        );
        for bad in ["8/8", "1", "a/3", "0/0", "-1/3"] {
            let e = Shard::parse(bad, "--shard").unwrap_err().to_string();
            assert!(e.contains("--shard") && e.contains(bad), "{e}");
        }
        fn env<'a>(vars: &'a [(&str, &str)]) -> impl Fn(&str) -> Option<String> + 'a {
            move |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        }
        assert_eq!(Shard::from_env(env(&[])).unwrap(), None);
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
        ];
        assert_eq!(
            Shard::from_env(env(&slurm)).unwrap(),
            Some(Shard { index: 2, count: 8 })
        );
        let k8s = [("JOB_COMPLETION_INDEX", "7"), ("DJGC_SHARD_COUNT", "8")];
        assert_eq!(
            Shard::from_env(env(&k8s)).unwrap(),
            Some(Shard { index: 7, count: 8 })
        );
        let explicit = [("DJGC_SHARD", "0/2"), ("JOB_COMPLETION_INDEX", "1")];
        assert_eq!(
            Shard::from_env(env(&explicit)).unwrap(),
            Some(Shard { index: 0, count: 2 })
        );
        let e = Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "1")])).unwrap_err();
        assert!(e.to_string().contains("DJGC_SHARD_COUNT"), "{e}");
        let e = Shard::from_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_COUNT", "8"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("SLURM_ARRAY_TASK_ID"), "{e}");
    }

    #[test]
    fn hash_cuts_split_uniform_hashes_evenly_under_any_folding() {
        // Hash names as the fixture writes them (Base32 of a digest).
        let names: Vec<String> = (0..32_000u32)
            .map(|i| crate::fixture::content_hash(&i.to_le_bytes()))
            .collect();
        for folding in [None, Some(vec![2, 2]), Some(vec![1])] {
            let store = spec(folding.clone());
            for count in [3, 8] {
                let mut shares = vec![0usize; count];
                for (index, share) in shares.iter_mut().enumerate() {
                    let mut all = sections(&store, &["a".into()]).unwrap();
                    assign_ranges(&store, &mut all, Shard { index, count }, &Vec::new());
                    for name in &names {
                        let mut key = "_hash/a/".to_string();
                        let mut start = 0;
                        for &fold in folding.iter().flatten() {
                            key.push_str(&name[start..start + fold]);
                            key.push('/');
                            start += fold;
                        }
                        key.push_str(name);
                        if all[0].range.contains(&key) {
                            *share += 1;
                        }
                    }
                }
                assert_eq!(shares.iter().sum::<usize>(), names.len(), "{folding:?}");
                let ideal = names.len() / count;
                for share in &shares {
                    assert!(
                        share.abs_diff(ideal) < ideal / 10,
                        "{folding:?}: {shares:?}"
                    );
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the folding, the sample and the number of shards, the
        /// shards' ranges of a section partition it: every key of the
        /// section lies in exactly one of them.
        #[test]
        fn the_shards_of_a_section_hold_every_key_exactly_once(
            folding in proptest::option::of(proptest::collection::vec(1usize..4, 1..3)),
            count in 1usize..9,
            sampled in proptest::collection::vec("[a-z0-9=/]{1,12}", 0..40),
            keys in proptest::collection::vec("[a-z2-7=/]{1,30}", 1..60),
        ) {
            let store = spec(folding);
            let mut sample: PathSample = vec![BTreeMap::new(), BTreeMap::new()];
            for path in &sampled {
                let path = format!("_schema/a/{path}");
                sample_path(&mut sample[1], path_hash(&path), &path, 1);
            }
            let shards: Vec<Vec<Section>> = (0..count)
                .map(|index| {
                    let mut all = sections(&store, &["a".into()]).unwrap();
                    assign_ranges(&store, &mut all, Shard { index, count }, &sample);
                    all
                })
                .collect();
            for (section, root) in [(0, "_hash/a/"), (1, "_schema/a/")] {
                for key in &keys {
                    let key = format!("{root}{key}");
                    let holders = shards.iter().filter(|s| s[section].range.contains(&key)).count();
                    proptest::prop_assert_eq!(holders, 1, "{} in {} shards", key, holders);
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// One read placing references for every shard at once gives each
        /// shard exactly what its own read would hold, and each reference
        /// to the one shard that would count it.
        #[test]
        fn placing_for_all_shards_at_once_is_each_shards_own_choice(
            folding in proptest::option::of(proptest::collection::vec(1usize..3, 1..3)),
            count in 1usize..7,
            sampled in proptest::collection::vec("[a-c0-9=/]{1,8}", 0..30),
            paths in proptest::collection::vec(
                "(_hash/a/|_schema/a/|_schema/|_hash/b/|_sch|)[a-c2-7=/.]{0,10}", 1..40),
        ) {
            let store = spec(folding);
            let whole = sections(&store, &["a".into()]).unwrap();
            let mut sample: PathSample = vec![BTreeMap::new(), BTreeMap::new()];
            for path in &sampled {
                let path = format!("_schema/a/{path}");
                sample_path(&mut sample[1], path_hash(&path), &path, 1);
            }
            let cuts = section_cuts(&store, &whole, count, &sample);
            let all = ShardCuts::new(whole.clone(), cuts, count).unwrap();
            let shards: Vec<Vec<Section>> = (0..count)
                .map(|index| {
                    let mut own = whole.clone();
                    assign_ranges(&store, &mut own, Shard { index, count }, &sample);
                    proptest::prop_assert_eq!(&own, &all.sections_of(Shard { index, count }));
                    Ok(own)
                })
                .collect::<std::result::Result<_, _>>()?;
            let mut held = Vec::new();
            for path in &paths {
                let counter = all.place(path, &mut held);
                let holders: Vec<usize> =
                    (0..count).filter(|&k| covers_some_range(&shards[k], path)).collect();
                proptest::prop_assert_eq!(&held, &holders, "{}", path);
                let counters: Vec<usize> = (0..count)
                    .filter(|&k| counts_reference(&shards[k], Shard { index: k, count }, path))
                    .collect();
                proptest::prop_assert_eq!(vec![counter], counters, "{}", path);
            }
        }
    }

    #[test]
    fn cuts_out_of_order_are_refused() {
        let store = spec(None);
        let whole = sections(&store, &["a".into()]).unwrap();
        let backwards = vec![
            vec!["_hash/a/b".to_string(), "_hash/a/a".to_string()],
            vec!["_schema/a/a".to_string(), "_schema/a/b".to_string()],
        ];
        let e = ShardCuts::new(whole.clone(), backwards, 3).unwrap_err();
        assert!(e.to_string().contains("key order"), "{e}");
        assert!(ShardCuts::new(whole.clone(), vec![vec![], vec![]], 3).is_err());
        assert!(ShardCuts::new(whole, vec![vec![], vec![]], 1).is_ok());
    }

    #[test]
    fn foldings_longer_than_the_cut_still_cut_in_order() {
        for folding in [vec![7, 7], vec![26, 26], vec![1, 30]] {
            let cuts = hash_cuts("_hash/a/", Some(&folding), 5);
            assert_eq!(cuts.len(), 4);
            assert!(
                cuts.windows(2).all(|w| w[0] < w[1]),
                "{folding:?}: {cuts:?}"
            );
        }
    }

    #[test]
    fn schema_cuts_never_go_back_however_small_the_sample() {
        for n in [0, 1, 3, 9, 100] {
            let paths: Vec<(String, u64)> = (0..n)
                .map(|i| (format!("_schema/a/t/id={i}/f"), 1 + (i % 7) as u64 * 50))
                .collect();
            for count in [2, 3, 8, 16] {
                let cuts = sample_cuts("_schema/a/", paths.iter().collect(), count);
                assert_eq!(cuts.len(), count - 1);
                assert!(
                    cuts.windows(2).all(|w| w[0] <= w[1]),
                    "{n} {count}: {cuts:?}"
                );
                if n == 0 {
                    // Below every key: the last shard takes the section.
                    assert!(cuts.iter().all(|c| c == "_schema/a/"), "{cuts:?}");
                }
            }
        }
    }

    #[test]
    fn schema_cuts_follow_the_sample_and_references_go_where_they_cover() {
        let store = spec(None);
        let paths: Vec<String> = (0..5000)
            .map(|i| format!("_schema/a/t/id={i}/f_tok{i}"))
            .collect();
        let mut sample: PathSample = vec![BTreeMap::new(), BTreeMap::new()];
        for path in &paths {
            sample_path(&mut sample[1], path_hash(path), path, 1);
        }
        assert_eq!(sample[1].len(), SAMPLE_PER_SECTION);
        let count = 4;
        let mut counted = 0;
        for index in 0..count {
            let shard = Shard { index, count };
            let mut all = sections(&store, &["a".into()]).unwrap();
            assign_ranges(&store, &mut all, shard, &sample);
            let mine = paths.iter().filter(|p| all[1].range.contains(p)).count();
            assert!(
                mine.abs_diff(paths.len() / count) < 250,
                "shard {index}: {mine}"
            );
            for path in &paths {
                // A folder object's files and manifest follow its reference.
                for key in [format!("{path}/0.0"), format!("{path}.manifest.json")] {
                    if all[1].range.contains(&key) {
                        assert!(covers_some_range(&all, path), "{key}");
                    }
                }
                counted += usize::from(counts_reference(&all, shard, path));
            }
            // A path outside every section is kept by every shard that lists
            // under it, and counted by the first.
            assert!(covers_some_range(&all, "_schema"));
            assert_eq!(counts_reference(&all, shard, "_schema"), index == 0);
        }
        assert_eq!(counted, paths.len(), "each reference counted by one shard");
    }
}
