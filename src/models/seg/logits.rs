//! From the dense model's stride-`s` logit cells to per-pixel classes (and entropy) at the
//! model's input resolution: bilinear interpolation of the logits at each pixel centre
//! (`align_corners = False`, edges clamped), argmax, and optionally the entropy of the softmax.
//!
//! Both the dense full-resolution baseline and SparseRefine's low-resolution pass run this
//! one kernel, at their own input sizes, so both do the same work per pixel.

use rayon::prelude::*;

/// Logits are padded to this many channels so the per-pixel loops are whole vectors.
pub const LANES: usize = 32;
/// The padded channels' logit: far below any real one, so exp() of it is 0 and it never wins.
pub(crate) const PAD_LOGIT: f32 = -1.0e4;

/// One image's logit cells, channels last and padded to [`LANES`]: `[height][width][LANES]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogitCells {
    pub width: usize,
    pub height: usize,
    pub classes: usize,
    /// The cells' stride in model-input pixels.
    pub stride: usize,
    pub data: Vec<f32>,
}

impl LogitCells {
    /// From channels-last cells `[h][w][classes]`.
    pub fn new(width: usize, height: usize, classes: usize, stride: usize, cells: &[f32]) -> Self {
        assert!(classes <= LANES && cells.len() == width * height * classes);
        let mut data = vec![PAD_LOGIT; width * height * LANES];
        for (dst, src) in data.chunks_exact_mut(LANES).zip(cells.chunks_exact(classes)) {
            dst[..classes].copy_from_slice(src);
        }
        LogitCells { width, height, classes, stride, data }
    }

    /// From a model's channel planes `[classes][rows][columns]`, their first `height` rows and
    /// `width` columns (the content; the rest is the batch's padding). One pass, rows in
    /// parallel: the transpose to channels last and the padding together.
    pub fn from_planes(planes: ndarray::ArrayView3<'_, f32>, width: usize, height: usize, stride: usize) -> Self {
        let classes = planes.shape()[0];
        assert!(classes <= LANES && height <= planes.shape()[1] && width <= planes.shape()[2]);
        let mut data = vec![0f32; width * height * LANES];
        data.par_chunks_mut((width * LANES).max(1)).enumerate().for_each(|(r, row)| {
            for (k, plane) in planes.outer_iter().enumerate() {
                for (cell, &v) in row.chunks_exact_mut(LANES).zip(plane.row(r).iter().take(width)) {
                    cell[k] = v;
                }
            }
            for cell in row.chunks_exact_mut(LANES) {
                cell[classes..].fill(PAD_LOGIT);
            }
        });
        LogitCells { width, height, classes, stride, data }
    }

    /// The interpolated logits at input pixel `(x, y)` (its centre), `out` of length `classes`.
    pub fn logits_at(&self, x: usize, y: usize, out: &mut [f32]) {
        let (x0, x1, fx) = tap(x, self.stride, self.width);
        let (y0, y1, fy) = tap(y, self.stride, self.height);
        let at = |r: usize, q: usize| &self.data[(r * self.width + q) * LANES..][..LANES];
        let (a, b, c, d) = (at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1));
        for k in 0..self.classes {
            let top = a[k] + fx * (b[k] - a[k]);
            let bottom = c[k] + fx * (d[k] - c[k]);
            out[k] = top + fy * (bottom - top);
        }
    }
}

/// The two cells around pixel `i`'s centre and the weight of the second.
fn tap(i: usize, stride: usize, cells: usize) -> (usize, usize, f32) {
    let pos = ((i as f32 + 0.5) / stride as f32 - 0.5).clamp(0.0, (cells - 1) as f32);
    let lo = (pos as usize).min(cells - 1);
    let hi = (lo + 1).min(cells - 1);
    (lo, hi, pos - lo as f32)
}

/// Per-pixel results over a `width × height` grid of input pixels, row-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PixelClasses {
    pub width: usize,
    pub height: usize,
    pub classes: Vec<u8>,
    /// Entropy of the softmax in nats, when asked for ([`Entropy`]: exact, or exact only
    /// where it may exceed a threshold).
    pub entropy: Option<Vec<f32>>,
}

