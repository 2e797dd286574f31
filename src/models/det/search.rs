//! Evolutionary search of pruning ratios under a latency budget (SparseViT §C.3): one ratio per
//! pair of blocks (a regular and a shifted window block), from {0, 0.1, …, 0.8}, sorted within
//! each stage; a population of random configurations inside the budget, then generations of
//! mutation (half the children) and crossover (the other half) of the best `parents`. Latency
//! is measured live by the caller (the backbone on this device); accuracy is the detector's
//! AP on validation images with the same (sparsity-adapted) weights, no retraining.
//!
//! The result is stored like the sparse-conv tuning records: per model (the weights file's
//! name and CRC-32C) and device (its tuning key), in `runs/tuning/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Ratios, SwinConfig};
use crate::error::{Error, Location, Result};

/// Ratio choices in tenths: 0 … 0.8.
const MAX_TENTHS: u8 = 8;

/// One configuration: per stage, one ratio (tenths) per pair of blocks, ascending.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Genome(pub Vec<Vec<u8>>);

impl Genome {
    fn random(cfg: &SwinConfig, rng: &mut ChaCha8Rng) -> Genome {
        Genome(
            cfg.depths
                .iter()
                .map(|&d| {
                    let mut v: Vec<u8> = (0..d.div_ceil(2)).map(|_| rng.random_range(0..=MAX_TENTHS)).collect();
                    v.sort_unstable();
                    v
                })
                .collect(),
        )
    }

    fn mutate(&self, p: f64, rng: &mut ChaCha8Rng) -> Genome {
        Genome(
            self.0
                .iter()
                .map(|stage| {
                    let mut v: Vec<u8> = stage
                        .iter()
                        .map(|&t| if rng.random_bool(p) { rng.random_range(0..=MAX_TENTHS) } else { t })
                        .collect();
                    v.sort_unstable();
                    v
                })
                .collect(),
        )
    }

    fn crossover(a: &Genome, b: &Genome, rng: &mut ChaCha8Rng) -> Genome {
        Genome(
            a.0.iter()
                .zip(&b.0)
                .map(|(x, y)| {
                    let mut v: Vec<u8> =
                        x.iter().zip(y).map(|(&p, &q)| if rng.random_bool(0.5) { p } else { q }).collect();
                    v.sort_unstable();
                    v
                })
                .collect(),
        )
    }

    /// Per-block ratios (each pair's value for both its blocks).
    pub fn ratios(&self, cfg: &SwinConfig) -> Result<Ratios> {
        let per_block = self
            .0
            .iter()
            .zip(&cfg.depths)
            .map(|(stage, &d)| (0..d).map(|b| stage[b / 2] as f64 / 10.0).collect())
            .collect();
        Ratios::new(per_block, cfg)
    }
}

/// Evolution settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchOptions {
    pub population: usize,
    pub parents: usize,
    pub generations: usize,
    /// Per-variable probability of a new random value in a mutation.
    pub mutation: f64,
    pub seed: u64,
    /// Candidates slower than this (ms) are not considered.
    pub budget_ms: f64,
    /// Nor faster than this (ms; 0: no floor): the paper's `min ≤ latency ≤ max`, which keeps
    /// the search on sets that use the budget instead of drifting to faster, less accurate ones.
    #[serde(default)]
    pub floor_ms: f64,
}

impl SearchOptions {
    /// Whether a configuration of this latency may be chosen.
    pub fn admits(&self, latency_ms: f64) -> bool {
        latency_ms >= self.floor_ms && latency_ms <= self.budget_ms
    }
}

/// A configuration with its measurements.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Candidate {
    pub ratios: String,
    pub latency_ms: f64,
    pub ap: Option<f64>,
}

