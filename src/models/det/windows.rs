//! Window geometry of one stage's token grid: which token each window slot holds (after
//! padding the grid to whole windows and, for shifted windows, rolling it up-left by half a
//! window), the shifted windows' region masks and the importance score of every window.
//! Index lists only: the features never move for this bookkeeping.

use crate::backend::NO_MASK;

/// The mask value between tokens of different regions of a shifted window (Swin's −100:
/// `exp(−100)` is zero in f32 after the softmax's max subtraction).
const MASKED: f32 = -100.0;

/// One partition of an `h × w` grid into `window × window` windows.
#[derive(Debug, Clone, Copy)]
pub struct Partition {
    pub h: usize,
    pub w: usize,
    pub window: usize,
    /// 0 for regular windows, `window / 2` for shifted ones.
    pub shift: usize,
    /// The padded grid.
    pub hp: usize,
    pub wp: usize,
}

impl Partition {
    pub fn new(h: usize, w: usize, window: usize, shift: usize) -> Partition {
        Partition { h, w, window, shift, hp: h.next_multiple_of(window), wp: w.next_multiple_of(window) }
    }

    /// Windows along y and x.
    pub fn grid(&self) -> (usize, usize) {
        (self.hp / self.window, self.wp / self.window)
    }

    pub fn windows(&self) -> usize {
        let (a, b) = self.grid();
        a * b
    }

    /// The row-major grid position slot `t` of window `win` holds, or `None` for padding.
    pub fn token(&self, win: usize, t: usize) -> Option<usize> {
        let (_, nx) = self.grid();
        let py = (win / nx) * self.window + t / self.window;
        let px = (win % nx) * self.window + t % self.window;
        // The rolled grid holds at (py, px) what the padded grid holds at (py + s, px + s).
        let (y, x) = ((py + self.shift) % self.hp, (px + self.shift) % self.wp);
        (y < self.h && x < self.w).then_some(y * self.w + x)
    }

    /// The grid rows of `windows`' slots in order, padding as `pad`.
    pub fn rows(&self, windows: &[u32], pad: u32) -> Vec<u32> {
        let n = self.window * self.window;
        let mut out = Vec::with_capacity(windows.len() * n);
        for &win in windows {
            out.extend((0..n).map(|t| self.token(win as usize, t).map_or(pad, |r| r as u32)));
        }
        out
    }

    /// Per window, the L2 norm of `act` (one value per grid token) over its slots, padding
    /// counting as zero (§C.2's window score).
    pub fn scores(&self, act: &[f32]) -> Vec<f32> {
        let n = self.window * self.window;
        (0..self.windows())
            .map(|win| {
                let sq: f32 = (0..n).filter_map(|t| self.token(win, t)).map(|r| act[r] * act[r]).sum();
                sq.sqrt()
            })
            .collect()
    }

    /// The region masks of shifted windows: the distinct `[n × n]` masks stacked, and per
    /// window the index of its mask or [`NO_MASK`] (tokens all of one region). Regular
    /// windows (`shift = 0`) need none.
    pub fn masks(&self) -> (Vec<f32>, Vec<u32>) {
        let n = self.window * self.window;
        let (mut masks, mut kinds, mut seen) = (Vec::new(), Vec::with_capacity(self.windows()), Vec::<Vec<u8>>::new());
        if self.shift == 0 {
            return (masks, vec![NO_MASK; self.windows()]);
        }
        // Regions of the rolled grid: rows [0, hp − window), [hp − window, hp − shift),
        // [hp − shift, hp), and the same along x; tokens attend within their region only.
        let region = |p: usize, len: usize| {
            if p < len - self.window {
                0u8
            } else if p < len - self.shift {
                1
            } else {
                2
            }
        };
        let (_, nx) = self.grid();
        for win in 0..self.windows() {
            let ids: Vec<u8> = (0..n)
                .map(|t| {
                    let py = (win / nx) * self.window + t / self.window;
                    let px = (win % nx) * self.window + t % self.window;
                    region(py, self.hp) * 3 + region(px, self.wp)
                })
                .collect();
            if ids.iter().all(|&r| r == ids[0]) {
                kinds.push(NO_MASK);
                continue;
            }
            let kind = match seen.iter().position(|s| *s == ids) {
                Some(k) => k,
                None => {
                    masks.extend(ids.iter().flat_map(|&a| ids.iter().map(move |&b| if a == b { 0.0 } else { MASKED })));
                    seen.push(ids);
                    seen.len() - 1
                }
            };
            kinds.push(kind as u32);
        }
        (masks, kinds)
    }
}

/// The `keep` windows of highest score, best first (ties: the lower index first).
pub fn top_windows(scores: &[f32], keep: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..scores.len() as u32).collect();
    order.sort_by(|&a, &b| scores[b as usize].total_cmp(&scores[a as usize]).then(a.cmp(&b)));
    order.truncate(keep);
    order
}

/// Per token (row of `x [tokens × cols]`), the mean absolute activation.
pub fn mean_abs(x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks_exact(cols.max(1)).map(|r| r.iter().map(|v| v.abs()).sum::<f32>() / cols.max(1) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every grid token is in exactly one window of either partition; padding fills the rest.
    #[test]
    fn partitions_cover_the_grid_once() {
        for (h, w, shift) in [(14, 21, 0), (15, 9, 3), (5, 5, 3), (7, 7, 3)] {
            let p = Partition::new(h, w, 7, shift);
            let all: Vec<u32> = (0..p.windows() as u32).collect();
            let rows = p.rows(&all, u32::MAX);
            let mut seen = vec![0; h * w];
            for &r in rows.iter().filter(|&&r| r != u32::MAX) {
                seen[r as usize] += 1;
            }
            assert!(seen.iter().all(|&c| c == 1), "{h}×{w} shift {shift}");
            assert_eq!(rows.len() - h * w, p.hp * p.wp - h * w);
        }
    }

    /// A 14 × 14 grid shifted by 3: the interior window needs no mask, the right column, the
    /// bottom row and the corner each have their own (Swin's three masked cases).
    #[test]
    fn shifted_masks_separate_the_regions() {
        let p = Partition::new(14, 14, 7, 3);
        let (masks, kinds) = p.masks();
        assert_eq!(kinds[0], NO_MASK);
        let distinct: std::collections::BTreeSet<u32> = kinds[1..].iter().copied().collect();
        assert_eq!(distinct.len(), 3);
        assert_eq!(masks.len(), 3 * 49 * 49);
        // In the corner window, slot 0 (region 1,1) and slot 48 (region 2,2) are apart.
        let k = kinds[3] as usize;
        assert_eq!(masks[k * 49 * 49 + 48], MASKED);
        assert_eq!(masks[k * 49 * 49 + 1], 0.0);
        assert!(Partition::new(14, 14, 7, 0).masks().1.iter().all(|&k| k == NO_MASK));
    }

    #[test]
    fn top_windows_are_sorted_by_score() {
        assert_eq!(top_windows(&[0.5, 2.0, 1.0, 2.0], 3), vec![1, 3, 2]);
        assert_eq!(top_windows(&[1.0], 0), Vec::<u32>::new());
    }
}
