//! INT8 and BF16 sparse convs on the CPU: output-stationary implicit GEMM with the gather
//! fused into the micro-kernel. A tile of [`MR`] output rows keeps its accumulators in
//! registers across every offset present in the tile; per offset the kernel reads each row's
//! input straight from the quantized feature matrix (a missing neighbour reads a zero row),
//! so there is no gathered copy of A and no packing at call time (weights were packed when
//! the model was prepared, [`crate::backend::lowp`]). The epilogue (zero-point correction,
//! scales, bias, activation) writes each output row once.
//!
//! Rows run in the map's sorted order (by neighbour bitmask), so a tile's rows share their
//! offsets and the offsets absent from all of them are skipped; the micro-tiles and their
//! offsets are the map's cached [`TilePlan`], shared with the f32 fused-gather dataflow.
//!
//! Micro-kernels: AVX-512 VNNI (`vpdpbusd`) and AVX-512 BF16 (`vdpbf16ps`) where the CPU has
//! them, chosen at run time; a portable loop otherwise, with the same integer arithmetic
//! (INT8 results are bit-identical on every path).

use rayon::prelude::*;

use super::amx;
use super::dataflow::{HostEpilogue, RowsPtr};
use crate::backend::lowp::{Bf16Conv, Int8Conv, PackedWeights, from_bf16, quantize_u8, to_bf16};
use crate::backend::{Activation, KernelMap, MICRO_ROWS as MR, ROW_TILE, RowOrder, TilePlan};

/// Which dot product a kernel runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dot {
    /// 4 × (u8 · s8) summed into an i32 lane.
    U8S8,
    /// 2 × (bf16 · bf16) summed into an f32 lane.
    Bf16,
}

/// Whether this CPU runs `dot` in AVX-512.
fn has_simd(dot: Dot) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let base = std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw");
        match dot {
            Dot::U8S8 => base && std::arch::is_x86_feature_detected!("avx512vnni"),
            Dot::Bf16 => base && std::arch::is_x86_feature_detected!("avx512bf16"),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = dot;
        false
    }
}

/// Which micro-kernels run a conv.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kernel {
    Portable,
    /// `vpdpbusd` / `vdpbf16ps` on zmm registers.
    Avx512,
    /// AMX tiles ([`amx`]), the AVX-512 epilogue.
    Amx,
}

impl Kernel {
    /// The fastest this CPU (and process) runs for `dot`: AMX where granted and on
    /// ([`amx::set_enabled`]), else AVX-512, else the portable loops.
    fn best(dot: Dot) -> Kernel {
        match (has_simd(dot), amx::available()) {
            (true, true) => Kernel::Amx,
            (true, false) => Kernel::Avx512,
            _ => Kernel::Portable,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            Kernel::Avx512 => "avx512",
            Kernel::Amx => "amx",
        }
    }
}

/// Which micro-kernels the CPU runs now: `(int8, bf16)`, "amx", "avx512" or "portable".
pub fn kernels() -> (&'static str, &'static str) {
    (Kernel::best(Dot::U8S8).name(), Kernel::best(Dot::Bf16).name())
}

/// `Y = act(conv(X) + bias)` in INT8: `x [n_in × cin]` f32 is quantized here.
pub fn conv_int8(map: &KernelMap, x: &[f32], w: &Int8Conv, epi: &HostEpilogue<'_>) -> Vec<f32> {
    conv_int8_with(map, x, w, epi, Kernel::best(Dot::U8S8))
}