/// Runs the search; `latency` and `accuracy` measure one configuration (each called at most
/// once per distinct configuration). The best is the highest AP within the budget (and above
/// the floor).
pub fn evolve(
    cfg: &SwinConfig,
    o: &SearchOptions,
    mut latency: impl FnMut(&Ratios) -> Result<f64>,
    mut accuracy: impl FnMut(&Ratios) -> Result<f64>,
) -> Result<(Option<Candidate>, Vec<Candidate>)> {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
    let mut seen: HashMap<Genome, Candidate> = HashMap::new();
    let mut order: Vec<Genome> = Vec::new();
    // Measures latency once; true when within the budget.
    let mut fits = |g: &Genome, seen: &mut HashMap<Genome, Candidate>, order: &mut Vec<Genome>| -> Result<bool> {
        if let Some(c) = seen.get(g) {
            return Ok(o.admits(c.latency_ms));
        }
        let r = g.ratios(cfg)?;
        let ms = latency(&r)?;
        seen.insert(g.clone(), Candidate { ratios: r.to_string(), latency_ms: ms, ap: None });
        order.push(g.clone());
        Ok(o.admits(ms))
    };
    let tries = 30 * o.population.max(1);
    let mut population: Vec<Genome> = Vec::new();
    for _ in 0..tries {
        if population.len() == o.population {
            break;
        }
        let g = Genome::random(cfg, &mut rng);
        if !population.contains(&g) && fits(&g, &mut seen, &mut order)? {
            population.push(g);
        }
    }
    for generation in 0..o.generations {
        for g in &population {
            let c = seen.get_mut(g).expect("measured when admitted");
            if c.ap.is_none() {
                c.ap = Some(accuracy(&g.ratios(cfg)?)?);
            }
        }
        population.sort_by(|a, b| seen[b].ap.unwrap_or(0.0).total_cmp(&seen[a].ap.unwrap_or(0.0)));
        let parents: Vec<Genome> = population.iter().take(o.parents.max(1)).cloned().collect();
        if generation + 1 == o.generations || parents.is_empty() {
            break;
        }
        let mut next = parents.clone();
        let want_mutants = parents.len() + (o.population.saturating_sub(parents.len())) / 2;
        for _ in 0..tries {
            if next.len() >= o.population {
                break;
            }
            let child = if next.len() < want_mutants {
                parents[rng.random_range(0..parents.len())].mutate(o.mutation, &mut rng)
            } else {
                let a = &parents[rng.random_range(0..parents.len())];
                let b = &parents[rng.random_range(0..parents.len())];
                Genome::crossover(a, b, &mut rng)
            };
            if !next.contains(&child) && fits(&child, &mut seen, &mut order)? {
                next.push(child);
            }
        }
        population = next;
    }
    let all: Vec<Candidate> = order.iter().map(|g| seen[g].clone()).collect();
    let best = finalists(&all, o, 1).into_iter().next();
    Ok((best, all))
}

/// The `k` scored candidates with the highest AP that `o` admits, best first. The best of
/// many noisy scores is biased up (its AP on other images is lower), so a search may re-score
/// these finalists on validation images the evolution did not see and choose there.
pub fn finalists(all: &[Candidate], o: &SearchOptions, k: usize) -> Vec<Candidate> {
    let mut within: Vec<(usize, &Candidate)> =
        all.iter().enumerate().filter(|(_, c)| c.ap.is_some() && o.admits(c.latency_ms)).collect();
    // Equal APs: the one measured later first (what the search has always chosen).
    within.sort_by(|(i, a), (j, b)| b.ap.unwrap_or(0.0).total_cmp(&a.ap.unwrap_or(0.0)).then(j.cmp(i)));
    within.into_iter().take(k).map(|(_, c)| c.clone()).collect()
}

/// A budget's finalists re-scored on other validation images (`search sparsevit
/// --rescore-data`): the chosen set is the best there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rescore {
    pub data: String,
    pub images: usize,
    /// The dense backbone's AP on these images.
    pub dense_ap: f64,
    /// Each finalist (best search AP first): ratios, latency (ms), AP on the search's images,
    /// AP on these.
    pub finalists: Vec<(String, f64, f64, f64)>,
}

/// One budget's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BudgetResult {
    /// The set's name in reports (`b0.70`: 70% of the dense latency).
    pub name: String,
    pub budget_ms: f64,
    /// The band's lower end (ms; 0: none, and records written before the band).
    #[serde(default)]
    pub floor_ms: f64,
    pub ratios: String,
    pub latency_ms: f64,
    /// AP on the search's validation images.
    pub ap: f64,
    pub evaluated: usize,
    /// With a re-scoring: the finalists on the other images, the chosen one the best there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescore: Option<Rescore>,
}

/// A stored search: which model, which device, the input, and the best ratios per budget.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchRecord {
    /// `file name@crc32c` of the detector's weights.
    pub model: String,
    pub device: String,
    pub input: (usize, usize),
    pub dense_ms: f64,
    pub dense_ap: f64,
    pub validation: String,
    pub options: SearchOptions,
    pub results: Vec<BudgetResult>,
}

/// `name@crc32c` of a weights file: a search holds for these exact weights only.
pub fn model_id(weights: &Path) -> Result<String> {
    let bytes = std::fs::read(weights).map_err(|e| Error::io(Location::file(weights), e))?;
    let name = weights.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Ok(format!("{name}@{:08x}", crc32c::crc32c(&bytes)))
}

