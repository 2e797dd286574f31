//! Intel AMX tiles for the INT8 and BF16 sparse convs (Sapphire Rapids and later).
//!
//! The same output-stationary micro-tiles as the AVX-512 kernels ([`super::lowp`]), two at a
//! time: per pair of [`MR`]-row micro-tiles (16 rows, an A tile's height) each offset of the
//! pair's union has its input rows gathered once into a small row-major buffer (tile loads
//! need equally spaced rows; a row whose micro-tile lacks the offset gets zeros). Then for
//! every block of 16 input words and every column block of 16 outputs one `tdpbusd` /
//! `tdpbf16ps` multiplies the `16 × 64`-byte A tile with the `16 × 64`-byte B tile straight
//! from the packed weights (their `[K][words][cout_p]` layout is already AMX's pair /
//! quad-interleaved B layout, padded here to whole blocks) into a `16 × 16` accumulator
//! tile, four accumulators per pass, three B tiles in turn so a load need not wait for the
//! product before. The accumulators go to the same `[MR × cout_p]`-per-micro-tile buffer
//! the AVX-512 kernels fill, so the epilogue is shared.
//!
//! INT8 sums are integers: the results are bit-identical to the VNNI kernel's. BF16 sums
//! are f32 in another order (AMX adds each 16-word block's products before the
//! accumulator), so they differ from the AVX-512 BF16 kernel's in the last bits.
//!
//! Linux hands out the tile registers' state only on request (`arch_prctl`
//! `ARCH_REQ_XCOMP_PERM`); [`available`] asks once per process and says no when the CPU, the
//! kernel or the request says no. Tile instructions are written as inline assembly: the
//! compiler's AMX intrinsics are not stable.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::backend::{MICRO_ROWS as MR, TilePlan};

/// Words (4 bytes) per tile row: one 64-byte A or B row.
pub(super) const BLOCK: usize = 16;
/// Output columns per accumulator tile.
const COLS: usize = 16;
/// Accumulator tiles per pass over a micro-tile's offsets (`tmm4`-`tmm7`).
const C_TILES: usize = 4;
/// Micro-tiles per tile product, and the A and accumulator tiles' rows.
const PAIR: usize = 2;
const ROWS: usize = PAIR * MR;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether the INT8 / BF16 convs use AMX where the CPU has it (the default); off, they run
/// the AVX-512 kernels, e.g. to compare the two (`scenetok bench sparse`).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether this process runs the tile kernels: the CPU has AMX-TILE, -INT8 and -BF16, the
/// kernel granted the tile state, and [`set_enabled`] did not turn them off.
pub fn available() -> bool {
    ENABLED.load(Ordering::Relaxed) && granted()
}

/// The CPU's AMX and the kernel's permission, asked once; `SCENETOK_AMX=off` (or `0`) in
/// the environment says no without asking (e.g. under a hypervisor that advertises AMX but
/// handles its state badly).
pub(super) fn granted() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| {
        if std::env::var("SCENETOK_AMX").is_ok_and(|v| matches!(v.as_str(), "off" | "0" | "false")) {
            return false;
        }
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        {
            // CPUID leaf 7, sub-leaf 0, EDX: bit 22 AMX-BF16, bit 24 AMX-TILE, bit 25 AMX-INT8.
            // Leaf 7 only where the CPU has it.
            let max = std::arch::x86_64::__cpuid(0).eax;
            if max < 7 {
                return false;
            }
            let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
            let cpu = edx & (1 << 22) != 0 && edx & (1 << 24) != 0 && edx & (1 << 25) != 0;
            // ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA (18): the process may use the tiles.
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: a plain syscall with integer arguments; a kernel without it says ENOSYS
            // or EINVAL, which reads as "no".
            cpu && unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) } == 0
        }
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        false
    })
}

