//! SparseRefine's entropy selector: the full-resolution pixels whose low-resolution prediction
//! is uncertain, `H = −Σ p log p > τ` (nats) of the softmax at the input pixel they fall in.
//!
//! τ is chosen per model and scale on validation images ([`TauChooser`]): the largest τ whose
//! selected pixels hold at least a target share (the *error recall*) of the pixels the
//! low-resolution prediction gets wrong. The paper fixed τ per model by hand; this rule makes the
//! trade (pixels refined vs errors reachable) explicit and repeatable.

use serde::Serialize;

use super::dense::DenseOutput;

/// Full-resolution pixels `(u, v)` to refine, in `(u, v)` order: the order of the sparse
/// engine's ravelled keys (`u` before `v`), so its kernel maps are built by a merge join over
/// sorted keys instead of hashing.
pub fn select(dense: &DenseOutput, tau: f32) -> Vec<(u32, u32)> {
    let Some(entropy) = &dense.pixels.entropy else { return Vec::new() };
    let pw = dense.pixels.width;
    let rows: Vec<usize> = (0..dense.height).map(|v| dense.input_pixel(0, v).1 * pw).collect();
    let mut out = Vec::new();
    for u in 0..dense.width {
        let c = dense.input_pixel(u, 0).0;
        for (v, &r) in rows.iter().enumerate() {
            if entropy[r + c] > tau {
                out.push((u as u32, v as u32));
            }
        }
    }
    out
}

/// Entropy is binned this finely (nats) when choosing τ.
const BIN: f32 = 1e-3;
/// Bins up to ln 29 ≈ 3.37 and a little beyond.
const BINS: usize = 3500;

/// Histograms of the low-resolution entropy over labelled full-resolution pixels, all and
/// wrong ones, from which τ is read off.
#[derive(Debug, Clone)]
pub struct TauChooser {
    all: Vec<u64>,
    wrong: Vec<u64>,
}

/// The chosen τ and what it selects on the images it was chosen on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TauChoice {
    pub tau: f32,
    /// Share of the low-resolution errors (labelled pixels) that τ selects.
    pub error_recall: f64,
    /// Share of labelled pixels selected.
    pub selected: f64,
}

impl Default for TauChooser {
    fn default() -> Self {
        TauChooser { all: vec![0; BINS], wrong: vec![0; BINS] }
    }
}

impl TauChooser {
    /// Adds one image: its dense low-resolution output (with entropy) and its full-resolution
    /// labels (`0` = undefined, not counted).
    pub fn add(&mut self, dense: &DenseOutput, labels: &[u8]) {
        let Some(entropy) = &dense.pixels.entropy else { return };
        let pw = dense.pixels.width;
        for v in 0..dense.height {
            let iv = dense.input_pixel(0, v).1;
            for u in 0..dense.width {
                let gt = labels[v * dense.width + u];
                if gt == 0 {
                    continue;
                }
                let (iu, _) = dense.input_pixel(u, v);
                let h = entropy[iv * pw + iu];
                let b = ((h / BIN) as usize).min(BINS - 1);
                self.all[b] += 1;
                if dense.pixels.classes[iv * pw + iu] != gt {
                    self.wrong[b] += 1;
                }
            }
        }
    }

    /// The largest τ (a bin edge) whose selection `H > τ` holds at least `recall` of the errors.
    pub fn choose(&self, recall: f64) -> TauChoice {
        let total_wrong: u64 = self.wrong.iter().sum();
        let total: u64 = self.all.iter().sum();
        let (mut wrong, mut all) = (0u64, 0u64);
        // Walk down from the top bin: H > edge(b) selects bins b.. (entropy at the bin's floor).
        for b in (0..BINS).rev() {
            wrong += self.wrong[b];
            all += self.all[b];
            if total_wrong == 0 || wrong as f64 >= recall * total_wrong as f64 {
                // The selection is H ≥ b·BIN; as a strict threshold, just below that edge.
                let tau = if b == 0 { -1.0 } else { b as f32 * BIN - BIN * 1e-3 };
                return TauChoice {
                    tau,
                    error_recall: if total_wrong == 0 { 1.0 } else { wrong as f64 / total_wrong as f64 },
                    selected: all as f64 / total.max(1) as f64,
                };
            }
        }
        TauChoice { tau: -1.0, error_recall: 1.0, selected: 1.0 }
    }
}
