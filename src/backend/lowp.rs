//! Low-precision conv weights (docs/quantization.md): INT8 with per-output-channel weight
//! scales and a calibrated per-layer activation scale (SmoothQuant's per-input-channel
//! smoothing folded in), and BF16. Both are packed once, when a model is prepared, into the
//! layout the dot-product instructions read (VNNI's `vpdpbusd`: 4 u8 × 4 s8 per 32-bit lane;
//! `vdpbf16ps`: 2 bf16 × 2 bf16), so a conv call packs nothing.
//!
//! Layout shared by both: a 32-bit *word* holds 4 input channels (INT8) or 2 (BF16); the
//! weights of offset `k` are `[words × cout_p]` words, `cout_p` = `cout` rounded up to 16
//! (one 512-bit vector of outputs), padding zero.
//!
//! INT8 arithmetic (what `tools/golden/int8_conv.py` reproduces bit for bit):
//! `xq = clamp(rint(x_j · inv_scale_j) + z, 0, 255)` (u8, zero point `z`),
//! `wq = clamp(rint(w'/sw_o), −127, 127)` with `w' = w · smooth_j` and `sw_o = max|w'_·,·,o| / 127`,
//! `acc_o = Σ_pairs Σ_j (xq − z) · wq` in i32 (a missing neighbour holds `z`, i.e. zero),
//! `y_o = f32(acc_o) · out_scale_o + bias_o` (no fused multiply-add), then the activation.

use serde::{Deserialize, Serialize};

/// The arithmetic a conv layer runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    Bf16,
    Int8,
}

