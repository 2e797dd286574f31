//! The Swin backbone's shape: embedding width, blocks and heads per stage, window size.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Location, Result};

/// A Swin-style backbone: stage `s` has `depths[s]` blocks of width `embed·2ˢ` with
/// `heads[s]` heads; blocks alternate regular and shifted windows of `window × window`
/// tokens; a `patch × patch` conv embeds the image and patch merging halves the grid
/// between stages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwinConfig {
    pub embed: usize,
    pub depths: Vec<usize>,
    pub heads: Vec<usize>,
    pub window: usize,
    /// The MLP's hidden width over the block's.
    pub mlp_ratio: usize,
    pub patch: usize,
}

impl SwinConfig {
    /// The published Swin-T (embed 96, depths 2-2-6-2, heads 3-6-12-24, window 7).
    pub fn swin_t() -> SwinConfig {
        SwinConfig { embed: 96, depths: vec![2, 2, 6, 2], heads: vec![3, 6, 12, 24], window: 7, mlp_ratio: 4, patch: 4 }
    }

    /// The configuration trained here: Swin-T's layout at a third of the width and a
    /// shorter third stage.
    pub fn small() -> SwinConfig {
        SwinConfig { embed: 32, depths: vec![2, 2, 4, 2], heads: vec![1, 2, 4, 8], window: 7, mlp_ratio: 4, patch: 4 }
    }

    /// `swin-t` or `small`.
    pub fn named(name: &str) -> Option<SwinConfig> {
        match name {
            "swin-t" => Some(Self::swin_t()),
            "small" => Some(Self::small()),
            _ => None,
        }
    }

    pub fn stages(&self) -> usize {
        self.depths.len()
    }

    /// Channels of stage `s`.
    pub fn dim(&self, s: usize) -> usize {
        self.embed << s
    }

    /// Tokens per window.
    pub fn window_tokens(&self) -> usize {
        self.window * self.window
    }

    /// Every width divides into its heads, and the stages are consistent.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |what: String| Err(Error::invalid(Location::default().detail("Swin config"), "a consistent config", what));
        if self.depths.is_empty() || self.depths.len() != self.heads.len() {
            return bad(format!("{} stage depths and {} head counts", self.depths.len(), self.heads.len()));
        }
        if self.embed == 0 || self.window == 0 || self.patch == 0 || self.mlp_ratio == 0 {
            return bad(format!(
                "embed {}, window {}, patch {}, MLP ratio {}",
                self.embed, self.window, self.patch, self.mlp_ratio
            ));
        }
        for (s, &h) in self.heads.iter().enumerate() {
            if h == 0 || !self.dim(s).is_multiple_of(h) {
                return bad(format!("stage {s}: {h} heads for {} channels", self.dim(s)));
            }
        }
        Ok(())
    }
}