fn conv_int8_with(map: &KernelMap, x: &[f32], w: &Int8Conv, epi: &HostEpilogue<'_>, kernel: Kernel) -> Vec<f32> {
    let (cin, words, z) = (w.weights.cin, w.weights.words, w.zero_point);
    // Quantized rows, 4 channels a word (padding channels hold the zero point and meet zero
    // weights), then one zero row for missing neighbours.
    let mut xq = vec![w.zero_word(); (map.n_in + 1) * words];
    let inv = &w.inv_scale[..cin];
    xq.par_chunks_mut(words * QUANT_ROWS).zip(x.par_chunks(cin * QUANT_ROWS)).for_each(|(dst, rows)| {
        #[cfg(target_arch = "x86_64")]
        if super::dense::avx2_fma() {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { quantize_rows_avx2(dst, rows, cin, words, inv, z) };
        }
        quantize_rows(dst, rows, cin, words, inv, z);
    });
    let bias = epi.bias.map_or_else(|| vec![0.0; w.weights.cout], <[f32]>::to_vec);
    let epi = Epilogue { scale: Some(&w.out_scale), bias: &bias, residual: epi.residual, relu: relu(epi.act) };
    let conv = Packed { x: &xq, w: &w.weights, zero_sum: Some(&w.zero_sum) };
    run(map, &conv, Dot::U8S8, kernel, &epi)
}

/// Quantizes input rows `x [rows × cin]` into their words `dst [rows][words]`: channel `j`
/// in byte `j mod 4` of word `j / 4` (the bytes' memory order, as `u32::from_ne_bytes`
/// packs them); padding channels keep the zero point already there.
#[inline(always)]
fn quantize_rows(dst: &mut [u32], x: &[f32], cin: usize, words: usize, inv: &[f32], z: u8) {
    for (dst, row) in dst.chunks_exact_mut(words).zip(x.chunks_exact(cin)) {
        // SAFETY: the row's words viewed as their `4 · words` bytes (`u8` has no alignment).
        let bytes = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), 4 * words) };
        for ((b, &v), &s) in bytes[..cin].iter_mut().zip(row).zip(inv) {
            *b = quantize_u8(v, s, z);
        }
    }
}

/// [`quantize_rows`] 8 channels at a time in AVX2 (the build's baseline is SSE2, and the
/// compiler kept the saturating float → byte conversion scalar): the same operations in the
/// same order as [`quantize_u8`] (`max`/`min` with the bound first keep a NaN, as `clamp`
/// does), so the same bytes; the last `cin mod 8` channels through [`quantize_u8`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn quantize_rows_avx2(dst: &mut [u32], x: &[f32], cin: usize, words: usize, inv: &[f32], z: u8) {
    use std::arch::x86_64::*;
    // SAFETY (both): `__m256` is eight `f32`s.
    let vector = |v: &[f32]| -> __m256 { unsafe { std::mem::transmute::<[f32; 8], __m256>(v.try_into().expect("8")) } };
    let (magic, zf) = (_mm256_set1_ps(crate::backend::lowp::ROUNDING_MAGIC), _mm256_set1_ps(z as f32));
    let (lo, hi) = (_mm256_set1_ps(-512.0), _mm256_set1_ps(512.0));
    let (floor, ceil) = (_mm256_setzero_ps(), _mm256_set1_ps(255.0));
    let full = cin - cin % 8;
    for (dst, row) in dst.chunks_exact_mut(words).zip(x.chunks_exact(cin)) {
        // SAFETY: the row's words viewed as their `4 · words` bytes (`u8` has no alignment).
        let bytes = unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<u8>(), 4 * words) };
        for j in (0..full).step_by(8) {
            let v = _mm256_mul_ps(vector(&row[j..j + 8]), vector(&inv[j..j + 8]));
            let v = _mm256_min_ps(hi, _mm256_max_ps(lo, v));
            let q = _mm256_add_ps(_mm256_sub_ps(_mm256_add_ps(v, magic), magic), zf);
            let nan = _mm256_cmp_ps::<_CMP_UNORD_Q>(q, q);
            let q = _mm256_blendv_ps(_mm256_min_ps(ceil, _mm256_max_ps(floor, q)), zf, nan);
            // Whole numbers in [0, 255]: truncation is exact; then 32 → 16 → 8 bits.
            let i = _mm256_cvttps_epi32(q);
            let w = _mm_packus_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256::<1>(i));
            let b = _mm_cvtsi128_si64(_mm_packus_epi16(w, w)) as u64;
            bytes[j..j + 8].copy_from_slice(&b.to_le_bytes());
        }
        for ((b, &v), &s) in bytes[full..cin].iter_mut().zip(&row[full..]).zip(&inv[full..cin]) {
            *b = quantize_u8(v, s, z);
        }
    }
}