impl SearchRecord {
    /// The record's file under `dir`.
    pub fn path(dir: &Path, model: &str, device: &str) -> PathBuf {
        let clean = |s: &str| {
            s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect::<String>()
        };
        dir.join(format!("sparsevit__{}__{}.json", clean(model), clean(device)))
    }

    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        let path = Self::path(dir, &self.model, &self.device);
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::decode(Location::file(&path), "JSON", e))?;
        crate::io::output::write_file(&path, json.as_bytes())?;
        Ok(path)
    }

    /// Reads a record and checks it was searched for `model` on `device`.
    pub fn load_for(path: &Path, model: &str, device: &str) -> Result<SearchRecord> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(Location::file(path), e))?;
        let r: SearchRecord = serde_json::from_str(&text)
            .map_err(|e| Error::decode(Location::file(path), "SparseViT search record", e))?;
        if r.model != model || r.device != device {
            return Err(Error::invalid(
                Location::file(path),
                format!("a search for model {model} on device {device}"),
                format!("model {} on device {}", r.model, r.device),
            ));
        }
        Ok(r)
    }

    /// The searched sets, named.
    pub fn sets(&self, cfg: &SwinConfig) -> Result<Vec<(String, Ratios)>> {
        self.results.iter().map(|b| Ok((b.name.clone(), Ratios::parse(&b.ratios, cfg)?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finalists_are_the_best_within_the_budget_best_first() {
        let c = |r: &str, ms: f64, ap: Option<f64>| Candidate { ratios: r.into(), latency_ms: ms, ap };
        let all = vec![
            c("a", 50.0, Some(0.30)),
            c("b", 90.0, Some(0.50)), // over the budget
            c("c", 60.0, None),       // never scored
            c("d", 40.0, Some(0.40)),
            c("e", 45.0, Some(0.30)), // ties with a: measured later, ranked first
        ];
        let names = |v: Vec<Candidate>| v.into_iter().map(|c| c.ratios).collect::<Vec<_>>();
        let within = |floor_ms: f64, budget_ms: f64| SearchOptions {
            population: 1,
            parents: 1,
            generations: 1,
            mutation: 0.0,
            seed: 0,
            budget_ms,
            floor_ms,
        };
        assert_eq!(names(finalists(&all, &within(0.0, 70.0), 3)), ["d", "e", "a"]);
        assert_eq!(names(finalists(&all, &within(0.0, 70.0), 10)), ["d", "e", "a"]);
        assert_eq!(names(finalists(&all, &within(0.0, 30.0), 3)), Vec::<String>::new());
        // A floor: the faster d is out.
        assert_eq!(names(finalists(&all, &within(42.0, 70.0), 3)), ["e", "a"]);
    }

    /// On a toy problem (latency falls and accuracy falls with the ratios, accuracy counts
    /// stage 0 least), the search stays inside the budget and prefers pruning stage 0.
    #[test]
    fn evolution_respects_the_budget_and_finds_the_cheap_stage() {
        let cfg = SwinConfig::swin_t();
        let o = SearchOptions {
            population: 16,
            parents: 4,
            generations: 6,
            mutation: 0.2,
            seed: 3,
            budget_ms: 70.0,
            floor_ms: 0.0,
        };
        let cost = |r: &Ratios| {
            let weights = [40.0, 10.0, 40.0, 10.0];
            r.stages().iter().zip(weights).map(|(s, w)| w * (1.0 - s.iter().sum::<f64>() / s.len() as f64)).sum::<f64>()
        };
        let acc = |r: &Ratios| {
            let weights = [0.2, 1.0, 1.0, 1.0];
            1.0 - r.stages().iter().zip(weights).map(|(s, w)| w * s.iter().sum::<f64>() / s.len() as f64).sum::<f64>()
                / 4.0
        };
        let (best, all) = evolve(&cfg, &o, |r| Ok(cost(r)), |r| Ok(acc(r))).unwrap();
        let best = best.expect("a configuration within the budget");
        assert!(best.latency_ms <= 70.0);
        assert!(all.iter().filter(|c| c.ap.is_some()).all(|c| c.latency_ms <= 70.0));
        let r = Ratios::parse(&best.ratios, &cfg).unwrap();
        assert!(r.stage(0)[0] >= 0.5, "stage 0 is the cheap one to prune: {}", best.ratios);
        // Every evaluated configuration is valid (sorted within stages).
        for c in &all {
            Ratios::parse(&c.ratios, &cfg).unwrap();
        }
        // With a floor, every scored configuration lies in the band.
        let banded = SearchOptions { floor_ms: 62.0, ..o };
        let (best, all) = evolve(&cfg, &banded, |r| Ok(cost(r)), |r| Ok(acc(r))).unwrap();
        let best = best.expect("a configuration in the band");
        assert!((62.0..=70.0).contains(&best.latency_ms), "{best:?}");
        assert!(all.iter().filter(|c| c.ap.is_some()).all(|c| (62.0..=70.0).contains(&c.latency_ms)));
    }

    #[test]
    fn records_refuse_another_model_or_device() {
        let dir = tempfile::tempdir().unwrap();
        let r = SearchRecord {
            model: "camera_det_small.safetensors@0badf00d".into(),
            device: "cpu-2".into(),
            input: (960, 640),
            dense_ms: 100.0,
            dense_ap: 0.3,
            validation: "val".into(),
            options: SearchOptions {
                population: 1,
                parents: 1,
                generations: 1,
                mutation: 0.1,
                seed: 0,
                budget_ms: 1.0,
                floor_ms: 0.0,
            },
            results: vec![],
        };
        let path = r.save(dir.path()).unwrap();
        assert!(SearchRecord::load_for(&path, &r.model, "cpu-2").is_ok());
        let err = SearchRecord::load_for(&path, &r.model, "cpu-16").unwrap_err().to_string();
        assert!(err.contains("device cpu-16") && err.contains("cpu-2"), "{err}");
        assert!(SearchRecord::load_for(&path, "other@00000000", "cpu-2").is_err());
    }
}