/// Whether the tiles beat the AVX-512 kernels on a conv of `words` input words per row and
/// `cout_p` outputs: a tile product costs the same however much of its 16-word depth and
/// 16-column width is padding, and below half a block of input words (INT8 under 32 input
/// channels, BF16 under 16) or two column tiles the padding costs more than the tiles save
/// (`scenetok bench sparse` times both kernels: MinkUNet's narrow shipped width ran slower
/// in INT8 with every conv on the tiles).
pub(super) fn pays(words: usize, cout_p: usize) -> bool {
    2 * words >= BLOCK && cout_p >= 2 * COLS
}

/// Which tile product a conv runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum TileDot {
    /// `tdpbusd`: 4 × (u8 · s8) into an i32.
    U8S8,
    /// `tdpbf16ps`: 2 × (bf16 · bf16) into an f32.
    Bf16,
}

/// The weights as the tile loads read them: `[K][words_p][cout_p]` with `words_p` a multiple
/// of [`BLOCK`], the words past `words` zero (they meet the gathered rows' zero padding).
pub(super) fn pad_weights(w: &[u32], volume: usize, words: usize, cout_p: usize) -> Vec<u32> {
    let words_p = words.div_ceil(BLOCK) * BLOCK;
    let mut out = vec![0u32; volume * words_p * cout_p];
    for k in 0..volume {
        let src = &w[k * words * cout_p..(k + 1) * words * cout_p];
        out[k * words_p * cout_p..k * words_p * cout_p + words * cout_p].copy_from_slice(src);
    }
    out
}

/// A chunk's operands: `x [n_in + 1][words]` (the zero row last), the padded weights, the
/// chunk's micro-tiles.
pub(super) struct TileArgs<'a> {
    pub x: &'a [u32],
    pub words: usize,
    pub zero_row: usize,
    /// [`pad_weights`]' layout.
    pub w: &'a [u32],
    pub volume: usize,
    pub cout_p: usize,
    pub plan: &'a TilePlan,
    pub tiles: std::ops::Range<usize>,
}

/// A thread's gather buffer: a pair of micro-tiles' rows for every offset, `[K][ROWS][words_p]`,
/// zero past `words` (written once; the gathers never touch the padding).
pub(super) struct Gather {
    buf: Vec<u32>,
    words_p: usize,
}

impl Gather {
    pub fn new(volume: usize, words: usize) -> Self {
        let words_p = words.div_ceil(BLOCK) * BLOCK;
        Gather { buf: vec![0; volume * ROWS * words_p], words_p }
    }
}

