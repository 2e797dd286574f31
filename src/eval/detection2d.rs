//! COCO-style 2-D detection AP against `camera_box`: per class, AP at IoU 0.5 and the mean over
//! IoU 0.50:0.05:0.95, with COCO's greedy matching (detections by falling score, each taking the
//! unmatched ground-truth box of highest IoU at or above the threshold), at most 100 detections
//! per image, and precision interpolated at 101 recall points (the `pycocotools` rule).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::scene::{Box2d, BoxType};

/// One image's boxes: ground truth and detections. An image is one camera of one frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ImageBoxes {
    pub ground_truth: Vec<(BoxType, Box2d)>,
    /// (class, box, score)
    pub detections: Vec<(BoxType, Box2d, f64)>,
}

/// AP of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassAp {
    pub class: String,
    pub ap50: f64,
    pub ap75: f64,
    /// Mean AP over IoU thresholds 0.50, 0.55, …, 0.95.
    pub ap: f64,
    pub ground_truth: usize,
    pub detections: usize,
}

/// Per-class AP and the means over classes that have ground truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection2dReport {
    pub classes: Vec<ClassAp>,
    pub map50: f64,
    pub map75: f64,
    pub map: f64,
}

/// COCO's per-image detection cap.
pub const MAX_DETECTIONS: usize = 100;

/// IoU of two axis-aligned boxes ([`Box2d::iou`]).
pub fn iou_2d(a: &Box2d, b: &Box2d) -> f64 {
    a.iou(b)
}

/// The ten COCO IoU thresholds.
pub fn coco_thresholds() -> [f64; 10] {
    std::array::from_fn(|i| 0.5 + 0.05 * i as f64)
}

/// Accumulates images, then computes AP per class.
#[derive(Debug, Default)]
pub struct Detection2dMetrics {
    images: Vec<ImageBoxes>,
}

impl Detection2dMetrics {
    pub fn add(&mut self, image: ImageBoxes) {
        self.images.push(image);
    }

    /// AP per class present in the ground truth or the detections.
    pub fn finish(&self) -> Detection2dReport {
        let mut classes: Vec<BoxType> = self
            .images
            .iter()
            .flat_map(|i| i.ground_truth.iter().map(|g| g.0).chain(i.detections.iter().map(|d| d.0)))
            .collect();
        classes.sort();
        classes.dedup();
        let thresholds = coco_thresholds();
        let mut out = Vec::new();
        for class in classes {
            let aps: Vec<f64> = thresholds.iter().map(|&t| self.class_ap(class, t)).collect();
            let ground_truth = self.images.iter().map(|i| i.ground_truth.iter().filter(|g| g.0 == class).count()).sum();
            let detections = self.images.iter().map(|i| i.detections.iter().filter(|d| d.0 == class).count()).sum();
            out.push(ClassAp {
                class: class.name().to_string(),
                ap50: aps[0],
                ap75: aps[5],
                ap: aps.iter().sum::<f64>() / aps.len() as f64,
                ground_truth,
                detections,
            });
        }
        let with_gt: Vec<&ClassAp> = out.iter().filter(|c| c.ground_truth > 0).collect();
        let mean = |f: fn(&ClassAp) -> f64| {
            if with_gt.is_empty() { 0.0 } else { with_gt.iter().map(|c| f(c)).sum::<f64>() / with_gt.len() as f64 }
        };
        Detection2dReport { map50: mean(|c| c.ap50), map75: mean(|c| c.ap75), map: mean(|c| c.ap), classes: out }
    }

    /// AP of one class at one IoU threshold.
    fn class_ap(&self, class: BoxType, threshold: f64) -> f64 {
        // (score, is true positive) over all images.
        let mut scored: Vec<(f64, bool)> = Vec::new();
        let mut total_gt = 0usize;
        for image in &self.images {
            let gts: Vec<&Box2d> = image.ground_truth.iter().filter(|g| g.0 == class).map(|g| &g.1).collect();
            total_gt += gts.len();
            let mut dets: Vec<(&Box2d, f64)> =
                image.detections.iter().filter(|d| d.0 == class).map(|d| (&d.1, d.2)).collect();
            // COCO sorts by score with a stable sort, keeping input order on ties.
            dets.sort_by(|a, b| b.1.total_cmp(&a.1));
            dets.truncate(MAX_DETECTIONS);
            let mut taken = vec![false; gts.len()];
            for (det, score) in dets {
                let mut best: Option<usize> = None;
                let mut best_iou = threshold.min(1.0 - 1e-10);
                for (g, gt) in gts.iter().enumerate() {
                    if taken[g] {
                        continue;
                    }
                    let iou = iou_2d(det, gt);
                    if iou >= best_iou {
                        best_iou = iou;
                        best = Some(g);
                    }
                }
                if let Some(g) = best {
                    taken[g] = true;
                }
                scored.push((score, best.is_some()));
            }
        }
        if total_gt == 0 {
            return 0.0;
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut tp, mut fp) = (0usize, 0usize);
        let mut recall = Vec::with_capacity(scored.len());
        let mut precision = Vec::with_capacity(scored.len());
        for (_, is_tp) in &scored {
            if *is_tp {
                tp += 1
            } else {
                fp += 1
            }
            recall.push(tp as f64 / total_gt as f64);
            precision.push(tp as f64 / (tp + fp) as f64);
        }
        // The precision envelope: the best precision at this recall or any higher one.
        for i in (0..precision.len().saturating_sub(1)).rev() {
            precision[i] = precision[i].max(precision[i + 1]);
        }
        // Precision at recall 0, 0.01, …, 1 (the first point reaching each recall level).
        let mut sum = 0.0;
        for k in 0..=100 {
            let r = k as f64 / 100.0;
            let i = recall.partition_point(|&x| x < r);
            if i < precision.len() {
                sum += precision[i];
            }
        }
        sum / 101.0
    }
}

