//! Rotations and rigid transforms in Waymo's conventions.

use nalgebra::{Matrix3, Matrix4, Vector3};

use crate::scene::Transform;

/// `Rz(yaw) · Ry(pitch) · Rx(roll)`, as upstream `transform_utils.get_rotation_matrix`
/// (roll about x applied first, then pitch about y, then yaw about z).
pub fn rotation_from_rpy(roll: f64, pitch: f64, yaw: f64) -> Matrix3<f64> {
    let (sr, cr) = roll.sin_cos();
    let (sp, cp) = pitch.sin_cos();
    let (sy, cy) = yaw.sin_cos();
    // The product written out, so the per-pixel pose path costs no matrix multiplies.
    Matrix3::new(
        cy * cp,
        cy * sp * sr - sy * cr,
        cy * sp * cr + sy * sr,
        sy * cp,
        sy * sp * sr + cy * cr,
        sy * sp * cr - cy * sr,
        -sp,
        cp * sr,
        cp * cr,
    )
}

/// The rigid transform `p ↦ R·p + t`.
pub fn rigid_transform(rotation: &Matrix3<f64>, translation: &Vector3<f64>) -> Transform {
    let mut m = Matrix4::identity();
    m.fixed_view_mut::<3, 3>(0, 0).copy_from(rotation);
    m.fixed_view_mut::<3, 1>(0, 3).copy_from(translation);
    Transform(m)
}

/// The transform of a `[roll, pitch, yaw, x, y, z]` pose (the range-image pixel pose layout).
pub fn transform_from_rpy_xyz(roll: f64, pitch: f64, yaw: f64, x: f64, y: f64, z: f64) -> Transform {
    rigid_transform(&rotation_from_rpy(roll, pitch, yaw), &Vector3::new(x, y, z))
}

/// The 3×3 rotation (upper-left block) of a transform.
pub fn rotation_of(t: &Transform) -> Matrix3<f64> {
    t.0.fixed_view::<3, 3>(0, 0).into_owned()
}

/// Wraps an angle into `[-π, π)`.
pub fn normalize_angle(a: f64) -> f64 {
    use std::f64::consts::PI;
    let r = (a + PI).rem_euclid(2.0 * PI) - PI;
    // rem_euclid can round up to exactly 2π for tiny negative inputs.
    if r >= PI { r - 2.0 * PI } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::{FRAC_PI_2, PI};

    #[test]
    fn upstream_rotation_vector() {
        // transform_utils_test: get_rotation_matrix(π/2, π/2, π/2).
        let r = rotation_from_rpy(FRAC_PI_2, FRAC_PI_2, FRAC_PI_2);
        let want = Matrix3::new(0.0, 0.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0);
        assert!((r - want).abs().max() < 1e-12, "{r}");
    }

    #[test]
    fn rpy_is_rz_ry_rx() {
        let (r, p, y): (f64, f64, f64) = (0.3, -0.7, 2.1);
        let rx = Matrix3::new(1.0, 0.0, 0.0, 0.0, r.cos(), -r.sin(), 0.0, r.sin(), r.cos());
        let ry = Matrix3::new(p.cos(), 0.0, p.sin(), 0.0, 1.0, 0.0, -p.sin(), 0.0, p.cos());
        let rz = Matrix3::new(y.cos(), -y.sin(), 0.0, y.sin(), y.cos(), 0.0, 0.0, 0.0, 1.0);
        assert!((rotation_from_rpy(r, p, y) - rz * ry * rx).abs().max() < 1e-12);
    }

    #[test]
    fn transform_round_trip() {
        let t = transform_from_rpy_xyz(0.1, 0.2, 0.3, 1.0, -2.0, 3.0);
        let p = Vector3::new(4.0, 5.0, -6.0);
        let back = t.inverse_rigid().apply(&t.apply(&p));
        assert!((back - p).norm() < 1e-12);
        assert!((t.yaw() - 0.3).abs() < 1e-12);
    }

    #[test]
    fn normalize() {
        assert!((normalize_angle(3.0 * PI) + PI).abs() < 1e-12);
        assert!((normalize_angle(-0.5) + 0.5).abs() < 1e-15);
        assert!((normalize_angle(2.0 * PI + 0.25) - 0.25).abs() < 1e-12);
        assert!(normalize_angle(PI) < PI);
    }
}