/// `acc [tile i][MR][cout_p] = Σ_t Σ_q dot(x[row(t, r)][q], w[ks[t]][q][·])` for every
/// micro-tile of the chunk, on the tiles (the INT8 zero-point sums are the epilogue's, over
/// each micro-tile's own offsets).
///
/// # Panics
/// When the operands' sizes do not match each other (a caller's bug, not the data's).
pub(super) fn chunk(dot: TileDot, a: &TileArgs<'_>, gather: &mut Gather, acc: &mut [u32]) {
    let (words, cout_p, words_p) = (a.words, a.cout_p, gather.words_p);
    assert!(granted() && cout_p % COLS == 0 && words_p == words.div_ceil(BLOCK) * BLOCK);
    assert!(a.x.len() >= (a.zero_row + 1) * words && a.w.len() >= a.volume * words_p * cout_p);
    // A last unpaired micro-tile's partner rows land in the chunk's spare accumulator rows.
    assert!(gather.buf.len() >= a.volume * ROWS * words_p);
    assert!(acc.len() >= a.tiles.len().div_ceil(PAIR) * ROWS * cout_p);
    let config = TileConfig::new();
    // SAFETY: the CPU has AMX and the process was granted its state (`granted`, asserted).
    unsafe { x86::load_config(&config) };
    let mut ks: Vec<u16> = Vec::with_capacity(a.volume);
    // Two micro-tiles at a time: 16-row A and accumulator tiles (a product costs about the
    // same for 8 rows as for 16), over the union of the pair's offsets.
    for (pair, t) in a.tiles.clone().step_by(PAIR).enumerate() {
        let first = a.plan.tile(t);
        let second = (t + 1 < a.tiles.end).then(|| a.plan.tile(t + 1));
        ks.clear();
        merge_offsets(first.0, second.map_or(&[][..], |s| s.0), &mut ks);
        debug_assert!(ks.iter().all(|&k| (k as usize) < a.volume));
        assert!(ks.len() <= a.volume);
        // SAFETY: every row is ≤ the zero row (the plan's inputs are < n_in or absent), so
        // `words` words from it lie in `x` (asserted above); slot s < K holds ROWS rows of
        // `words_p ≥ words` words in the buffer (asserted above); AMX CPUs have AVX-512F.
        unsafe {
            let buf = gather.buf.as_mut_ptr();
            x86::gather(buf, words_p, a.x.as_ptr(), words, a.zero_row, &ks, first);
            x86::gather(
                buf.add(MR * words_p),
                words_p,
                a.x.as_ptr(),
                words,
                a.zero_row,
                &ks,
                second.unwrap_or((&[], &[])),
            );
        }
        // The next pair's rows come from anywhere in X: fetch them while this pair's
        // products run (hardware prefetchers cannot guess them).
        for next in (t + PAIR..(t + 2 * PAIR).min(a.tiles.end)).map(|u| a.plan.tile(u).1) {
            for &i in next.iter().flatten() {
                let row = if i == TilePlan::ABSENT { a.zero_row } else { i as usize };
                for line in (0..words).step_by(16) {
                    x86::prefetch(a.x[row * words + line..].as_ptr());
                }
            }
        }
        let out = &mut acc[pair * ROWS * cout_p..(pair + 1) * ROWS * cout_p];
        let mut col = 0;
        while col < cout_p {
            let nc = ((cout_p - col) / COLS).min(C_TILES);
            // SAFETY: the zeroed tiles are the pass's accumulators.
            unsafe { x86::zero_acc(nc) };
            for (s, &k) in ks.iter().enumerate() {
                for b in 0..words_p / BLOCK {
                    let a_tile = &gather.buf[s * ROWS * words_p + b * BLOCK..];
                    let b_tile = &a.w[(k as usize * words_p + b * BLOCK) * cout_p + col..];
                    // SAFETY: A reads ROWS rows of 64 bytes `words_p` words apart, inside the
                    // buffer (slot s < K, b·16 + 16 ≤ words_p); B reads 16 rows of `nc` × 64
                    // bytes `cout_p` words apart, inside the padded weights (k < K, the
                    // block's 16 words ≤ words_p, col + 16·nc ≤ cout_p).
                    unsafe {
                        x86::multiply(dot, nc, a_tile.as_ptr(), words_p * 4, b_tile.as_ptr(), cout_p * 4);
                    }
                }
            }
            // SAFETY: ROWS rows of nc × 16 values at `col`, `cout_p` apart, inside `out`.
            unsafe { x86::store_acc(nc, out[col..].as_mut_ptr(), cout_p * 4) };
            col += nc * COLS;
        }
    }
    // SAFETY: the tiles were configured above; release hands their state back.
    unsafe { x86::release() };
}

/// The sorted union of two sorted offset lists.
fn merge_offsets(a: &[u16], b: &[u16], out: &mut Vec<u16>) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let k = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        i += usize::from(a.get(i) == Some(&k));
        j += usize::from(b.get(j) == Some(&k));
        out.push(k);
    }
}

/// `ldtilecfg`'s 64-byte operand (palette 1): tmm0 the A tile (`ROWS` rows of 64 bytes),
/// tmm1-tmm3 B tiles (16 rows of 64 bytes), tmm4-tmm7 accumulators (`ROWS` rows of 16 × 4
/// bytes).
#[repr(C, align(64))]
struct TileConfig {
    bytes: [u8; 64],
}