/// `Y = act(conv(X) + bias)` in BF16 with f32 accumulation.
pub fn conv_bf16(map: &KernelMap, x: &[f32], w: &Bf16Conv, epi: &HostEpilogue<'_>) -> Vec<f32> {
    conv_bf16_with(map, x, w, epi, Kernel::best(Dot::Bf16))
}

fn conv_bf16_with(map: &KernelMap, x: &[f32], w: &Bf16Conv, epi: &HostEpilogue<'_>, kernel: Kernel) -> Vec<f32> {
    let (cin, words) = (w.weights.cin, w.weights.words);
    let mut xb = vec![0u32; (map.n_in + 1) * words];
    xb.par_chunks_mut(words * QUANT_ROWS).zip(x.par_chunks(cin * QUANT_ROWS)).for_each(|(dst, rows)| {
        for (dst, row) in dst.chunks_exact_mut(words).zip(rows.chunks_exact(cin)) {
            for (j, &v) in row.iter().enumerate() {
                dst[j / 2] |= (to_bf16(v) as u32) << (16 * (j % 2));
            }
        }
    });
    let bias = epi.bias.map_or_else(|| vec![0.0; w.weights.cout], <[f32]>::to_vec);
    let epi = Epilogue { scale: None, bias: &bias, residual: epi.residual, relu: relu(epi.act) };
    let conv = Packed { x: &xb, w: &w.weights, zero_sum: None };
    run(map, &conv, Dot::Bf16, kernel, &epi)
}

fn relu(act: Activation) -> bool {
    match act {
        Activation::None | Activation::Gelu => false,
        Activation::Relu => true,
    }
}

/// Rows per task when quantizing or converting the input.
const QUANT_ROWS: usize = 512;

/// A conv's operands as the driver reads them.
struct Packed<'a> {
    /// `[n_in + 1][words]`: the input rows, then the zero row.
    x: &'a [u32],
    w: &'a PackedWeights,
    /// INT8: `[K][cout_p]`, what each present offset's zero points add.
    zero_sum: Option<&'a [i32]>,
}

/// What becomes of a row's accumulators: INT8 `f32(acc − zero)·scale + bias`, BF16
/// `acc + bias`, then the residual row, then the activation (the f32 convs' order).
struct Epilogue<'a> {
    /// INT8: per output, the factor of the integer sum; BF16: none (the sums are f32).
    scale: Option<&'a [f32]>,
    /// `[cout]`, zeros for a conv without bias.
    bias: &'a [f32],
    /// `[n_out × cout]`: a residual block's skip rows, added before the activation.
    residual: Option<&'a [f32]>,
    relu: bool,
}