impl Precision {
    pub fn label(self) -> &'static str {
        match self {
            Precision::F32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

/// Output channels per vector: `cout` is padded to a multiple of this.
pub const LANES: usize = 16;

/// How a layer's input activations are quantized (from calibration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActQuant {
    /// Per input channel, the SmoothQuant factor `s_j` (activations divided, weights multiplied).
    pub smooth: Vec<f32>,
    /// The per-tensor scale of the smoothed activations.
    pub scale: f32,
    /// 0 for non-negative activations (after a ReLU: all 256 levels above zero), 128 otherwise.
    pub zero_point: u8,
}

impl ActQuant {
    /// From calibration statistics of a layer's input: per-channel `max|x_j|` and the
    /// minimum value seen; weights `[K·cin × cout]`. `alpha` is SmoothQuant's migration
    /// strength (0.5: the paper's default); `None` leaves every channel as it is.
    pub fn calibrate(chan_absmax: &[f32], min: f32, w: &[f32], cout: usize, alpha: Option<f32>) -> ActQuant {
        let cin = chan_absmax.len();
        let mut w_absmax = vec![0.0f32; cin];
        for (r, row) in w.chunks_exact(cout).enumerate() {
            let m = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            w_absmax[r % cin] = w_absmax[r % cin].max(m);
        }
        let smooth: Vec<f32> = chan_absmax
            .iter()
            .zip(&w_absmax)
            .map(|(&x, &w)| {
                let Some(alpha) = alpha else { return 1.0 };
                let s = x.max(1e-5).powf(alpha) / w.max(1e-5).powf(1.0 - alpha);
                if s.is_finite() && s > 0.0 { s } else { 1.0 }
            })
            .collect();
        let range = chan_absmax.iter().zip(&smooth).fold(0.0f32, |m, (x, s)| m.max(x / s));
        let zero_point = if min >= 0.0 { 0 } else { 128 };
        let levels = if zero_point == 0 { 255.0 } else { 127.0 };
        let scale = if range > 0.0 { range / levels } else { 1.0 };
        ActQuant { smooth, scale, zero_point }
    }
}

/// A conv's weights in the dot-product layout: `[K][words][cout_p]` 32-bit words, each
/// holding `32 / bits` consecutive input channels (channel `j` in bits
/// `bits·(j mod n) ..`), padding zero.
#[derive(Debug, Clone)]
pub struct PackedWeights {
    pub volume: usize,
    pub cin: usize,
    pub cout: usize,
    /// 32-bit words per input row: `ceil(cin / (32 / bits))`.
    pub words: usize,
    pub cout_p: usize,
    pub w: Vec<u32>,
    /// The same weights with `words` padded to a multiple of 16 (zeros), as the AMX tile
    /// kernels read them: made on first use, on CPUs that run them.
    pub tiles: std::sync::OnceLock<Vec<u32>>,
}

impl PackedWeights {
    /// Packs `value(k, j, o)` (its low `bits` bits) for every offset, input and output channel.
    fn pack(volume: usize, cin: usize, cout: usize, bits: usize, value: impl Fn(usize, usize, usize) -> u32) -> Self {
        let per_word = 32 / bits;
        let words = cin.div_ceil(per_word);
        let cout_p = cout.div_ceil(LANES) * LANES;
        let mut w = vec![0u32; volume * words * cout_p];
        for k in 0..volume {
            for j in 0..cin {
                for o in 0..cout {
                    w[(k * words + j / per_word) * cout_p + o] |= value(k, j, o) << (bits * (j % per_word));
                }
            }
        }
        PackedWeights { volume, cin, cout, words, cout_p, w, tiles: std::sync::OnceLock::new() }
    }
}

/// A conv's INT8 weights, packed for `vpdpbusd` (4 signed bytes a word), with what the
/// epilogue needs.
#[derive(Debug, Clone)]
pub struct Int8Conv {
    pub weights: PackedWeights,
    /// `[K][cout_p]`: `z · Σ_j wq[k, j, o]`, what the zero point adds per present offset.
    pub zero_sum: Vec<i32>,
    /// `[cin]`: `1 / (scale · smooth_j)`.
    pub inv_scale: Vec<f32>,
    pub zero_point: u8,
    /// `[cout]`: `scale · sw_o`.
    pub out_scale: Vec<f32>,
}

impl Int8Conv {
    /// Quantizes weights `[K·cin × cout]` with per-output-channel scales for inputs
    /// quantized by `act`.
    pub fn quantize(w: &[f32], volume: usize, cin: usize, cout: usize, act: &ActQuant) -> Int8Conv {
        debug_assert_eq!(w.len(), volume * cin * cout);
        let smoothed = |kj: usize, o: usize| w[kj * cout + o] * act.smooth[kj % cin];
        let sw: Vec<f32> = (0..cout)
            .map(|o| {
                let m = (0..volume * cin).fold(0.0f32, |m, kj| m.max(smoothed(kj, o).abs()));
                if m > 0.0 { m / 127.0 } else { 1.0 }
            })
            .collect();
        // `[K·cin × cout]`, like the weights.
        let q: Vec<i8> = (0..volume * cin * cout)
            .map(|i| (smoothed(i / cout, i % cout) / sw[i % cout]).round_ties_even().clamp(-127.0, 127.0) as i8)
            .collect();
        let weights = PackedWeights::pack(volume, cin, cout, 8, |k, j, o| q[(k * cin + j) * cout + o] as u8 as u32);
        let cout_p = weights.cout_p;
        let mut zero_sum = vec![0i32; volume * cout_p];
        for (kj, row) in q.chunks_exact(cout).enumerate() {
            for (o, &v) in row.iter().enumerate() {
                zero_sum[(kj / cin) * cout_p + o] += act.zero_point as i32 * v as i32;
            }
        }
        Int8Conv {
            weights,
            zero_sum,
            inv_scale: act.smooth.iter().map(|s| 1.0 / (act.scale * s)).collect(),
            zero_point: act.zero_point,
            out_scale: sw.iter().map(|s| act.scale * s).collect(),
        }
    }