impl TileConfig {
    fn new() -> Self {
        let mut bytes = [0u8; 64];
        bytes[0] = 1; // palette
        let mut set = |tile: usize, rows: usize, colsb: u16| {
            bytes[16 + 2 * tile..18 + 2 * tile].copy_from_slice(&colsb.to_le_bytes());
            bytes[48 + tile] = rows as u8;
        };
        set(0, ROWS, 64);
        set(1, BLOCK, 64);
        set(2, BLOCK, 64);
        set(3, BLOCK, 64);
        for t in 4..4 + C_TILES {
            set(t, ROWS, 64);
        }
        TileConfig { bytes }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::asm;

    use super::{MR, ROWS, TileConfig, TileDot, TilePlan};

    /// # Safety
    /// The process may use AMX.
    pub unsafe fn load_config(c: &TileConfig) {
        unsafe { asm!("ldtilecfg [{}]", in(reg) c.bytes.as_ptr(), options(nostack, readonly)) };
    }

    /// # Safety
    /// Tiles configured.
    pub unsafe fn release() {
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }

    /// Zeroes the first `n` accumulator tiles.
    ///
    /// # Safety
    /// Tiles configured.
    pub unsafe fn zero_acc(n: usize) {
        unsafe {
            asm!("tilezero tmm4", options(nostack, nomem));
            if n > 1 {
                asm!("tilezero tmm5", options(nostack, nomem));
            }
            if n > 2 {
                asm!("tilezero tmm6", options(nostack, nomem));
            }
            if n > 3 {
                asm!("tilezero tmm7", options(nostack, nomem));
            }
        }
    }

    /// Loads the A tile from `a` (rows `a_stride` bytes apart), then for each of the first `n`
    /// accumulators `c` the B tile of its 16 columns (`b + 16·c` words, rows `b_stride`
    /// bytes apart) and `acc_c += A · B`, three B tiles in turn so a load need not wait for
    /// the product before.
    ///
    /// # Safety
    /// Tiles configured; `a` readable for the A tile's rows, `b` for 16 rows of `n × 64`
    /// bytes.
    #[inline(always)]
    pub unsafe fn multiply(dot: TileDot, n: usize, a: *const u32, a_stride: usize, b: *const u32, b_stride: usize) {
        unsafe {
            asm!("tileloadd tmm0, [{a} + {s}*1]", a = in(reg) a, s = in(reg) a_stride, options(nostack, readonly));
            macro_rules! step {
                ($btile:literal, $ctile:literal, $c:expr) => {
                    asm!(concat!("tileloadd ", $btile, ", [{b} + {s}*1]"),
                        b = in(reg) b.add(16 * $c), s = in(reg) b_stride, options(nostack, readonly));
                    match dot {
                        TileDot::U8S8 => asm!(concat!("tdpbusd ", $ctile, ", tmm0, ", $btile), options(nostack, nomem)),
                        TileDot::Bf16 => asm!(concat!("tdpbf16ps ", $ctile, ", tmm0, ", $btile), options(nostack, nomem)),
                    }
                };
            }
            step!("tmm1", "tmm4", 0);
            if n > 1 {
                step!("tmm2", "tmm5", 1);
            }
            if n > 2 {
                step!("tmm3", "tmm6", 2);
            }
            if n > 3 {
                step!("tmm1", "tmm7", 3);
            }
        }
    }

    /// Asks for the cache line at `p` (a hint: it never faults).
    #[inline(always)]
    pub fn prefetch(p: *const u32) {
        // SAFETY: a prefetch reads nothing architecturally and never faults.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast()) };
    }

    /// Copies one micro-tile's `MR` input rows (`words` words each; the zero row for an
    /// absent neighbour, zeros for an offset the micro-tile lacks) for each offset of `ks`
    /// (a sorted superset of the micro-tile's sorted offsets) to slot s of `buf`, rows
    /// `words_p` apart within a slot and slots `ROWS` rows apart, in zmm registers (a
    /// `memmove` call per row cost more than the copy on these short rows).
    ///
    /// # Safety
    /// The CPU has AVX-512F (every AMX CPU has); `x` holds `zero_row + 1` rows of `words`
    /// and every input is below `zero_row` or absent; `buf` holds `ks.len()` slots of
    /// `ROWS` rows of `words_p ≥ words`, from the tile's first row.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn gather(
        buf: *mut u32,
        words_p: usize,
        x: *const u32,
        words: usize,
        zero_row: usize,
        ks: &[u16],
        (tile_ks, inputs): (&[u16], &[[u32; MR]]),
    ) {
        use std::arch::x86_64::*;
        // `words` words from `src` to `dst`, 16 at a time (the last vector masked); zeros
        // where there is no source.
        let copy = |dst: *mut u32, src: Option<*const u32>| {
            for j in (0..words).step_by(16) {
                let m = if words - j >= 16 { u16::MAX } else { ((1u32 << (words - j)) - 1) as u16 };
                let v = match src {
                    Some(src) => unsafe { _mm512_maskz_loadu_epi32(m, src.add(j).cast()) },
                    None => _mm512_setzero_si512(),
                };
                unsafe { _mm512_mask_storeu_epi32(dst.add(j).cast(), m, v) };
            }
        };
        let mut own = tile_ks.iter().zip(inputs).peekable();
        for (s, &k) in ks.iter().enumerate() {
            // An offset only the other micro-tile has gets zero words, which add nothing in
            // either precision (the zero row holds INT8's zero point, whose sums the
            // epilogue takes off for the micro-tile's own offsets only).
            let idx = own.next_if(|&(&tk, _)| tk == k).map(|(_, idx)| idx);
            for r in 0..MR {
                let src = idx.map(|idx| {
                    let row = if idx[r] == TilePlan::ABSENT { zero_row } else { idx[r] as usize };
                    unsafe { x.add(row * words) }
                });
                copy(unsafe { buf.add((s * ROWS + r) * words_p) }, src);
            }
        }
    }

