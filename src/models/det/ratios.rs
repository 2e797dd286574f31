//! Window pruning ratios (SparseViT §C.2-C.3): per block, the share of windows whose
//! block is skipped. Within a stage they must not decrease, because later blocks keep a
//! prefix of the same score-sorted window list.

use serde::{Deserialize, Serialize};

use super::SwinConfig;
use crate::error::{Error, Location, Result};

/// Pruning ratios for every block, stage by stage, each in `[0, 1)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ratios(Vec<Vec<f64>>);

impl Ratios {
    /// No pruning: the dense backbone.
    pub fn dense(cfg: &SwinConfig) -> Ratios {
        Ratios(cfg.depths.iter().map(|&d| vec![0.0; d]).collect())
    }

    /// Ratios per block, checked against `cfg`'s depths.
    pub fn new(per_block: Vec<Vec<f64>>, cfg: &SwinConfig) -> Result<Ratios> {
        let at = || Location::default().detail("pruning ratios");
        if per_block.len() != cfg.stages() {
            return Err(Error::invalid(at(), format!("{} stages", cfg.stages()), format!("{}", per_block.len())));
        }
        for (s, (stage, &depth)) in per_block.iter().zip(&cfg.depths).enumerate() {
            if stage.len() != depth {
                return Err(Error::invalid(at(), format!("{depth} ratios in stage {s}"), format!("{}", stage.len())));
            }
            if let Some(r) = stage.iter().find(|r| !(0.0..1.0).contains(*r)) {
                return Err(Error::invalid(at(), format!("ratios in [0, 1) in stage {s}"), format!("{r}")));
            }
            if stage.windows(2).any(|w| w[1] < w[0]) {
                return Err(Error::invalid(
                    at(),
                    format!("non-decreasing ratios within stage {s} (later blocks keep a prefix of the same windows)"),
                    format!("{stage:?}"),
                ));
            }
        }
        Ok(Ratios(per_block))
    }

    /// One ratio per pair of blocks (a regular and a shifted window block), as the search
    /// sets them: `[[.6], [0], [.2, .4, .5], [0]]` is Swin-T's cfg2.
    pub fn from_pairs(pairs: &[Vec<f64>], cfg: &SwinConfig) -> Result<Ratios> {
        let per_block = pairs.iter().map(|stage| stage.iter().flat_map(|&r| [r, r]).collect()).collect();
        Self::new(per_block, cfg)
    }

    /// `0.6,0.6/0,0/0.2,0.2,0.4,0.4,0.5,0.5/0,0`: blocks by commas, stages by slashes; a
    /// stage with one value gives it to all its blocks.
    pub fn parse(text: &str, cfg: &SwinConfig) -> Result<Ratios> {
        let at = || Location::default().detail("pruning ratios");
        let mut per_block = Vec::new();
        for (s, stage) in text.split('/').enumerate() {
            let values = stage
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .map_err(|_| Error::invalid(at(), "numbers like 0.3", format!("`{v}` in `{text}`")))
                })
                .collect::<Result<Vec<f64>>>()?;
            let depth = cfg.depths.get(s).copied().unwrap_or(0);
            per_block.push(if values.len() == 1 { vec![values[0]; depth] } else { values });
        }
        Self::new(per_block, cfg)
    }

    /// Named sets `NAME=RATIOS;NAME=RATIOS` ([`Ratios::parse`] each; a set without a name is
    /// named by its ratios).
    pub fn parse_sets(text: &str, cfg: &SwinConfig) -> Result<Vec<(String, Ratios)>> {
        text.split(';')
            .filter(|t| !t.trim().is_empty())
            .map(|t| {
                let (name, r) = t.split_once('=').unwrap_or((t, t));
                Ok((name.trim().to_string(), Self::parse(r.trim(), cfg)?))
            })
            .collect()
    }

    pub fn stage(&self, s: usize) -> &[f64] {
        &self.0[s]
    }

    pub fn stages(&self) -> &[Vec<f64>] {
        &self.0
    }

    pub fn is_dense(&self) -> bool {
        self.0.iter().flatten().all(|&r| r == 0.0)
    }

    /// Windows a block at ratio `r` keeps out of `windows`: `⌊windows·(1 − r)⌋`, in f64 as
    /// the twin computes it (`int(nW * (1 - r))`).
    pub fn keep(windows: usize, r: f64) -> usize {
        (windows as f64 * (1.0 - r)) as usize
    }
}

impl std::fmt::Display for Ratios {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stages: Vec<String> =
            self.0.iter().map(|s| s.iter().map(|r| format!("{r}")).collect::<Vec<_>>().join(",")).collect();
        write!(f, "{}", stages.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_checked_and_parsed() {
        let cfg = SwinConfig::swin_t();
        let r = Ratios::parse("0.6/0/0.2,0.2,0.4,0.4,0.5,0.5/0", &cfg).unwrap();
        assert_eq!(r, Ratios::from_pairs(&[vec![0.6], vec![0.0], vec![0.2, 0.4, 0.5], vec![0.0]], &cfg).unwrap());
        assert_eq!(Ratios::parse(&r.to_string(), &cfg).unwrap(), r);
        assert!(
            Ratios::parse("0.6/0/0.5,0.5,0.4,0.4,0.5,0.5/0", &cfg).unwrap_err().to_string().contains("non-decreasing")
        );
        assert!(Ratios::parse("1.0/0/0/0", &cfg).unwrap_err().to_string().contains("[0, 1)"));
        assert!(Ratios::parse("0.1/0/0", &cfg).is_err());
        assert!(Ratios::parse("0.1/0/x/0", &cfg).is_err());
        assert!(Ratios::dense(&cfg).is_dense());
        // As Python computes int(nW * (1 - r)).
        assert_eq!(Ratios::keep(100, 0.3), 70);
        assert_eq!(Ratios::keep(96, 0.7), 28);
        assert_eq!(Ratios::keep(10, 0.0), 10);
    }
}