/// What [`classify`] computes besides the classes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Entropy {
    /// Classes only.
    None,
    /// Every pixel's entropy (choosing τ needs them all).
    Exact,
    /// What SparseRefine's selector `H > τ` needs: the exact entropy wherever it may exceed
    /// τ, and 0 where the logits' margin proves `H ≤ τ` ([`certain_margin`]) without an
    /// exponential. The selection is the same as with exact entropies.
    Above(f32),
}

/// The logit margin (best − second best) from which `H ≤ tau − 1e-4` holds for any logits
/// over `classes` classes, or infinity where no margin does (`tau` below 1e-4).
///
/// With margin δ the best class's probability is at least `p = 1 / (1 + (K−1)e^{−δ})`,
/// and over distributions whose largest probability is `q ≥ 1/K` the entropy is at most
/// `−q ln q − (1−q) ln((1−q)/(K−1))` (the rest spread evenly), which falls as `q` grows.
/// The 1e-4 nats of slack cover the rounding of the computed entropy (~1e-6), so a pixel
/// whose computed entropy is above τ is never certified.
pub fn certain_margin(tau: f32, classes: usize) -> f32 {
    let k = classes.max(2) as f64;
    let target = tau as f64 - 1e-4;
    let bound = |delta: f64| {
        let q = 1.0 / (1.0 + (k - 1.0) * (-delta).exp());
        let rest = 1.0 - q;
        let spread = if rest > 0.0 { -rest * (rest / (k - 1.0)).ln() } else { 0.0 };
        -q * q.ln() + spread
    };
    if target <= 0.0 {
        return f32::INFINITY;
    }
    // The bound falls with δ; bisect for where it meets the target (past 80 it is ~0).
    let (mut lo, mut hi) = (0.0f64, 80.0f64);
    if bound(hi) > target {
        return f32::INFINITY;
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if bound(mid) > target { lo = mid } else { hi = mid }
    }
    // Rounded up to the next float, so the f32 comparison never certifies less margin.
    let m = hi as f32;
    if (m as f64) < hi { f32::from_bits(m.to_bits() + 1) } else { m }
}

/// Resamples `cells` at every pixel of a `width × height` input grid: argmax and the
/// softmax's entropy as `entropy` asks. Rows run in parallel.
pub fn classify(cells: &LogitCells, width: usize, height: usize, entropy: Entropy) -> PixelClasses {
    let mut classes = vec![0u8; width * height];
    let margin = match entropy {
        Entropy::Above(tau) => certain_margin(tau, cells.classes),
        _ => f32::INFINITY,
    };
    let with_entropy = entropy != Entropy::None;
    let mut ent = if with_entropy { vec![0f32; width * height] } else { Vec::new() };
    let quads = match entropy {
        Entropy::Exact => Vec::new(),
        _ => certain_quads(cells, margin),
    };
    let xtaps: Vec<(usize, usize, f32)> = (0..width).map(|x| tap(x, cells.stride, cells.width)).collect();
    let rows_per_task = (16384 / width.max(1)).max(1);
    let rows = Rows { cells, quads: &quads, xtaps: &xtaps, margin };
    let work = |(chunk, (cls, ent)): (usize, (&mut [u8], &mut [f32]))| {
        classify_rows_dispatch(&rows, chunk * rows_per_task, cls, ent)
    };
    let chunk = rows_per_task * width;
    if with_entropy {
        classes.par_chunks_mut(chunk).zip(ent.par_chunks_mut(chunk)).enumerate().for_each(work);
    } else {
        classes.par_chunks_mut(chunk).enumerate().for_each(|(i, c)| work((i, (c, &mut [][..]))));
    }
    PixelClasses { width, height, classes, entropy: with_entropy.then_some(ent) }
}