impl Epilogue<'_> {
    /// Output row `o` from its accumulators `[cout_p]` and, for INT8, the tile's zero-point
    /// sums `[cout_p]`.
    #[inline(always)]
    fn row(&self, o: usize, acc: &[u32], zero: &[i32], out: &mut [f32]) {
        let n = out.len();
        let (acc, bias) = (&acc[..n], &self.bias[..n]);
        match self.scale {
            Some(scale) => {
                for ((((y, &a), &z), &s), &b) in out.iter_mut().zip(acc).zip(&zero[..n]).zip(&scale[..n]).zip(bias) {
                    // Two roundings, as NumPy's float32 does them (Rust never fuses them).
                    *y = (a as i32).wrapping_sub(z) as f32 * s + b;
                }
            }
            None => {
                for ((y, &a), &b) in out.iter_mut().zip(acc).zip(bias) {
                    *y = f32::from_bits(a) + b;
                }
            }
        }
        if let Some(res) = self.residual {
            out.iter_mut().zip(&res[o * n..(o + 1) * n]).for_each(|(y, r)| *y += r);
        }
        if self.relu {
            out.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// The driver shared by both precisions: parallel over chunks of the map's cached
/// [`TilePlan`] (micro-tiles of [`MR`] rows in bitmask-sorted order), each micro-tile
/// summing the offsets its rows use.
fn run(map: &KernelMap, p: &Packed<'_>, dot: Dot, kernel: Kernel, epi: &Epilogue<'_>) -> Vec<f32> {
    let (cout, cout_p, words) = (p.w.cout, p.w.cout_p, p.w.words);
    let mut y = vec![0.0f32; map.n_out * cout];
    if map.n_out == 0 || cout == 0 {
        return y;
    }
    debug_assert_eq!(p.x.len(), (map.n_in + 1) * words);
    debug_assert_eq!(p.w.w.len(), map.volume * words * cout_p);
    let plan = map.tile_plan(RowOrder::Sorted);
    let out = RowsPtr::new(&mut y, cout);
    let per_chunk = ROW_TILE / MR;
    // The AMX tiles read the weights padded for them, once per conv; narrow convs stay on
    // AVX-512 (see `amx::pays`).
    let kernel = if kernel == Kernel::Amx && !amx::pays(words, cout_p) { Kernel::Avx512 } else { kernel };
    let amx_w = (kernel == Kernel::Amx)
        .then(|| &p.w.tiles.get_or_init(|| amx::pad_weights(&p.w.w, p.w.volume, words, cout_p))[..]);
    let tile_dot = match dot {
        Dot::U8S8 => amx::TileDot::U8S8,
        Dot::Bf16 => amx::TileDot::Bf16,
    };
    (0..plan.tiles().div_ceil(per_chunk)).into_par_iter().for_each_init(
        || (vec![0u32; ROW_TILE * cout_p], vec![0i32; cout_p], amx_w.map(|_| amx::Gather::new(p.w.volume, words))),
        |(acc, zero, gather), c| {
            let tiles = c * per_chunk..((c + 1) * per_chunk).min(plan.tiles());
            let rows = Rows { plan: &plan, zero_row: map.n_in, tiles: tiles.clone() };
            if let (Some(w), Some(gather)) = (amx_w, gather.as_mut()) {
                let args = amx::TileArgs {
                    x: p.x,
                    words,
                    zero_row: map.n_in,
                    w,
                    volume: p.w.volume,
                    cout_p,
                    plan: &plan,
                    tiles: tiles.clone(),
                };
                amx::chunk(tile_dot, &args, gather, acc);
            } else if kernel == Kernel::Avx512 {
                simd_chunk(dot, p, &rows, acc);
            } else {
                for (i, t) in tiles.clone().enumerate() {
                    portable_tile(dot, p, &rows, t, &mut acc[i * MR * cout_p..(i + 1) * MR * cout_p]);
                }
            }
            let store = Store { plan: &plan, tiles, zero_sum: p.zero_sum, cout_p, epi, out };
            #[cfg(target_arch = "x86_64")]
            if super::dense::avx2_fma() {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { store.rows_avx2(acc, zero) };
            }
            store.rows(acc, zero);
        },
    );
    y
}

/// A chunk's epilogue: its micro-tiles' accumulators through [`Epilogue::row`] into their
/// output rows.
struct Store<'a> {
    plan: &'a TilePlan,
    tiles: std::ops::Range<usize>,
    zero_sum: Option<&'a [i32]>,
    cout_p: usize,
    epi: &'a Epilogue<'a>,
    out: RowsPtr,
}

impl Store<'_> {
    /// The same arithmetic 8 lanes wide (the build's baseline is SSE2; no FMA contraction
    /// either way, so the same bits): at 4 lanes the epilogue and the zero-point sums took
    /// about a third of an INT8 network's time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn rows_avx2(&self, acc: &[u32], zero: &mut [i32]) {
        self.rows(acc, zero);
    }

    #[inline(always)]
    fn rows(&self, acc: &[u32], zero: &mut [i32]) {
        let cout_p = self.cout_p;
        for (i, t) in self.tiles.clone().enumerate() {
            let (ks, _) = self.plan.tile(t);
            if let Some(zs) = self.zero_sum {
                zero.fill(0);
                for &k in ks {
                    let k = k as usize;
                    // Wrapping: the same sums (they fit i32), and a loop that vectorizes.
                    for (z, &s) in zero.iter_mut().zip(&zs[k * cout_p..(k + 1) * cout_p]) {
                        *z = z.wrapping_add(s);
                    }
                }
            }
            for (r, &o) in self.plan.tile_rows(t).iter().enumerate() {
                let acc = &acc[(i * MR + r) * cout_p..(i * MR + r + 1) * cout_p];
                // SAFETY: every output row appears once in the plan, so one tile owns it.
                let dst = unsafe { self.out.row_mut(o as usize) };
                self.epi.row(o as usize, acc, zero, dst);
            }
        }
    }
}

