//! Waymo-style 3-D detection AP and APH (docs/detection-metrics.md; upstream `metrics_utils.cc`,
//! `detection_metrics.cc`): per object type and difficulty level, predictions above each score
//! cutoff (0.00, 0.01, …, 1.00) are matched to ground truth by a maximum-IoU assignment
//! (Hungarian) at the type's IoU threshold (vehicle 0.7; pedestrian, sign, cyclist 0.5) with
//! 3-D IoU; every cutoff gives one precision/recall point, and AP is the trapezoid area under the
//! precision envelope sampled at most `max_recall_delta` = 0.05 apart. APH weights every true
//! positive by its heading accuracy `1 - |Δheading|/π`.
//!
//! Difficulty: a ground-truth box keeps its `detection_difficulty_level`; an unset level becomes
//! LEVEL_2 for boxes with ≤ 5 LiDAR points and LEVEL_1 otherwise; boxes with no LiDAR point are
//! not evaluated (as in the Waymo challenge). LEVEL_2 counts every miss, LEVEL_1 only misses of
//! LEVEL_1 boxes; true and false positives count at both levels, as upstream does.

use serde::Serialize;

use super::assignment::max_weight_assignment;
use crate::geom::iou_3d;
use crate::scene::{Box3d, BoxType, DifficultyLevel, LidarBox};

/// One ground-truth box.
#[derive(Debug, Clone)]
pub struct GroundTruth3d {
    pub kind: BoxType,
    pub bbox: Box3d,
    pub difficulty: DifficultyLevel,
    pub num_points: i64,
}

impl GroundTruth3d {
    /// From a `lidar_box` label.
    pub fn from_label(b: &LidarBox) -> Self {
        GroundTruth3d {
            kind: b.kind,
            bbox: b.bbox,
            difficulty: b.detection_difficulty,
            num_points: b.num_lidar_points_in_box,
        }
    }

    /// The level this box is scored at, `None` when it is not evaluated.
    fn level(&self) -> Option<DifficultyLevel> {
        if self.num_points == 0 {
            return None;
        }
        Some(match self.difficulty {
            DifficultyLevel::Unknown if self.num_points <= 5 => DifficultyLevel::Level2,
            DifficultyLevel::Unknown => DifficultyLevel::Level1,
            d => d,
        })
    }
}

/// One predicted box.
#[derive(Debug, Clone)]
pub struct Prediction3d {
    pub kind: BoxType,
    pub bbox: Box3d,
    pub score: f64,
}

/// The matcher settings.
#[derive(Debug, Clone, Serialize)]
pub struct Detection3dConfig {
    /// (type, IoU threshold) for the scored types.
    pub iou_thresholds: Vec<(BoxType, f64)>,
    pub score_cutoffs: Vec<f64>,
    pub max_recall_delta: f64,
}