/// A quad of cells (the four a pixel's taps read, named by its top-left cell) whose pixels
/// need no work of their own: [`CLASS_ONLY`] + the class where every corner has the same best
/// class by a margin that survives interpolation, [`CLASS_AND_ENTROPY`] + the class where the
/// margin also proves `H ≤ τ` (`margin`); [`UNKNOWN`] otherwise.
///
/// Interpolated logits are convex combinations of the corners', so the best corner class's lead
/// over any other class is at least the smallest corner margin. The extra `1e-2 + 1e-6·|z|`
/// covers the interpolation's rounding (a few ulp of the largest logit), so the pixels' own
/// computation would find the same class and margin.
fn certain_quads(cells: &LogitCells, margin: f32) -> Vec<u8> {
    let (w, h) = (cells.width, cells.height);
    // Per cell: best class, its lead over the second, the largest |logit|.
    let mut best = vec![(0u8, 0f32, 0f32); w * h];
    best.par_chunks_mut(w.max(1)).enumerate().for_each(|(r, row)| {
        for (q, b) in row.iter_mut().enumerate() {
            let z: &[f32; LANES] = cells.data[(r * w + q) * LANES..][..LANES].try_into().expect("LANES");
            let (c, max) = argmax(z);
            let amax = z[..cells.classes].iter().fold(0f32, |m, v| m.max(v.abs()));
            *b = (c as u8, max - second_max(z, c), amax);
        }
    });
    let mut quads = vec![UNKNOWN; w * h];
    quads.par_chunks_mut(w.max(1)).enumerate().for_each(|(r, row)| {
        let r1 = (r + 1).min(h - 1);
        for (q, out) in row.iter_mut().enumerate() {
            let q1 = (q + 1).min(w - 1);
            let corners = [best[r * w + q], best[r * w + q1], best[r1 * w + q], best[r1 * w + q1]];
            let class = corners[0].0;
            if corners.iter().any(|c| c.0 != class) {
                continue;
            }
            let lead = corners.iter().fold(f32::INFINITY, |m, c| m.min(c.1));
            let slack = 1e-2 + 1e-6 * corners.iter().fold(0f32, |m, c| m.max(c.2));
            if lead - slack >= margin {
                *out = CLASS_AND_ENTROPY + class;
            } else if lead > slack {
                *out = CLASS_ONLY + class;
            }
        }
    });
    quads
}

/// [`certain_quads`]' codes (classes are below 64).
const UNKNOWN: u8 = 255;
const CLASS_ONLY: u8 = 0;
const CLASS_AND_ENTROPY: u8 = 64;

/// What every pixel row of one [`classify`] call reads.
struct Rows<'a> {
    cells: &'a LogitCells,
    /// [`certain_quads`], or empty: none.
    quads: &'a [u8],
    /// Per pixel column: its two cell columns and the second's weight.
    xtaps: &'a [(usize, usize, f32)],
    /// The margin from which a pixel's entropy is 0 ([`certain_margin`]; infinity: none).
    margin: f32,
}

/// [`classify_rows`] compiled for AVX2 + FMA where the CPU has them (the build targets
/// baseline x86-64, whose 4-lane SSE2 makes this kernel 3× slower). No float contraction
/// either way, so both give the same bits.
fn classify_rows_dispatch(rows: &Rows<'_>, y0: usize, cls: &mut [u8], ent: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::backend::cpu::dense::avx2_fma() {
        // SAFETY: the features were just detected.
        return unsafe { classify_rows_avx2(rows, y0, cls, ent) };
    }
    classify_rows(rows, y0, cls, ent)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn classify_rows_avx2(rows: &Rows<'_>, y0: usize, cls: &mut [u8], ent: &mut [f32]) {
    classify_rows(rows, y0, cls, ent)
}

