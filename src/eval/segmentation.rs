//! Semantic segmentation metrics: a confusion matrix over class ids, per-class IoU and mIoU,
//! as the Waymo LiDAR (23 classes) and camera (29 classes) segmentation challenges score them.
//!
//! Class 0 (`UNDEFINED`) is never scored: ground-truth points or pixels labelled 0 are skipped,
//! and a prediction of 0 on a labelled point counts as a miss of its true class. A class that
//! appears in neither the ground truth nor the predictions has no IoU and is left out of the
//! mean (upstream averages over the classes present).

use serde::Serialize;

use crate::scene::{CameraSegClass, LidarSegClass};

/// Counts of (ground truth, prediction) pairs over `classes` class ids `0..classes`.
///
/// Read back (a shard's partial result) only when its counts are `classes²`: a matrix of
/// another shape is a parse error, never a panic later.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(try_from = "RawConfusionMatrix")]
pub struct ConfusionMatrix {
    classes: usize,
    /// Row-major `[gt][pred]`.
    counts: Vec<u64>,
    /// Pairs whose ids were outside `0..classes` (reported, never silently folded in).
    out_of_range: u64,
}

/// A matrix as read, before its shape is checked.
#[derive(serde::Deserialize)]
struct RawConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
    out_of_range: u64,
}

impl TryFrom<RawConfusionMatrix> for ConfusionMatrix {
    type Error = String;
    fn try_from(r: RawConfusionMatrix) -> Result<Self, String> {
        if r.classes.checked_mul(r.classes) != Some(r.counts.len()) {
            return Err(format!(
                "a confusion matrix of {} classes needs {} counts, found {}",
                r.classes,
                r.classes.saturating_mul(r.classes),
                r.counts.len()
            ));
        }
        Ok(ConfusionMatrix { classes: r.classes, counts: r.counts, out_of_range: r.out_of_range })
    }
}

/// IoU of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassIou {
    pub class: String,
    /// `None` when the class is in neither ground truth nor predictions.
    pub iou: Option<f64>,
    /// Ground-truth points or pixels of this class.
    pub support: u64,
}

/// Per-class IoU and their mean.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentationReport {
    pub classes: Vec<ClassIou>,
    pub miou: f64,
    /// Share of labelled points whose prediction is right.
    pub accuracy: f64,
    pub scored: u64,
}

impl ConfusionMatrix {
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix { classes, counts: vec![0; classes * classes], out_of_range: 0 }
    }

    /// One for the 23 LiDAR classes.
    pub fn lidar() -> Self {
        Self::new(LidarSegClass::ALL.len())
    }

    /// One for the 29 camera classes.
    pub fn camera() -> Self {
        Self::new(CameraSegClass::ALL.len())
    }

    /// Adds one labelled element; ground truth 0 (undefined) is skipped.
    pub fn add(&mut self, gt: usize, pred: usize) {
        if gt == 0 {
            return;
        }
        if gt >= self.classes || pred >= self.classes {
            self.out_of_range += 1;
            return;
        }
        self.counts[gt * self.classes + pred] += 1;
    }

    /// Adds paired slices of class ids (any integer type), element by element.
    pub fn add_all<G: Copy + TryInto<usize>, P: Copy + TryInto<usize>>(&mut self, gt: &[G], pred: &[P]) {
        for (&g, &p) in gt.iter().zip(pred) {
            match (g.try_into(), p.try_into()) {
                (Ok(g), Ok(p)) => self.add(g, p),
                _ => self.out_of_range += 1,
            }
        }
    }

    /// Sums another matrix of the same size into this one.
    pub fn merge(&mut self, other: &ConfusionMatrix) {
        assert_eq!(self.classes, other.classes, "confusion matrices of different class counts");
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.out_of_range += other.out_of_range;
    }

    pub fn count(&self, gt: usize, pred: usize) -> u64 {
        self.counts[gt * self.classes + pred]
    }

    /// The class ids it counts: `0..classes`.
    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn out_of_range(&self) -> u64 {
        self.out_of_range
    }

    /// IoU = TP / (TP + FP + FN) of every class id (`None` for 0 and for absent classes).
    pub fn ious(&self) -> Vec<Option<f64>> {
        let n = self.classes;
        (0..n)
            .map(|c| {
                if c == 0 {
                    return None;
                }
                let tp = self.count(c, c);
                let fn_: u64 = (0..n).filter(|&p| p != c).map(|p| self.count(c, p)).sum();
                let fp: u64 = (1..n).filter(|&g| g != c).map(|g| self.count(g, c)).sum();
                let union = tp + fn_ + fp;
                (union > 0).then(|| tp as f64 / union as f64)
            })
            .collect()
    }

    /// The report with class names from `name(id)`.
    pub fn report(&self, name: impl Fn(usize) -> String) -> SegmentationReport {
        let ious = self.ious();
        let present: Vec<f64> = ious.iter().flatten().copied().collect();
        let miou = if present.is_empty() { 0.0 } else { present.iter().sum::<f64>() / present.len() as f64 };
        let scored: u64 = self.counts.iter().sum();
        let correct: u64 = (1..self.classes).map(|c| self.count(c, c)).sum();
        let classes = (1..self.classes)
            .map(|c| ClassIou {
                class: name(c),
                iou: ious[c],
                support: (0..self.classes).map(|p| self.count(c, p)).sum(),
            })
            .collect();
        SegmentationReport { classes, miou, accuracy: correct as f64 / scored.max(1) as f64, scored }
    }

    /// The report with the LiDAR class names.
    pub fn lidar_report(&self) -> SegmentationReport {
        self.report(|c| LidarSegClass::from_value(c as i64).map_or(format!("class {c}"), |k| k.name().to_string()))
    }

    /// The report with the camera class names.
    pub fn camera_report(&self) -> SegmentationReport {
        self.report(|c| CameraSegClass::from_value(c as i64).map_or(format!("class {c}"), |k| k.name().to_string()))
    }
}