/// A chunk of a plan's micro-tiles, and the row a missing neighbour reads.
struct Rows<'a> {
    plan: &'a TilePlan,
    /// The zero row's index in the packed input (`n_in`).
    zero_row: usize,
    tiles: std::ops::Range<usize>,
}

impl Rows<'_> {
    /// The packed input row `i` reads (the zero row for an absent neighbour).
    #[inline]
    fn row(&self, i: u32) -> usize {
        if i == TilePlan::ABSENT { self.zero_row } else { i as usize }
    }
}

/// `acc [MR × cout_p] = Σ_{t} Σ_q dot(x[row(t, r)][q], w[ks[t]][q][·])` for micro-tile `t`
/// of the plan, portably.
fn portable_tile(dot: Dot, p: &Packed<'_>, rows: &Rows<'_>, t: usize, acc: &mut [u32]) {
    let (words, cout_p) = (p.w.words, p.w.cout_p);
    let (ks, inputs) = rows.plan.tile(t);
    let xoff: Vec<[usize; MR]> = inputs.iter().map(|idx| idx.map(|i| rows.row(i) * words)).collect();
    for r in 0..MR {
        let acc = &mut acc[r * cout_p..(r + 1) * cout_p];
        match dot {
            Dot::U8S8 => {
                let mut a32 = vec![0i32; cout_p];
                for (&k, off) in ks.iter().zip(&xoff) {
                    let k = k as usize;
                    for (q, &xw) in p.x[off[r]..off[r] + words].iter().enumerate() {
                        let xb = xw.to_ne_bytes();
                        let wr = &p.w.w[(k * words + q) * cout_p..(k * words + q + 1) * cout_p];
                        for (a, &ww) in a32.iter_mut().zip(wr) {
                            let wb = ww.to_ne_bytes();
                            let s: i32 = (0..4).map(|b| xb[b] as i32 * wb[b] as i8 as i32).sum();
                            *a = a.wrapping_add(s);
                        }
                    }
                }
                for (d, s) in acc.iter_mut().zip(a32) {
                    *d = s as u32;
                }
            }
            Dot::Bf16 => {
                let mut af = vec![0.0f32; cout_p];
                for (&k, off) in ks.iter().zip(&xoff) {
                    let k = k as usize;
                    for (q, &xw) in p.x[off[r]..off[r] + words].iter().enumerate() {
                        let (x0, x1) = (from_bf16(xw as u16), from_bf16((xw >> 16) as u16));
                        let wr = &p.w.w[(k * words + q) * cout_p..(k * words + q + 1) * cout_p];
                        for (a, &ww) in af.iter_mut().zip(wr) {
                            *a += x0 * from_bf16(ww as u16) + x1 * from_bf16((ww >> 16) as u16);
                        }
                    }
                }
                for (d, s) in acc.iter_mut().zip(af) {
                    *d = s.to_bits();
                }
            }
        }
    }
}