/// Pixel rows `y0..` (as many as `cls` holds, `xtaps.len()` pixels each): classes into `cls`
/// and, when `ent` is not empty, entropies into it (0 where the best logit leads the second
/// by at least the margin). Pixels of a certain quad take its class without interpolating.
#[inline(always)]
fn classify_rows(rows: &Rows<'_>, y0: usize, cls: &mut [u8], ent: &mut [f32]) {
    let Rows { cells, quads, xtaps, margin } = *rows;
    let width = xtaps.len();
    // The vertical blend of the two cell rows, once per pixel row (shared by all its pixels).
    let mut row = vec![0f32; cells.width * LANES];
    for r in 0..cls.len() / width {
        let (ya, yb, fy) = tap(y0 + r, cells.stride, cells.height);
        let a = &cells.data[ya * cells.width * LANES..][..cells.width * LANES];
        let b = &cells.data[yb * cells.width * LANES..][..cells.width * LANES];
        for ((o, &p), &q) in row.iter_mut().zip(a).zip(b) {
            *o = p + fy * (q - p);
        }
        let quad_row = if quads.is_empty() { &[][..] } else { &quads[ya * cells.width..][..cells.width] };
        for (x, &(x0, x1, fx)) in xtaps.iter().enumerate() {
            if let Some(&q) = quad_row.get(x0)
                && q != UNKNOWN
                && (q >= CLASS_AND_ENTROPY || ent.is_empty())
            {
                cls[r * width + x] = q % CLASS_AND_ENTROPY;
                if !ent.is_empty() {
                    ent[r * width + x] = 0.0;
                }
                continue;
            }
            let l: &[f32; LANES] = row[x0 * LANES..][..LANES].try_into().expect("LANES");
            let h: &[f32; LANES] = row[x1 * LANES..][..LANES].try_into().expect("LANES");
            let mut z = [0f32; LANES];
            for k in 0..LANES {
                z[k] = l[k] + fx * (h[k] - l[k]);
            }
            let (best, max) = argmax(&z);
            cls[r * width + x] = best as u8;
            if !ent.is_empty() {
                let second = second_max(&z, best);
                ent[r * width + x] = if max - second >= margin { 0.0 } else { softmax_entropy(&z, max) };
            }
        }
    }
}

/// Argmax by halving: the maximum by lane-wise maxima, then the lowest lane that holds it from
/// the mask of lanes equal to it (NumPy's tie rule). Branch-free, so it vectorises; a
/// serial scan is a 32-step dependency chain per pixel.
#[inline(always)]
fn argmax(z: &[f32; LANES]) -> (usize, f32) {
    let max = halving_max(*z);
    let mut hits = 0u32;
    for (k, &x) in z.iter().enumerate() {
        hits |= ((x == max) as u32) << k;
    }
    (hits.trailing_zeros() as usize, max)
}

/// The largest value outside lane `best`, by halving like [`argmax`].
#[inline(always)]
fn second_max(z: &[f32; LANES], best: usize) -> f32 {
    halving_max(std::array::from_fn(|k| if k == best { f32::NEG_INFINITY } else { z[k] }))
}

/// `H = log S − Σ e^{z_k − m} (z_k − m) / S` with `S = Σ e^{z_k − m}`: the entropy of
/// softmax(z) in nats, written so padded channels (e^{−10⁴} = 0) add nothing. The sums are
/// taken by halving (lane-wise adds) so they vectorise; a running sum is a serial chain.
#[inline(always)]
fn softmax_entropy(z: &[f32; LANES], max: f32) -> f32 {
    let mut e = [0f32; LANES];
    let mut ed = [0f32; LANES];
    for k in 0..LANES {
        let d = z[k] - max;
        e[k] = exp_neg(d);
        ed[k] = e[k] * d;
    }
    let (s, sz) = (halving_sum(e), halving_sum(ed));
    (s.ln() - sz / s).max(0.0)
}

/// The softmax of `z` (channels past the model's padded with [`PAD_LOGIT`]) into `p` and
/// its entropy in nats, as [`softmax_entropy`] computes it. For code that needs the
/// probabilities too (the refiner's features and ensembler), one row at a time.
#[inline(always)]
pub(crate) fn softmax_padded(z: &[f32; LANES], p: &mut [f32; LANES]) -> f32 {
    let max = halving_max(*z);
    let mut ed = [0f32; LANES];
    for k in 0..LANES {
        let d = z[k] - max;
        p[k] = exp_neg(d);
        ed[k] = p[k] * d;
    }
    let (s, sz) = (halving_sum(*p), halving_sum(ed));
    let inv = 1.0 / s;
    for v in p.iter_mut() {
        *v *= inv;
    }
    (s.ln() - sz * inv).max(0.0)
}