impl Default for Detection3dConfig {
    /// The example config of upstream's `compute_detection_metrics_main.cc`.
    fn default() -> Self {
        Detection3dConfig {
            iou_thresholds: vec![
                (BoxType::Vehicle, 0.7),
                (BoxType::Pedestrian, 0.5),
                (BoxType::Sign, 0.5),
                (BoxType::Cyclist, 0.5),
            ],
            score_cutoffs: (0..=100).map(|i| i as f64 / 100.0).collect(),
            max_recall_delta: 0.05,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    tp: u64,
    fp: u64,
    fn_l1: u64,
    fn_l2: u64,
    tp_heading: f64,
}

/// AP and APH of one type at one level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ap3d {
    pub object_type: String,
    pub level: String,
    pub ap: f64,
    pub aph: f64,
    pub ground_truth: u64,
}

/// Accumulates frames, then computes AP/APH.
#[derive(Debug)]
pub struct Detection3dMetrics {
    config: Detection3dConfig,
    /// `[type][cutoff]`
    counts: Vec<Vec<Counts>>,
    ground_truth: Vec<[u64; 2]>,
}

/// Heading accuracy `clamp(1 - d/π, 0, 1)` with `d` the wrapped heading difference.
pub fn heading_accuracy(pred: f64, gt: f64) -> f64 {
    let wrap = |a: f64| (a + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI) - std::f64::consts::PI;
    let mut d = (wrap(pred) - wrap(gt)).abs();
    if d > std::f64::consts::PI {
        d = 2.0 * std::f64::consts::PI - d;
    }
    (1.0 - d / std::f64::consts::PI).clamp(0.0, 1.0)
}

/// Area under the precision envelope of (precision, recall) points, sampled at most
/// `max_recall_delta` apart, with the recall-0 point taking the best real precision
/// (upstream `ComputeMeanAveragePrecision`).
pub fn mean_average_precision(precisions: &[f64], recalls: &[f64], max_recall_delta: f64) -> f64 {
    if precisions.is_empty() {
        return 0.0;
    }
    // Best precision per recall, recall 0 seeded with precision 1 (overridden below).
    let mut by_recall: Vec<(f64, f64)> = vec![(0.0, 1.0)];
    for (&p, &r) in precisions.iter().zip(recalls) {
        match by_recall.iter_mut().find(|(rr, _)| *rr == r) {
            Some(e) => e.1 = e.1.max(p),
            None => by_recall.push((r, p)),
        }
    }
    by_recall.sort_by(|a, b| a.0.total_cmp(&b.0));
    // From high recall to low: the running max precision, with extra points where recall jumps.
    let mut curve: Vec<(f64, f64)> = Vec::new(); // (precision, recall), recall descending
    let mut last_recall = by_recall[0].0;
    let mut max_precision: f64 = 0.0;
    for &(r, p) in by_recall.iter().rev() {
        while last_recall - r > max_recall_delta + 1e-6 {
            last_recall -= max_recall_delta;
            curve.push((max_precision, last_recall));
        }
        max_precision = max_precision.max(p);
        curve.push((max_precision, r));
        last_recall = r;
    }
    let n = curve.len();
    if n >= 2 {
        curve[n - 1].0 = curve[n - 2].0;
    }
    curve.windows(2).map(|w| 0.5 * (w[0].1 - w[1].1) * (w[0].0 + w[1].0)).sum()
}

impl Detection3dMetrics {
    pub fn new(config: Detection3dConfig) -> Self {
        let types = config.iou_thresholds.len();
        let cutoffs = config.score_cutoffs.len();
        Detection3dMetrics {
            counts: vec![vec![Counts::default(); cutoffs]; types],
            ground_truth: vec![[0; 2]; types],
            config,
        }
    }

    /// Adds one frame's ground truth and predictions (same frame of reference).
    pub fn add(&mut self, ground_truth: &[GroundTruth3d], predictions: &[Prediction3d]) {
        for (t, &(kind, threshold)) in self.config.iou_thresholds.iter().enumerate() {
            let gts: Vec<(&GroundTruth3d, DifficultyLevel)> =
                ground_truth.iter().filter(|g| g.kind == kind).filter_map(|g| g.level().map(|l| (g, l))).collect();
            let pds: Vec<&Prediction3d> = predictions.iter().filter(|p| p.kind == kind).collect();
            let level1 = gts.iter().filter(|(_, l)| *l == DifficultyLevel::Level1).count() as u64;
            self.ground_truth[t][0] += level1;
            self.ground_truth[t][1] += gts.len() as u64;
            let iou: Vec<Vec<f64>> =
                pds.iter().map(|p| gts.iter().map(|(g, _)| iou_3d(&p.bbox, &g.bbox)).collect()).collect();
            for (c, &cutoff) in self.config.score_cutoffs.iter().enumerate() {
                let kept: Vec<usize> = (0..pds.len()).filter(|&i| pds[i].score >= cutoff).collect();
                let weights: Vec<Vec<f64>> = kept
                    .iter()
                    .map(|&i| iou[i].iter().map(|&v| if v >= threshold { v } else { 0.0 }).collect())
                    .collect();
                let assigned = max_weight_assignment(&weights);
                let mut gt_matched = vec![false; gts.len()];
                let counts = &mut self.counts[t][c];
                for (k, g) in assigned.into_iter().enumerate() {
                    let p = kept[k];
                    match g.filter(|&g| iou[p][g] >= threshold && iou[p][g] > 0.0) {
                        Some(g) => {
                            gt_matched[g] = true;
                            counts.tp += 1;
                            counts.tp_heading += heading_accuracy(pds[p].bbox.heading, gts[g].0.bbox.heading);
                        }
                        None => counts.fp += 1,
                    }
                }
                for (g, (_, level)) in gts.iter().enumerate() {
                    if !gt_matched[g] {
                        counts.fn_l2 += 1;
                        if *level == DifficultyLevel::Level1 {
                            counts.fn_l1 += 1;
                        }
                    }
                }
            }
        }
    }