    /// Stores the first `n` accumulators at `c + 16·i` words, rows `stride` bytes apart.
    ///
    /// # Safety
    /// Tiles configured; `c` writable for the tiles' rows of `n × 64` bytes.
    pub unsafe fn store_acc(n: usize, c: *mut u32, stride: usize) {
        unsafe {
            asm!("tilestored [{c} + {s}*1], tmm4", c = in(reg) c, s = in(reg) stride, options(nostack));
            if n > 1 {
                asm!("tilestored [{c} + {s}*1], tmm5", c = in(reg) c.add(16), s = in(reg) stride, options(nostack));
            }
            if n > 2 {
                asm!("tilestored [{c} + {s}*1], tmm6", c = in(reg) c.add(32), s = in(reg) stride, options(nostack));
            }
            if n > 3 {
                asm!("tilestored [{c} + {s}*1], tmm7", c = in(reg) c.add(48), s = in(reg) stride, options(nostack));
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    //! Never called: `granted` is false off x86-64.
    use super::{TileConfig, TileDot};
    pub unsafe fn load_config(_: &TileConfig) {}
    pub unsafe fn release() {}
    pub unsafe fn zero_acc(_: usize) {}
    pub unsafe fn multiply(_: TileDot, _: usize, _: *const u32, _: usize, _: *const u32, _: usize) {}
    pub unsafe fn store_acc(_: usize, _: *mut u32, _: usize) {}
    pub unsafe fn gather(
        _: *mut u32,
        _: usize,
        _: *const u32,
        _: usize,
        _: usize,
        _: &[u16],
        _: (&[u16], &[[u32; super::MR]]),
    ) {
    }
    pub fn prefetch(_: *const u32) {}
}