impl SegmentationReport {
    /// A plain-text table, classes with support or predictions only.
    pub fn table(&self) -> String {
        let mut s = format!("{:<22} {:>8} {:>10}\n", "class", "IoU", "support");
        for c in self.classes.iter().filter(|c| c.iou.is_some()) {
            s += &format!("{:<22} {:>8.4} {:>10}\n", c.class, c.iou.unwrap_or(0.0), c.support);
        }
        s += &format!("{:<22} {:>8.4} {:>10}\n", "mIoU", self.miou, self.scored);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_counted_iou() {
        // gt:   1 1 1 2 2 0 3
        // pred: 1 1 2 2 1 2 0
        let mut m = ConfusionMatrix::new(4);
        m.add_all(&[1u8, 1, 1, 2, 2, 0, 3], &[1u8, 1, 2, 2, 1, 2, 0]);
        let iou = m.ious();
        // class 1: tp 2, fn 1 (→2), fp 1 (gt 2 → 1): 2/4
        assert_eq!(iou[1], Some(0.5));
        // class 2: tp 1, fn 1, fp 1 (the gt-0 pixel is skipped): 1/3
        assert!((iou[2].unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // class 3: tp 0, fn 1 (predicted undefined): 0
        assert_eq!(iou[3], Some(0.0));
        assert_eq!(iou[0], None);
        let r = m.report(|c| c.to_string());
        assert!((r.miou - (0.5 + 1.0 / 3.0 + 0.0) / 3.0).abs() < 1e-12);
        assert_eq!(r.scored, 6);
        assert!((r.accuracy - 3.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn absent_classes_leave_the_mean_and_bad_ids_are_counted() {
        let mut m = ConfusionMatrix::lidar();
        m.add_all(&[18i32, 18, 22], &[18i32, 18, 22]);
        m.add_all(&[-1i32, 40], &[1i32, 1]);
        let r = m.lidar_report();
        assert_eq!(r.miou, 1.0);
        assert_eq!(m.out_of_range(), 2);
        assert_eq!(r.classes.iter().filter(|c| c.iou.is_some()).count(), 2);
        assert_eq!(r.classes[17].class, "ROAD");
        let mut sum = ConfusionMatrix::lidar();
        sum.merge(&m);
        sum.merge(&m);
        assert_eq!(sum.count(18, 18), 4);
    }
}