    /// AP and APH per type and level (types with no ground truth and no prediction left out).
    pub fn finish(&self) -> Vec<Ap3d> {
        let mut out = Vec::new();
        for (t, &(kind, _)) in self.config.iou_thresholds.iter().enumerate() {
            let counts = &self.counts[t];
            if self.ground_truth[t][1] == 0 && counts.iter().all(|c| c.tp + c.fp == 0) {
                continue;
            }
            for (li, level) in ["LEVEL_1", "LEVEL_2"].into_iter().enumerate() {
                let ratio = |num: f64, den: u64| if den == 0 { 0.0 } else { num / den as f64 };
                let fns = |c: &Counts| if li == 0 { c.fn_l1 } else { c.fn_l2 };
                let p: Vec<f64> = counts.iter().map(|c| ratio(c.tp as f64, c.tp + c.fp)).collect();
                let r: Vec<f64> = counts.iter().map(|c| ratio(c.tp as f64, c.tp + fns(c))).collect();
                let ph: Vec<f64> = counts.iter().map(|c| ratio(c.tp_heading, c.tp + c.fp)).collect();
                let rh: Vec<f64> = counts.iter().map(|c| ratio(c.tp_heading, c.tp + fns(c))).collect();
                out.push(Ap3d {
                    object_type: kind.name().to_string(),
                    level: level.to_string(),
                    ap: mean_average_precision(&p, &r, self.config.max_recall_delta),
                    aph: mean_average_precision(&ph, &rh, self.config.max_recall_delta),
                    ground_truth: self.ground_truth[t][li],
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use nalgebra::Vector3;

    use super::*;

    fn car(x: f64, heading: f64) -> Box3d {
        Box3d { center: Vector3::new(x, 0.0, 1.0), size: Vector3::new(4.0, 2.0, 1.5), heading }
    }

    fn gt(x: f64, level: DifficultyLevel, points: i64) -> GroundTruth3d {
        GroundTruth3d { kind: BoxType::Vehicle, bbox: car(x, 0.3), difficulty: level, num_points: points }
    }

    fn pd(x: f64, heading: f64, score: f64) -> Prediction3d {
        Prediction3d { kind: BoxType::Vehicle, bbox: car(x, heading), score }
    }

    fn vehicle(r: &[Ap3d], level: &str) -> (f64, f64) {
        let a = r.iter().find(|a| a.object_type == "VEHICLE" && a.level == level).unwrap();
        (a.ap, a.aph)
    }

    #[test]
    fn heading_accuracy_wraps() {
        assert!((heading_accuracy(0.1, 0.1) - 1.0).abs() < 1e-12);
        assert!(heading_accuracy(0.0, std::f64::consts::PI).abs() < 1e-12);
        // 3.1 and -3.1 are 0.083 rad apart across the wrap.
        let d = 2.0 * std::f64::consts::PI - 6.2;
        assert!((heading_accuracy(3.1, -3.1) - (1.0 - d / std::f64::consts::PI)).abs() < 1e-9);
    }

    #[test]
    fn envelope_area_hand_computed() {
        // One point (p=1, r=1): the curve is flat at 1 → 1.
        assert!((mean_average_precision(&[1.0], &[1.0], 0.05) - 1.0).abs() < 1e-9);
        // One point (p=0.5, r=0.5): 0.5 × 0.5 under the point; recall 0 takes p=0.5 → 0.25.
        assert!((mean_average_precision(&[0.5], &[0.5], 0.05) - 0.25).abs() < 1e-9);
        // Points (1, 0.5) and (0.5, 1): precision 1 on [0, 0.5]; the points interpolated every
        // 0.05 above 0.5 carry the running max seen from the high-recall side (0.5), so the
        // area is 0.5·1 + one trapezoid 0.5→0.55 of (1+0.5)/2 + 0.45·0.5.
        let got = mean_average_precision(&[1.0, 0.5], &[0.5, 1.0], 0.05);
        let want = 0.5 * 1.0 + 0.05 * 0.75 + 0.45 * 0.5;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        assert_eq!(mean_average_precision(&[], &[], 0.05), 0.0);
    }

    #[test]
    fn perfect_and_flipped_headings() {
        let gts = vec![gt(0.0, DifficultyLevel::Level1, 100), gt(10.0, DifficultyLevel::Level1, 100)];
        let mut m = Detection3dMetrics::new(Detection3dConfig::default());
        m.add(&gts, &[pd(0.0, 0.3, 0.9), pd(10.0, 0.3, 0.8)]);
        let (ap, aph) = vehicle(&m.finish(), "LEVEL_1");
        assert!((ap - 1.0).abs() < 1e-9 && (aph - 1.0).abs() < 1e-9);

        // Boxes turned by π: the same boxes for IoU (AP 1), the wrong way round (APH 0).
        let mut m = Detection3dMetrics::new(Detection3dConfig::default());
        m.add(&gts, &[pd(0.0, 0.3 + std::f64::consts::PI, 0.9), pd(10.0, 0.3 + std::f64::consts::PI, 0.8)]);
        let (ap, aph) = vehicle(&m.finish(), "LEVEL_1");
        assert!((ap - 1.0).abs() < 1e-9 && aph < 1e-9, "{ap} {aph}");
    }

    #[test]
    fn iou_threshold_and_levels() {
        // A 4 m car shifted 1 m: IoU = 3/5 = 0.6 < 0.7: a false positive and a miss.
        let mut m = Detection3dMetrics::new(Detection3dConfig::default());
        m.add(&[gt(0.0, DifficultyLevel::Level1, 100)], &[pd(1.0, 0.3, 0.9)]);
        assert_eq!(vehicle(&m.finish(), "LEVEL_1").0, 0.0);

        // One LEVEL_1 box found, one LEVEL_2 box (3 points, level unset) missed, one box with no
        // points ignored: recall 1 at LEVEL_1, 1/2 at LEVEL_2.
        let mut m = Detection3dMetrics::new(Detection3dConfig::default());
        let gts = [
            gt(0.0, DifficultyLevel::Level1, 50),
            gt(20.0, DifficultyLevel::Unknown, 3),
            gt(40.0, DifficultyLevel::Unknown, 0),
        ];
        m.add(&gts, &[pd(0.0, 0.3, 0.9)]);
        let r = m.finish();
        assert!((vehicle(&r, "LEVEL_1").0 - 1.0).abs() < 1e-9);
        assert!((vehicle(&r, "LEVEL_2").0 - 0.5).abs() < 1e-9, "{:?}", r);
        assert_eq!(r.iter().find(|a| a.level == "LEVEL_2").unwrap().ground_truth, 2);
    }

    #[test]
    fn low_scores_trade_precision_for_recall() {
        // Two cars; a TP at 0.9, an FP at 0.6, a TP at 0.3.
        let gts = vec![gt(0.0, DifficultyLevel::Level1, 100), gt(10.0, DifficultyLevel::Level1, 100)];
        let mut m = Detection3dMetrics::new(Detection3dConfig::default());
        m.add(&gts, &[pd(0.0, 0.3, 0.9), pd(30.0, 0.3, 0.6), pd(10.0, 0.3, 0.3)]);
        let (ap, _) = vehicle(&m.finish(), "LEVEL_1");
        // PR points: (1, .5) above 0.6, (.5, .5) at (0.3, 0.6], (2/3, 1) at ≤ 0.3.
        let want = mean_average_precision(&[1.0, 0.5, 2.0 / 3.0], &[0.5, 0.5, 1.0], 0.05);
        assert!((ap - want).abs() < 1e-9 && ap < 1.0 && ap > 0.8, "{ap} {want}");
    }
}