/// The maximum by lane-wise maxima (halving, as [`halving_sum`]).
#[inline(always)]
fn halving_max(mut v: [f32; LANES]) -> f32 {
    let mut half = LANES / 2;
    while half > 0 {
        for i in 0..half {
            v[i] = if v[i + half] > v[i] { v[i + half] } else { v[i] };
        }
        half /= 2;
    }
    v[0]
}

#[inline(always)]
fn halving_sum(mut v: [f32; LANES]) -> f32 {
    let mut half = LANES / 2;
    while half > 0 {
        for i in 0..half {
            v[i] += v[i + half];
        }
        half /= 2;
    }
    v[0]
}

/// `e^x` for `x ≤ 0` (relative error below 2e-7 for x ≥ −87; 0 below): range reduction
/// `x = n·ln2 + r`, a degree-6 polynomial on |r| ≤ ln2/2, `2^n` through the exponent bits.
/// Branch-free, so the loops above vectorise (the library exp does not).
#[inline(always)]
pub fn exp_neg(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Round to nearest with the 1.5·2^23 trick (vectorises; `round()` may not).
    const MAGIC: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n as an integer from t's bits (t and MAGIC share their exponent, so the difference of
    // the bit patterns is n): `n as i32` is a saturating conversion that does not vectorise.
    // Wrapping: no overflow check in the loop (n ∈ [−126, 0] after the clamp).
    let ni = (t.to_bits() as i32).wrapping_sub(MAGIC.to_bits() as i32);
    let bits = (ni.wrapping_add(127) << 23) as u32;
    p * f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_neg_is_exp_to_float_precision() {
        let mut worst = 0f64;
        for i in 0..=87_000 {
            let x = -(i as f32) / 1000.0;
            let want = (x as f64).exp();
            let got = exp_neg(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 4e-7, "worst relative error {worst:e}");
        assert_eq!(exp_neg(-1.0e4), 0.0f32.max(exp_neg(-1.0e4)));
        assert!(exp_neg(-1.0e4) < 1e-37);
    }

    /// The kernel against the direct formula: bilinear logits at each pixel centre, argmax,
    /// entropy −Σ p log p in f64.
    #[test]
    fn classify_equals_the_direct_formula() {
        let (w, h, c, s) = (7, 5, 29, 4);
        let cells: Vec<f32> = (0..w * h * c)
            .map(|i| ((i * 7919 % 1000) as f32 / 100.0 - 5.0) * if i % 3 == 0 { 2.0 } else { 1.0 })
            .collect();
        let lc = LogitCells::new(w, h, c, s, &cells);
        let (pw, ph) = (27, 18); // not a multiple of the stride: the last cells clamp
        let got = classify(&lc, pw, ph, Entropy::Exact);
        let mut z = vec![0f32; c];
        for y in 0..ph {
            for x in 0..pw {
                // Direct: continuous cell position, clamped, four corners.
                let cx = ((x as f64 + 0.5) / s as f64 - 0.5).clamp(0.0, (w - 1) as f64);
                let cy = ((y as f64 + 0.5) / s as f64 - 0.5).clamp(0.0, (h - 1) as f64);
                let (x0, y0) = (cx.floor() as usize, cy.floor() as usize);
                let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
                let (fx, fy) = (cx - x0 as f64, cy - y0 as f64);
                let v = |r: usize, q: usize, k: usize| cells[(r * w + q) * c + k] as f64;
                let zs: Vec<f64> = (0..c)
                    .map(|k| {
                        (1.0 - fy) * ((1.0 - fx) * v(y0, x0, k) + fx * v(y0, x1, k))
                            + fy * ((1.0 - fx) * v(y1, x0, k) + fx * v(y1, x1, k))
                    })
                    .collect();
                let m = zs.iter().cloned().fold(f64::MIN, f64::max);
                let sum: f64 = zs.iter().map(|z| (z - m).exp()).sum();
                let ent: f64 = -zs.iter().map(|z| (z - m).exp() / sum).map(|p| p * p.ln()).sum::<f64>();
                let best = zs.iter().enumerate().fold(0, |b, (k, z)| if *z > zs[b] { k } else { b });
                let i = y * pw + x;
                // Ties within rounding may pick either; the chosen class is within 1e-4 of the max.
                assert!(zs[got.classes[i] as usize] >= zs[best] - 1e-4, "pixel ({x},{y})");
                assert!((got.entropy.as_ref().unwrap()[i] as f64 - ent).abs() < 1e-4, "pixel ({x},{y})");
                lc.logits_at(x, y, &mut z);
                for k in 0..c {
                    assert!((z[k] as f64 - zs[k]).abs() < 1e-4);
                }
            }
        }
        // The same cells from channel planes with padding around the content.
        let mut planes = ndarray::Array3::<f32>::zeros((c, h + 2, w + 3));
        for ((r, q), k) in (0..h).flat_map(|r| (0..w).map(move |q| (r, q))).flat_map(|p| (0..c).map(move |k| (p, k))) {
            planes[[k, r, q]] = cells[(r * w + q) * c + k];
        }
        assert_eq!(LogitCells::from_planes(planes.view(), w, h, s), lc);
        let no_entropy = classify(&lc, pw, ph, Entropy::None);
        assert_eq!(no_entropy.classes, got.classes);
        assert!(no_entropy.entropy.is_none());
    }

    /// `Entropy::Above(τ)` selects exactly the pixels exact entropies select, and where it
    /// computes an entropy it is the exact one; logit vectors with the certified margin have
    /// entropy at most τ.
    #[test]
    fn entropy_above_tau_selects_as_exact_entropy() {
        let (w, h, c, s) = (40, 30, 29, 4);
        let mut state = 11u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        // Cells with a clear winner of varying lead over a noisy rest: every entropy from ~0 to ~2.
        let mut cells = vec![0f32; w * h * c];
        for cell in cells.chunks_exact_mut(c) {
            let lead = 12.0 * next();
            for v in cell.iter_mut() {
                *v = 3.0 * next();
            }
            cell[(next() * c as f32) as usize % c] += lead;
        }
        let lc = LogitCells::new(w, h, c, s, &cells);
        let exact = classify(&lc, w * s, h * s, Entropy::Exact);
        let exact_h = exact.entropy.as_ref().unwrap();
        // Classes alone (quads certain of their class skip the pixels' own work) are the same.
        assert_eq!(classify(&lc, w * s, h * s, Entropy::None).classes, exact.classes);
        assert!(certain_quads(&lc, f32::INFINITY).iter().any(|&q| q != UNKNOWN), "some quads are certain");
        for tau in [0.05f32, 0.3, 0.64, 1.2, 3.0, -1.0] {
            let above = classify(&lc, w * s, h * s, Entropy::Above(tau));
            assert_eq!(above.classes, exact.classes);
            let above_h = above.entropy.as_ref().unwrap();
            let mut certified = 0;
            for (a, e) in above_h.iter().zip(exact_h) {
                assert_eq!(*a > tau, *e > tau, "τ {tau}: {a} vs exact {e}");
                if *a == 0.0 && *e != 0.0 {
                    certified += 1;
                } else {
                    assert_eq!(a, e);
                }
            }
            if (0.3..=1.2).contains(&tau) {
                assert!(certified > 0, "τ {tau}: some pixels certified");
            }
        }
        // The bound itself on random logit vectors at exactly the margin.
        for tau in [0.1f32, 0.64, 1.5] {
            let m = certain_margin(tau, c);
            assert!(m.is_finite() && m > 0.0);
            for _ in 0..2000 {
                let mut z: Vec<f64> = (0..c).map(|_| (next() as f64 - 1.0) * 20.0 * next() as f64).collect();
                z[0] = z[1..].iter().cloned().fold(f64::MIN, f64::max) + m as f64;
                let mx = z[0];
                let sum: f64 = z.iter().map(|v| (v - mx).exp()).sum();
                let ent: f64 = -z
                    .iter()
                    .map(|v| (v - mx).exp() / sum)
                    .map(|p| if p > 0.0 { p * p.ln() } else { 0.0 })
                    .sum::<f64>();
                assert!(ent <= tau as f64, "τ {tau}, margin {m}: entropy {ent}");
            }
        }
        assert_eq!(certain_margin(0.0, c), f32::INFINITY);
    }
}