/// Every micro-tile of a chunk: column blocks outside, micro-tiles inside, so a block's
/// weights (`K × words × 32` words at most) stay in cache across the chunk's rows.
fn simd_chunk(dot: Dot, p: &Packed<'_>, rows: &Rows<'_>, acc: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        let (words, cout_p) = (p.w.words, p.w.cout_p);
        // The bounds every pointer in the kernels stays within: `x` holds the zero row and
        // every input row before it (`zero_row + 1` rows of `words`), each offset < K (`w`
        // holds K × words × cout_p), and `acc` holds a micro-tile of MR × cout_p per tile.
        assert!(cout_p % 16 == 0 && acc.len() >= rows.tiles.len() * MR * cout_p);
        // (The plan's offsets are < K and its inputs < n_in = zero_row or absent by its
        // construction, `TilePlan`.)
        assert!((rows.zero_row + 1) * words <= p.x.len() && p.w.w.len() >= p.w.volume * words * cout_p);
        let mut col = 0;
        while col < cout_p {
            // Column blocks of 32 outputs (16 accumulators: 8 rows × 2 vectors; with 3
            // vectors the 8 broadcasts no longer fit beside them and the loop spills), or 16.
            let nb = ((cout_p - col) / 16).min(2);
            for (i, t) in rows.tiles.clone().enumerate() {
                let (ks, inputs) = rows.plan.tile(t);
                let args = x86::Args {
                    x: p.x.as_ptr(),
                    inputs,
                    zero_row: rows.zero_row,
                    w: p.w.w.as_ptr(),
                    ks,
                    words,
                    cout_p,
                    col,
                    acc: acc[i * MR * cout_p..].as_mut_ptr(),
                };
                // SAFETY: bounds as asserted above and guaranteed by `TilePlan` (on a map of
                // the weights' volume, which the caller checked); the CPU features were
                // checked by `has_simd` before the caller chose this path.
                unsafe {
                    match (dot, nb) {
                        (Dot::U8S8, 2) => x86::tile_vnni::<2>(&args),
                        (Dot::U8S8, _) => x86::tile_vnni::<1>(&args),
                        (Dot::Bf16, 2) => x86::tile_bf16::<2>(&args),
                        (Dot::Bf16, _) => x86::tile_bf16::<1>(&args),
                    }
                }
            }
            col += 16 * nb;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (i, t) in rows.tiles.clone().enumerate() {
        let cout_p = p.w.cout_p;
        portable_tile(dot, p, rows, t, &mut acc[i * MR * cout_p..(i + 1) * MR * cout_p]);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{MR, TilePlan};

    /// A micro-kernel's operands: `x`, `w` and `acc` as in `super::Packed`, the tile's
    /// offsets `ks` and its rows' input rows per offset (`zero_row` for an absent one), the
    /// first output column.
    pub(super) struct Args<'a> {
        pub x: *const u32,
        pub inputs: &'a [[u32; MR]],
        pub zero_row: usize,
        pub w: *const u32,
        pub ks: &'a [u16],
        pub words: usize,
        pub cout_p: usize,
        pub col: usize,
        pub acc: *mut u32,
    }

    /// One micro-kernel per dot instruction: `MR` rows × `NB` vectors of 16 outputs from
    /// column `col`, accumulated in registers over every offset and input word.
    macro_rules! tile_kernel {
        ($name:ident, $features:literal, $dot:ident) => {
            /// # Safety
            /// The CPU has the enabled features; `x` holds `(zero_row + 1) × words` words
            /// and every input row other than `TilePlan::ABSENT` is below `zero_row`,
            /// `w + ks[t]·words·cout_p` holds `words × cout_p`, `acc` holds `MR × cout_p`
            /// writable words, and `col + 16·NB ≤ cout_p`.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name<const NB: usize>(a: &Args<'_>) {
                let row = |i: u32| {
                    let i = if i == TilePlan::ABSENT { a.zero_row } else { i as usize };
                    // SAFETY: the caller's contract.
                    unsafe { a.x.add(i * a.words) }
                };
                let mut c = [[_mm512_setzero_si512(); NB]; MR];
                for (t, (idx, &k)) in a.inputs.iter().zip(a.ks).enumerate() {
                    // SAFETY (every pointer below): the caller's contract.
                    let wk = unsafe { a.w.add(k as usize * a.words * a.cout_p + a.col) };
                    let xr: [*const u32; MR] = std::array::from_fn(|r| row(idx[r]));
                    // The next offset's rows are gathered from anywhere in X: fetch them
                    // while this one computes (hardware prefetchers cannot guess them).
                    if let Some(next) = a.inputs.get(t + 1) {
                        for &i in next {
                            let p = row(i);
                            for line in (0..a.words).step_by(16) {
                                // A prefetch never faults; the address is in bounds anyway.
                                _mm_prefetch::<_MM_HINT_T0>(unsafe { p.add(line) } as *const i8);
                            }
                        }
                    }
                    for q in 0..a.words {
                        let mut b = [_mm512_setzero_si512(); NB];
                        for (j, b) in b.iter_mut().enumerate() {
                            *b = unsafe { _mm512_loadu_si512(wk.add(q * a.cout_p + 16 * j) as *const __m512i) };
                        }
                        for r in 0..MR {
                            let v = _mm512_set1_epi32(unsafe { xr[r].add(q).read() } as i32);
                            for j in 0..NB {
                                c[r][j] = $dot(c[r][j], v, b[j]);
                            }
                        }
                    }
                }
                for (r, row) in c.iter().enumerate() {
                    for (j, v) in row.iter().enumerate() {
                        unsafe { _mm512_storeu_si512(a.acc.add(r * a.cout_p + a.col + 16 * j) as *mut __m512i, *v) };
                    }
                }
            }
        };
    }

    #[inline(always)]
    fn dpbusd(c: __m512i, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: only called from `tile_vnni`, compiled with these features.
        unsafe { _mm512_dpbusd_epi32(c, a, b) }
    }

    #[inline(always)]
    fn dpbf16(c: __m512i, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: only called from `tile_bf16`, compiled with these features; the casts
        // reinterpret 512 bits.
        unsafe {
            let a = std::mem::transmute::<__m512i, __m512bh>(a);
            let b = std::mem::transmute::<__m512i, __m512bh>(b);
            _mm512_castps_si512(_mm512_dpbf16_ps(_mm512_castsi512_ps(c), a, b))
        }
    }

    tile_kernel!(tile_vnni, "avx512f,avx512bw,avx512vnni", dpbusd);
    tile_kernel!(tile_bf16, "avx512f,avx512bw,avx512bf16", dpbf16);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::lowp::ActQuant;

    fn values(n: usize, seed: u32, lo: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 1000.0 + lo).collect()
    }

    /// The f32 conv the quantized ones approximate.
    fn reference(map: &KernelMap, x: &[f32], w: &[f32], cin: usize, cout: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; map.n_out * cout];
        for o in 0..map.n_out {
            for (k, &i) in map.row(o).iter().enumerate() {
                if i >= 0 {
                    for j in 0..cin {
                        for c in 0..cout {
                            y[o * cout + c] += x[i as usize * cin + j] * w[(k * cin + j) * cout + c];
                        }
                    }
                }
            }
        }
        y
    }

    fn rel_err(a: &[f32], b: &[f32]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|b| (*b as f64).powi(2)).sum();
        (num / den).sqrt()
    }

    /// The AVX2 quantization gives the bytes of the scalar one: ties (to even), values past
    /// the levels and past the clamp, −0, ±∞ and NaN, both zero points, channel counts with
    /// and without a partial vector, and leaves the padding bytes alone.
    #[test]
    fn vector_quantization_equals_the_scalar_one() {
        #[cfg(target_arch = "x86_64")]
        if crate::backend::cpu::dense::avx2_fma() {
            let special = [0.5, 1.5, 2.5, -0.5, -2.5, 127.5, 300.0, -300.0, 1e9, -1e9, -0.0, f32::INFINITY];
            for (cin, z) in [(19usize, 0u8), (24, 128), (5, 128), (64, 0)] {
                let words = cin.div_ceil(4);
                let rows = 37;
                let mut x = values(rows * cin, 17, -1.0);
                x.iter_mut().zip(special.iter().cycle()).step_by(3).for_each(|(v, s)| *v = *s * 0.01);
                x[7] = f32::NAN;
                x[cin + 2] = f32::NEG_INFINITY;
                let inv: Vec<f32> = (0..cin).map(|j| 50.0 + 13.0 * j as f32).collect();
                let pad = u32::from_ne_bytes([z; 4]);
                let (mut scalar, mut vector) = (vec![pad; rows * words], vec![pad; rows * words]);
                quantize_rows(&mut scalar, &x, cin, words, &inv, z);
                // SAFETY: the CPU has AVX2 (checked above).
                unsafe { quantize_rows_avx2(&mut vector, &x, cin, words, &inv, z) };
                assert_eq!(scalar, vector, "{cin} channels, zero point {z}");
                let bytes: Vec<u8> = scalar.iter().flat_map(|w| w.to_ne_bytes()).collect();
                assert!(bytes.contains(&0) && bytes.contains(&255) && bytes.contains(&z));
            }
        }
    }

    /// The kernels this CPU can run for `dot`, whatever [`amx::set_enabled`] says.
    fn kernels_here(dot: Dot) -> Vec<Kernel> {
        let mut k = vec![Kernel::Portable];
        if has_simd(dot) {
            k.push(Kernel::Avx512);
            if amx::granted() {
                k.push(Kernel::Amx);
            }
        }
        k
    }

    /// Every INT8 path (portable, AVX-512 VNNI, AMX) agrees bit for bit, and they approximate
    /// the f32 conv; BF16 agrees with f32 to its precision on every path. Shapes cover partial
    /// micro-tiles, vectors, 16-word blocks (cin 96: 24 INT8 words, 48 BF16 words) and AMX
    /// column passes (cout 96: four accumulator tiles, then two).
    #[test]
    fn quantized_convs_match_the_f32_conv() {
        let shapes = [(4, 16, 27, 0.0), (13, 40, 8, -0.5), (64, 96, 27, 0.0), (24, 64, 27, 0.0), (96, 80, 27, 0.0)];
        for (cin, cout, volume, lo) in shapes {
            let m = KernelMap::random(300, 203, volume, cin as u64);
            let x = values(300 * cin, 7, lo);
            let w = values(volume * cin * cout, 3, -0.5);
            let want = reference(&m, &x, &w, cin, cout);
            let absmax: Vec<f32> =
                (0..cin).map(|j| x.iter().skip(j).step_by(cin).fold(0.0f32, |a, v| a.max(v.abs()))).collect();
            let act = ActQuant::calibrate(&absmax, lo, &w, cout, Some(0.5));
            let q = Int8Conv::quantize(&w, volume, cin, cout, &act);
            let plain = HostEpilogue::default();
            let portable = conv_int8_with(&m, &x, &q, &plain, Kernel::Portable);
            let e = rel_err(&portable, &want);
            assert!(e < 0.02, "int8 {cin}→{cout} K{volume}: relative error {e}");
            for kernel in kernels_here(Dot::U8S8) {
                let got = conv_int8_with(&m, &x, &q, &plain, kernel);
                assert!(got.iter().zip(&portable).all(|(a, b)| a.to_bits() == b.to_bits()), "{kernel:?} ≠ portable");
            }
            // The residual and ReLU fused into the store give the bits of a pass after it.
            let bias = values(cout, 5, -0.5);
            let residual = values(203 * cout, 9, -0.5);
            let fused = HostEpilogue { bias: Some(&bias), residual: Some(&residual), act: Activation::Relu };
            let with_bias = HostEpilogue { bias: Some(&bias), ..plain };
            for kernel in kernels_here(Dot::U8S8) {
                let got = conv_int8_with(&m, &x, &q, &fused, kernel);
                let then = conv_int8_with(&m, &x, &q, &with_bias, kernel);
                let want: Vec<f32> = then.iter().zip(&residual).map(|(y, r)| (y + r).max(0.0)).collect();
                assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "fused residual ({kernel:?})");
                assert!(got.contains(&0.0) && got.iter().any(|v| *v > 0.0));
            }
            let b = Bf16Conv::pack(&w, volume, cin, cout);
            let portable = conv_bf16_with(&m, &x, &b, &plain, Kernel::Portable);
            for kernel in kernels_here(Dot::Bf16) {
                let y = conv_bf16_with(&m, &x, &b, &plain, kernel);
                let e = rel_err(&y, &want);
                assert!(e < 0.01, "bf16 ({kernel:?}) {cin}→{cout}: relative error {e}");
                // The same bf16 products (exact in f32), summed in another order.
                let e = rel_err(&y, &portable);
                assert!(e < 1e-5, "bf16 ({kernel:?}) {cin}→{cout}: {e} from the portable sums");
            }
        }
    }
}
