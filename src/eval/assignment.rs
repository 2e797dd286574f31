//! Maximum-weight bipartite assignment (the Hungarian method, shortest augmenting paths with
//! potentials, O(n²m)), used by the Waymo-style 3-D detection matcher.

/// Assigns rows to columns maximising the summed weight; every row of a `rows ≤ cols` problem
/// gets a column (transposed otherwise). Returns the column of each row, `None` where the row
/// is left unassigned because there are fewer columns. Weights must be finite.
pub fn max_weight_assignment(weights: &[Vec<f64>]) -> Vec<Option<usize>> {
    let rows = weights.len();
    let cols = weights.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return vec![None; rows];
    }
    if rows > cols {
        let transposed: Vec<Vec<f64>> = (0..cols).map(|c| (0..rows).map(|r| weights[r][c]).collect()).collect();
        let col_to_row = max_weight_assignment(&transposed);
        let mut out = vec![None; rows];
        for (c, r) in col_to_row.into_iter().enumerate() {
            if let Some(r) = r {
                out[r] = Some(c);
            }
        }
        return out;
    }
    // Minimise cost = -weight. 1-based arrays with a virtual column 0, as in the classic method.
    let cost = |r: usize, c: usize| -weights[r - 1][c - 1];
    let (n, m) = (rows, cols);
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut owner = vec![0usize; m + 1]; // row owning each column; 0 = free
    let mut way = vec![0usize; m + 1];
    for row in 1..=n {
        owner[0] = row;
        let mut j0 = 0usize;
        let mut min_to = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = owner[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let reduced = cost(i0, j) - u[i0] - v[j];
                if reduced < min_to[j] {
                    min_to[j] = reduced;
                    way[j] = j0;
                }
                if min_to[j] < delta {
                    delta = min_to[j];
                    j1 = j;
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if owner[j0] == 0 {
                break;
            }
        }
        // Flip the augmenting path.
        loop {
            let j1 = way[j0];
            owner[j0] = owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; rows];
    for j in 1..=m {
        if owner[j] > 0 {
            out[owner[j] - 1] = Some(j - 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(w: &[Vec<f64>], a: &[Option<usize>]) -> f64 {
        a.iter().enumerate().filter_map(|(r, c)| c.map(|c| w[r][c])).sum()
    }

    /// Best total by trying every injective map (small sizes only).
    fn brute(w: &[Vec<f64>]) -> f64 {
        fn go(w: &[Vec<f64>], r: usize, used: &mut Vec<bool>) -> f64 {
            if r == w.len() {
                return 0.0;
            }
            let mut best = go(w, r + 1, used); // row unassigned
            for c in 0..used.len() {
                if !used[c] {
                    used[c] = true;
                    best = best.max(w[r][c] + go(w, r + 1, used));
                    used[c] = false;
                }
            }
            best
        }
        go(w, 0, &mut vec![false; w[0].len()])
    }

    #[test]
    fn matches_brute_force_on_random_problems() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let rows = rng.random_range(1..6);
            let cols = rng.random_range(1..6);
            let w: Vec<Vec<f64>> = (0..rows)
                .map(|_| (0..cols).map(|_| if rng.random_bool(0.3) { 0.0 } else { rng.random::<f64>() }).collect())
                .collect();
            let a = max_weight_assignment(&w);
            let mut seen = std::collections::HashSet::new();
            assert!(a.iter().flatten().all(|c| seen.insert(*c)), "a column used twice");
            assert!((total(&w, &a) - brute(&w)).abs() < 1e-9, "{w:?} {a:?}");
        }
    }

    #[test]
    fn greedy_is_not_optimal_here() {
        // Greedy takes (0,0)=0.9 then (1,1)=0.1; the optimum is 0.8 + 0.8.
        let w = vec![vec![0.9, 0.8], vec![0.8, 0.1]];
        assert_eq!(max_weight_assignment(&w), vec![Some(1), Some(0)]);
    }
}