    /// The word a missing neighbour reads: every byte the zero point.
    pub fn zero_word(&self) -> u32 {
        u32::from_ne_bytes([self.zero_point; 4])
    }
}

/// 1.5·2²³: `(v + M) − M` rounds `|v| < 2²²` to the nearest integer, ties to even.
pub const ROUNDING_MAGIC: f32 = 12_582_912.0;

/// Quantizes one activation: `clamp(rint(x · inv) + z, 0, 255)`.
#[inline]
pub fn quantize_u8(x: f32, inv: f32, zero_point: u8) -> u8 {
    // Round half to even by adding and subtracting 1.5·2²³ (exact for |v| < 2²²: clamped to
    // ±512 first, past every level, which changes no result): `round_ties_even` is a libm
    // call on baseline x86-64 and this loop quantizes every input value of every conv.
    let v = (x * inv).clamp(-512.0, 512.0);
    let q = ((v + ROUNDING_MAGIC) - ROUNDING_MAGIC) + zero_point as f32;
    // NaN (kept by clamp) becomes the zero point.
    if q.is_nan() { zero_point } else { q.clamp(0.0, 255.0) as u8 }
}

/// A conv's BF16 weights, packed for `vdpbf16ps` (2 bf16 a word, channel `2q` low).
#[derive(Debug, Clone)]
pub struct Bf16Conv {
    pub weights: PackedWeights,
}

impl Bf16Conv {
    pub fn pack(w: &[f32], volume: usize, cin: usize, cout: usize) -> Bf16Conv {
        debug_assert_eq!(w.len(), volume * cin * cout);
        Bf16Conv {
            weights: PackedWeights::pack(volume, cin, cout, 16, |k, j, o| to_bf16(w[(k * cin + j) * cout + o]) as u32),
        }
    }
}

/// f32 → bf16, rounding to nearest even (NaN stays a quiet NaN).
#[inline]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// bf16 → f32 (exact).
#[inline]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// A conv layer's low-precision forms (either may be absent).
#[derive(Debug, Clone, Default)]
pub struct LowpConv {
    pub int8: Option<Int8Conv>,
    pub bf16: Option<Bf16Conv>,
}

impl LowpConv {
    /// Whether weights for `precision` are here (FP32 never is: it is the conv's own).
    pub fn has(&self, precision: Precision) -> bool {
        match precision {
            Precision::F32 => false,
            Precision::Bf16 => self.bf16.is_some(),
            Precision::Int8 => self.int8.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }

    #[test]
    fn activations_quantize_with_their_zero_point() {
        assert_eq!(quantize_u8(0.0, 10.0, 0), 0);
        assert_eq!(quantize_u8(-1.0, 10.0, 0), 0);
        assert_eq!(quantize_u8(25.4, 10.0, 0), 254);
        assert_eq!(quantize_u8(1e9, 10.0, 0), 255);
        assert_eq!(quantize_u8(-0.25, 10.0, 128), 126); // rint(-2.5) = -2
        assert_eq!(quantize_u8(f32::NAN, 10.0, 128), 128);
        assert_eq!(quantize_u8(-1e30, 1.0, 128), 0);
        // Halves go to the even neighbour, as NumPy's rint.
        for (x, want) in [(0.5, 128), (1.5, 130), (2.5, 130), (-0.5, 128), (-1.5, 126), (126.5, 254)] {
            assert_eq!(quantize_u8(x, 1.0, 128), want, "{x}");
        }
    }

    /// Calibration with smoothing: the channel with the outlier range is divided the most,
    /// and the smoothed range maps onto the 255 levels of a non-negative input.
    #[test]
    fn smoothing_moves_outlier_channels_into_the_weights() {
        let absmax = [100.0, 1.0];
        let w = [0.5, -0.5, 0.5, 0.5]; // K = 1, cin = 2, cout = 2
        let q = ActQuant::calibrate(&absmax, 0.0, &w, 2, Some(0.5));
        assert!(q.smooth[0] > 5.0 * q.smooth[1], "{:?}", q.smooth);
        assert_eq!(q.zero_point, 0);
        let range = (100.0 / q.smooth[0]).max(1.0 / q.smooth[1]);
        assert!((q.scale * 255.0 - range).abs() < 1e-4 * range);
        let plain = ActQuant::calibrate(&absmax, -3.0, &w, 2, None);
        assert_eq!(plain.zero_point, 128);
        assert!((plain.scale - 100.0 / 127.0).abs() < 1e-6);
    }
}