impl Detection2dReport {
    pub fn table(&self) -> String {
        let mut s = format!("{:<12} {:>8} {:>8} {:>8} {:>6} {:>6}\n", "class", "AP", "AP50", "AP75", "gt", "det");
        for c in &self.classes {
            s += &format!(
                "{:<12} {:>8.4} {:>8.4} {:>8.4} {:>6} {:>6}\n",
                c.class, c.ap, c.ap50, c.ap75, c.ground_truth, c.detections
            );
        }
        s += &format!("{:<12} {:>8.4} {:>8.4} {:>8.4}\n", "mean", self.map, self.map50, self.map75);
        s
    }

    /// The classes as a map by name.
    pub fn by_class(&self) -> BTreeMap<&str, &ClassAp> {
        self.classes.iter().map(|c| (c.class.as_str(), c)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x0: f64, y0: f64, x1: f64, y1: f64) -> Box2d {
        Box2d::from_min_max(x0, y0, x1, y1)
    }

    #[test]
    fn perfect_detections_give_ap_one() {
        let mut m = Detection2dMetrics::default();
        for i in 0..3 {
            let g = b(10.0 * i as f64, 0.0, 10.0 * i as f64 + 8.0, 8.0);
            m.add(ImageBoxes {
                ground_truth: vec![(BoxType::Vehicle, g)],
                detections: vec![(BoxType::Vehicle, g, 0.9)],
            });
        }
        let r = m.finish();
        assert_eq!(r.classes.len(), 1);
        assert!((r.map50 - 1.0).abs() < 1e-12 && (r.map - 1.0).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_pr_curve() {
        // Two GT boxes; detections by score: TP, FP, TP. Precision 1, 1/2, 2/3 at recall
        // 1/2, 1/2, 1. Envelope: 1 for r ≤ 0.5 (51 points), 2/3 for r in (0.5, 1] (50 points).
        let g1 = b(0.0, 0.0, 10.0, 10.0);
        let g2 = b(20.0, 0.0, 30.0, 10.0);
        let mut m = Detection2dMetrics::default();
        m.add(ImageBoxes {
            ground_truth: vec![(BoxType::Pedestrian, g1), (BoxType::Pedestrian, g2)],
            detections: vec![
                (BoxType::Pedestrian, g1, 0.9),
                (BoxType::Pedestrian, b(50.0, 50.0, 60.0, 60.0), 0.8),
                (BoxType::Pedestrian, g2, 0.7),
            ],
        });
        let r = m.finish();
        let expected = (51.0 * 1.0 + 50.0 * 2.0 / 3.0) / 101.0;
        assert!((r.classes[0].ap50 - expected).abs() < 1e-12, "{}", r.classes[0].ap50);
    }

    #[test]
    fn iou_thresholds_and_duplicates() {
        // A box shifted by 2 of 10 px: IoU = 80/120 = 0.667, a TP at 0.50..0.65, an FP above.
        let g = b(0.0, 0.0, 10.0, 10.0);
        let d = b(2.0, 0.0, 12.0, 10.0);
        assert!((iou_2d(&g, &d) - 80.0 / 120.0).abs() < 1e-12);
        let mut m = Detection2dMetrics::default();
        m.add(ImageBoxes {
            ground_truth: vec![(BoxType::Cyclist, g)],
            detections: vec![(BoxType::Cyclist, d, 0.5), (BoxType::Cyclist, g, 0.4)],
        });
        let r = m.finish();
        // At 0.5..0.65 the shifted box (higher score) takes the GT, the exact copy is a
        // duplicate FP: AP = 1. Above 0.667 the copy matches after one FP: precision 1/2 → AP 0.5.
        assert!((r.classes[0].ap50 - 1.0).abs() < 1e-12);
        let expected = (4.0 * 1.0 + 6.0 * 0.5) / 10.0;
        assert!((r.classes[0].ap - expected).abs() < 1e-12, "{}", r.classes[0].ap);
    }

    #[test]
    fn wrong_class_and_no_gt() {
        let g = b(0.0, 0.0, 10.0, 10.0);
        let mut m = Detection2dMetrics::default();
        m.add(ImageBoxes { ground_truth: vec![(BoxType::Vehicle, g)], detections: vec![(BoxType::Sign, g, 0.9)] });
        let r = m.finish();
        let by = r.by_class();
        assert_eq!(by["VEHICLE"].ap50, 0.0);
        assert_eq!(by["SIGN"].ground_truth, 0);
        // The mean is over classes with ground truth only.
        assert_eq!(r.map50, 0.0);
    }
}
