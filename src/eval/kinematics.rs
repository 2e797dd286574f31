//! How physical agent motion is: kinematic statistics of tracks (WOMD scenarios, tracks of a
//! v2 segment, the synthetic world's agents) computed one way for all of them, so generated
//! worlds can be held against real ones.
//!
//! Two views of every track, per agent type:
//! - **0.5 s statistics** from positions alone, differenced over [`SPAN`] steps (0.5 s at
//!   10 Hz), which real tracks support (their 10 Hz positions jitter by ~1.6 cm, so per-step
//!   second differences are noise). At step `i` with `p(i-5)`, `p(i)`, `p(i+5)` valid:
//!   velocity `(p(i+5) − p(i−5)) / 1 s`, acceleration `(p(i+5) − 2p(i) + p(i−5)) / (0.5 s)²`
//!   split into longitudinal (along the velocity) and lateral parts, jerk the difference of
//!   two accelerations 0.5 s apart over 0.5 s (its norm); over each 0.5 s, the yaw rate
//!   (heading change) and the angle between the mean heading and the displacement (the
//!   direction of travel). Only *moving* samples (speed ≥ [`MOVING`]) count, except for
//!   speeds.
//! - **Raw per-step values** from the labelled velocities and headings (exact for generated
//!   tracks): longitudinal / lateral acceleration and yaw rate between consecutive steps,
//!   the steps beyond [`Limits`] (what no vehicle, cyclist or person can do), and runs of
//!   alternating sign (a sawtooth speed or a heading zigzag).

use serde::Serialize;

use crate::scene::{AgentState, AgentType, Scenario, Track};

/// Steps over which positions are differenced (0.5 s at 10 Hz).
pub const SPAN: usize = 5;
/// Speed (m/s) from which a sample counts as moving.
pub const MOVING: f64 = 1.0;
/// Where a vehicle's box centre is ahead of its rear axle, as a share of its length (a car's
/// rear axle is ~1 m from its rear; a bus's, ~3 m of 12).
pub const SLIP_ARM: f64 = 0.27;
/// Steps of alternating sign that make a run ([`KinematicStats::alternating_runs`]).
pub const ALTERNATING_RUN: usize = 4;

/// What an agent of a type physically cannot exceed between two steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Limits {
    /// Deceleration, m/s² (tyre grip: ~0.9 g for cars).
    pub brake: f64,
    /// Longitudinal acceleration, m/s².
    pub accel: f64,
    /// Lateral acceleration, m/s².
    pub lateral: f64,
    /// Yaw rate while moving, rad/s (a car at its steering lock can only go slowly, and fast
    /// only on gentle curves: `min(v·κ_max, a_lat/v)` stays below ~1.3 rad/s).
    pub yaw_rate: f64,
    /// Speed, m/s.
    pub speed: f64,
}

impl Limits {
    pub fn of(agent_type: AgentType) -> Limits {
        match agent_type {
            AgentType::Pedestrian => Limits { brake: 5.0, accel: 5.0, lateral: 5.0, yaw_rate: 4.0, speed: 10.0 },
            AgentType::Cyclist => Limits { brake: 7.0, accel: 4.0, lateral: 6.0, yaw_rate: 2.0, speed: 16.0 },
            _ => Limits { brake: 9.5, accel: 5.0, lateral: 8.0, yaw_rate: 1.5, speed: 45.0 },
        }
    }
}

/// Statistics of one group of tracks (an agent type, or the ego alone).
#[derive(Debug, Clone, Default, Serialize)]
pub struct KinematicStats {
    pub tracks: usize,
    /// Moving 0.5 s samples.
    pub samples: usize,
    /// Speeds of every 0.5 s sample, moving or not (m/s).
    pub speed_p50: f64,
    pub speed_p99: f64,
    /// Share of 0.5 s samples that are stationary (speed < 0.2 m/s).
    pub share_stationary: f64,
    pub long_accel_p1: f64,
    pub long_accel_p99: f64,
    /// Share of moving samples with |longitudinal acceleration| > 4 m/s².
    pub share_long_accel_over_4: f64,
    pub lat_accel_p99: f64,
    pub yaw_rate_p99: f64,
    /// Share of moving samples turning faster than 1 rad/s.
    pub share_yaw_rate_over_1: f64,
    pub jerk_p99: f64,
    /// Degrees.
    pub heading_vs_travel_p99: f64,
    /// Degrees: the part of the angle between heading and travel that the turn does not
    /// explain (a box centre [`SLIP_ARM`]·length ahead of the rear axle of a kinematic
    /// bicycle moves at `atan(l·κ)` to the heading; κ from the heading change and distance
    /// over the same 0.5 s): crabbing, zigzag, label noise.
    pub unexplained_heading_p99: f64,
    /// Raw per-step extremes from the labelled velocities and headings.
    pub raw_long_accel_min: f64,
    pub raw_long_accel_max: f64,
    pub raw_lat_accel_max: f64,
    /// Norm of the acceleration vector, moving or not.
    pub raw_accel_max: f64,
    pub raw_yaw_rate_max: f64,
    /// Steps beyond [`Limits::of`] the type.
    pub steps_beyond_limits: usize,
    /// Runs of ≥ [`ALTERNATING_RUN`] consecutive steps whose longitudinal acceleration
    /// (|a| ≥ 0.5 m/s²) or yaw rate (≥ 0.1 rad/s) alternates in sign.
    pub alternating_runs: usize,
}

/// Statistics per agent type and of the ego.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KinematicReport {
    pub vehicle: KinematicStats,
    pub pedestrian: KinematicStats,
    pub cyclist: KinematicStats,
    pub ego: KinematicStats,
}

#[derive(Debug, Clone, Default)]
struct Samples {
    tracks: usize,
    speed: Vec<f64>,
    long: Vec<f64>,
    lat: Vec<f64>,
    yaw: Vec<f64>,
    jerk: Vec<f64>,
    heading: Vec<f64>,
    unexplained: Vec<f64>,
    raw_long_min: f64,
    raw_long_max: f64,
    raw_lat_max: f64,
    raw_accel_max: f64,
    raw_yaw_max: f64,
    beyond: usize,
    alternating: usize,
}

/// Pools samples of many tracks (several scenarios or worlds) before the percentiles.
#[derive(Debug, Clone, Default)]
pub struct KinematicSamples {
    vehicle: Samples,
    pedestrian: Samples,
    cyclist: Samples,
    ego: Samples,
}

impl KinematicSamples {
    /// Adds tracks sampled every `dt` seconds; `ego` is the index of the ego's track (it
    /// counts among the vehicles and on its own).
    pub fn add_tracks(&mut self, tracks: &[Track], ego: Option<usize>, dt: f64) {
        for (i, t) in tracks.iter().enumerate() {
            let limits = Limits::of(t.agent_type);
            let group = match t.agent_type {
                AgentType::Vehicle => &mut self.vehicle,
                AgentType::Pedestrian => &mut self.pedestrian,
                AgentType::Cyclist => &mut self.cyclist,
                _ => continue,
            };
            group.add(&t.states, dt, &limits);
            if Some(i) == ego {
                self.ego.add(&t.states, dt, &limits);
            }
        }
    }

    /// Adds a WOMD scenario (its SDC as the ego; the step from its timestamps).
    pub fn add_scenario(&mut self, s: &Scenario) {
        let dt = match s.timestamps_seconds.as_slice() {
            [a, .., b] if s.timestamps_seconds.len() > 1 => (b - a) / (s.timestamps_seconds.len() - 1) as f64,
            _ => 0.1,
        };
        self.add_tracks(&s.tracks, s.sdc_track_index, dt);
    }

    pub fn finish(&self) -> KinematicReport {
        KinematicReport {
            vehicle: self.vehicle.finish(),
            pedestrian: self.pedestrian.finish(),
            cyclist: self.cyclist.finish(),
            ego: self.ego.finish(),
        }
    }
}

/// The statistics of one set of tracks (see [`KinematicSamples::add_tracks`]).
pub fn kinematics(tracks: &[Track], ego: Option<usize>, dt: f64) -> KinematicReport {
    let mut s = KinematicSamples::default();
    s.add_tracks(tracks, ego, dt);
    s.finish()
}

fn xy(s: &AgentState) -> [f64; 2] {
    [s.x, s.y]
}

fn wrap(a: f64) -> f64 {
    crate::geom::normalize_angle(a)
}

/// Longitudinal and lateral parts of `a` against direction `v` (unit or zero).
fn split(a: [f64; 2], v: [f64; 2]) -> (f64, f64) {
    let n = v[0].hypot(v[1]);
    if n < 1e-9 {
        return (0.0, a[0].hypot(a[1]));
    }
    let (ux, uy) = (v[0] / n, v[1] / n);
    (a[0] * ux + a[1] * uy, (ux * a[1] - uy * a[0]).abs())
}

impl Samples {
    fn add(&mut self, states: &[AgentState], dt: f64, limits: &Limits) {
        self.tracks += 1;
        let n = states.len();
        let h = SPAN;
        let t = h as f64 * dt;
        let valid = |i: usize| states.get(i).is_some_and(|s| s.valid);
        let accel_at = |i: usize| -> Option<[f64; 2]> {
            if i < h || !valid(i - h) || !valid(i) || !valid(i + h) {
                return None;
            }
            let (a, b, c) = (xy(&states[i - h]), xy(&states[i]), xy(&states[i + h]));
            Some([(c[0] - 2.0 * b[0] + a[0]) / (t * t), (c[1] - 2.0 * b[1] + a[1]) / (t * t)])
        };
        for i in h..n.saturating_sub(h) {
            let Some(acc) = accel_at(i) else { continue };
            let (a, c) = (xy(&states[i - h]), xy(&states[i + h]));
            let vel = [(c[0] - a[0]) / (2.0 * t), (c[1] - a[1]) / (2.0 * t)];
            let speed = vel[0].hypot(vel[1]);
            self.speed.push(speed);
            if speed < MOVING {
                continue;
            }
            let (lon, lat) = split(acc, vel);
            self.long.push(lon);
            self.lat.push(lat);
            if let Some(next) = accel_at(i + h) {
                self.jerk.push(((next[0] - acc[0]) / t).hypot((next[1] - acc[1]) / t));
            }
        }
        // Over each 0.5 s: the heading change, and the direction of travel (the displacement)
        // against the mean of the two headings.
        for i in 0..n.saturating_sub(h) {
            if !valid(i) || !valid(i + h) {
                continue;
            }
            let (a, b) = (xy(&states[i]), xy(&states[i + h]));
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            if dx.hypot(dy) / t < MOVING {
                continue;
            }
            let (h0, h1) = (states[i].heading as f64, states[i + h].heading as f64);
            let turn = wrap(h1 - h0);
            self.yaw.push((turn / t).abs());
            let angle = wrap(h0 + turn / 2.0 - dy.atan2(dx)).abs();
            self.heading.push(angle.to_degrees());
            // A turning vehicle's box centre, ~0.3 of its length ahead of the rear axle,
            // moves at atan(l·κ) to its heading; what that does not explain is crabbing.
            let slip = (SLIP_ARM * states[i].length as f64 * turn.abs() / dx.hypot(dy)).atan();
            self.unexplained.push((angle - slip).max(0.0).to_degrees());
        }
        // Raw steps from the labelled velocities and headings.
        let mut long_signs: Vec<(usize, f64)> = Vec::new();
        let mut yaw_signs: Vec<(usize, f64)> = Vec::new();
        for i in 0..n.saturating_sub(1) {
            if !valid(i) || !valid(i + 1) {
                continue;
            }
            let (p, q) = (&states[i], &states[i + 1]);
            let (v0, v1) = ([p.velocity_x as f64, p.velocity_y as f64], [q.velocity_x as f64, q.velocity_y as f64]);
            let acc = [(v1[0] - v0[0]) / dt, (v1[1] - v0[1]) / dt];
            let mean = [(v0[0] + v1[0]) / 2.0, (v0[1] + v1[1]) / 2.0];
            let speed = mean[0].hypot(mean[1]);
            let norm = acc[0].hypot(acc[1]);
            self.raw_accel_max = self.raw_accel_max.max(norm);
            let mut beyond = v1[0].hypot(v1[1]) > limits.speed;
            if speed >= MOVING {
                let (lon, lat) = split(acc, mean);
                let yaw = wrap(q.heading as f64 - p.heading as f64) / dt;
                self.raw_long_min = self.raw_long_min.min(lon);
                self.raw_long_max = self.raw_long_max.max(lon);
                self.raw_lat_max = self.raw_lat_max.max(lat);
                self.raw_yaw_max = self.raw_yaw_max.max(yaw.abs());
                beyond |= lon < -limits.brake || lon > limits.accel || lat > limits.lateral;
                beyond |= yaw.abs() > limits.yaw_rate;
                long_signs.push((i, lon));
                yaw_signs.push((i, yaw));
            } else {
                beyond |= norm > limits.brake.max(limits.lateral);
            }
            self.beyond += beyond as usize;
        }
        self.alternating += alternating_runs(&long_signs, 0.5) + alternating_runs(&yaw_signs, 0.1);
    }

    fn finish(&self) -> KinematicStats {
        let share = |v: &[f64], f: &dyn Fn(f64) -> bool| {
            if v.is_empty() { 0.0 } else { v.iter().filter(|&&x| f(x)).count() as f64 / v.len() as f64 }
        };
        KinematicStats {
            tracks: self.tracks,
            samples: self.long.len(),
            speed_p50: percentile(&self.speed, 50.0),
            speed_p99: percentile(&self.speed, 99.0),
            share_stationary: share(&self.speed, &|x| x < 0.2),
            long_accel_p1: percentile(&self.long, 1.0),
            long_accel_p99: percentile(&self.long, 99.0),
            share_long_accel_over_4: share(&self.long, &|x| x.abs() > 4.0),
            lat_accel_p99: percentile(&self.lat, 99.0),
            yaw_rate_p99: percentile(&self.yaw, 99.0),
            share_yaw_rate_over_1: share(&self.yaw, &|x| x > 1.0),
            jerk_p99: percentile(&self.jerk, 99.0),
            heading_vs_travel_p99: percentile(&self.heading, 99.0),
            unexplained_heading_p99: percentile(&self.unexplained, 99.0),
            raw_long_accel_min: self.raw_long_min,
            raw_long_accel_max: self.raw_long_max,
            raw_lat_accel_max: self.raw_lat_max,
            raw_accel_max: self.raw_accel_max,
            raw_yaw_rate_max: self.raw_yaw_max,
            steps_beyond_limits: self.beyond,
            alternating_runs: self.alternating,
        }
    }
}

/// Runs of ≥ [`ALTERNATING_RUN`] consecutive steps (by step index) whose values alternate in
/// sign with magnitude ≥ `threshold`.
fn alternating_runs(values: &[(usize, f64)], threshold: f64) -> usize {
    let mut runs = 0;
    let mut len = 0;
    let mut prev: Option<(usize, f64)> = None;
    for &(i, x) in values {
        let strong = x.abs() >= threshold;
        len = match prev {
            Some((j, y)) if strong && j + 1 == i && y.abs() >= threshold && x.signum() != y.signum() => len + 1,
            _ if strong => 1,
            _ => 0,
        };
        if len == ALTERNATING_RUN {
            runs += 1;
        }
        prev = Some((i, x));
    }
    runs
}

/// Linear-interpolated percentile (`q` in 0..=100); 0 for no samples.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let pos = (q / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// A Markdown table of the statistics, one column per report (e.g. real, then generated).
pub fn table(columns: &[(&str, &KinematicReport)]) -> String {
    type Row = (&'static str, fn(&KinematicReport) -> String);
    let rows: [Row; 18] = [
        ("vehicle longitudinal accel p1 / p99 (0.5 s), m/s²", |r| {
            format!("{:.1} / {:.1}", r.vehicle.long_accel_p1, r.vehicle.long_accel_p99)
        }),
        ("vehicle share of \\|a_lon\\| > 4 m/s²", |r| format!("{:.1}%", 100.0 * r.vehicle.share_long_accel_over_4)),
        ("vehicle yaw rate p99 (rad/s) / share > 1 rad/s", |r| {
            format!("{:.2} / {:.1}%", r.vehicle.yaw_rate_p99, 100.0 * r.vehicle.share_yaw_rate_over_1)
        }),
        ("vehicle lateral accel p99, m/s²", |r| format!("{:.1}", r.vehicle.lat_accel_p99)),
        ("vehicle jerk p99, m/s³", |r| format!("{:.1}", r.vehicle.jerk_p99)),
        ("vehicle heading vs direction of travel p99", |r| format!("{:.1}°", r.vehicle.heading_vs_travel_p99)),
        ("… of it not explained by turning (slip of the box centre), p99", |r| {
            format!("{:.1}°", r.vehicle.unexplained_heading_p99)
        }),
        ("vehicle speed p50 / p99, m/s", |r| format!("{:.1} / {:.1}", r.vehicle.speed_p50, r.vehicle.speed_p99)),
        ("ego lateral accel p99, m/s²", |r| format!("{:.1}", r.ego.lat_accel_p99)),
        ("ego speed p50 / p99, m/s", |r| format!("{:.1} / {:.1}", r.ego.speed_p50, r.ego.speed_p99)),
        ("pedestrian speed p50 / p99, m/s", |r| {
            format!("{:.1} / {:.1}", r.pedestrian.speed_p50, r.pedestrian.speed_p99)
        }),
        ("pedestrian longitudinal accel p1 / p99 (0.5 s)", |r| {
            format!("{:.1} / {:.1}", r.pedestrian.long_accel_p1, r.pedestrian.long_accel_p99)
        }),
        ("cyclist speed p50 / p99, m/s", |r| format!("{:.1} / {:.1}", r.cyclist.speed_p50, r.cyclist.speed_p99)),
        ("vehicle raw accel min / max (labels), m/s²", |r| {
            format!("{:.1} / {:.1}", r.vehicle.raw_long_accel_min, r.vehicle.raw_long_accel_max)
        }),
        ("vehicle raw yaw rate max (labels), rad/s", |r| format!("{:.2}", r.vehicle.raw_yaw_rate_max)),
        ("pedestrian raw \\|a\\| max (labels), m/s²", |r| format!("{:.1}", r.pedestrian.raw_accel_max)),
        ("steps beyond physical limits (veh / ped / cyc)", |r| {
            format!(
                "{} / {} / {}",
                r.vehicle.steps_beyond_limits, r.pedestrian.steps_beyond_limits, r.cyclist.steps_beyond_limits
            )
        }),
        ("alternating-sign runs (veh / ped / cyc)", |r| {
            format!(
                "{} / {} / {}",
                r.vehicle.alternating_runs, r.pedestrian.alternating_runs, r.cyclist.alternating_runs
            )
        }),
    ];
    let mut out = String::from("| |");
    for (name, _) in columns {
        out.push_str(&format!(" {name} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(columns.len()));
    out.push('\n');
    for (label, f) in rows {
        out.push_str(&format!("| {label} |"));
        for (_, r) in columns {
            out.push_str(&format!(" {} |", f(r)));
        }
        out.push('\n');
    }
    let counts = columns
        .iter()
        .map(|(name, r)| {
            format!(
                "{name}: {} vehicles ({} moving samples), {} pedestrians, {} cyclists",
                r.vehicle.tracks, r.vehicle.samples, r.pedestrian.tracks, r.cyclist.tracks
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    out.push_str(&format!("\n{counts}\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(agent_type: AgentType, pts: &[(f64, f64, f64)], dt: f64) -> Track {
        let states = pts
            .iter()
            .enumerate()
            .map(|(i, &(x, y, h))| {
                // Forward differences (the last step backward).
                let j = i.min(pts.len() - 2);
                let ((px, py, _), (nx, ny, _)) = (pts[j], pts[j + 1]);
                let span = dt;
                AgentState {
                    x,
                    y,
                    heading: h as f32,
                    velocity_x: ((nx - px) / span) as f32,
                    velocity_y: ((ny - py) / span) as f32,
                    valid: true,
                    ..Default::default()
                }
            })
            .collect();
        Track { id: 1, source_id: "a".into(), agent_type, states }
    }

    #[test]
    fn constant_acceleration_and_a_circle() {
        // 2 m/s² from 5 m/s along x: every longitudinal sample is 2, lateral 0.
        let dt = 0.1;
        let pts: Vec<_> = (0..60)
            .map(|i| {
                let t = i as f64 * dt;
                (5.0 * t + t * t, 0.0, 0.0)
            })
            .collect();
        let r = kinematics(&[track(AgentType::Vehicle, &pts, dt)], None, dt);
        assert!((r.vehicle.long_accel_p1 - 2.0).abs() < 1e-6 && (r.vehicle.long_accel_p99 - 2.0).abs() < 1e-6);
        assert!(r.vehicle.lat_accel_p99 < 1e-6 && r.vehicle.jerk_p99 < 1e-6);
        assert_eq!((r.vehicle.steps_beyond_limits, r.vehicle.alternating_runs), (0, 0));
        // A circle of radius 20 m at 10 m/s: lateral 5 m/s², yaw rate 0.5 rad/s, heading along.
        let pts: Vec<_> = (0..60)
            .map(|i| {
                let a = i as f64 * dt * 0.5;
                (20.0 * a.sin(), 20.0 - 20.0 * a.cos(), a)
            })
            .collect();
        let r = kinematics(&[track(AgentType::Vehicle, &pts, dt)], Some(0), dt);
        // The chord-based second difference of a circle: 4·R·sin²(ωT/2)/T² ≈ 4.97.
        assert!((r.ego.lat_accel_p99 - 5.0).abs() < 0.1, "{}", r.ego.lat_accel_p99);
        assert!((r.vehicle.yaw_rate_p99 - 0.5).abs() < 1e-3 && r.vehicle.heading_vs_travel_p99 < 0.1);
        assert!(r.vehicle.long_accel_p99.abs() < 1e-6);
    }

    #[test]
    fn sawtooth_and_zigzag_are_caught() {
        let dt = 0.1;
        // Speed alternating 3.3 / 1.2 m/s and heading swinging ±0.5 rad every step.
        let mut x = 0.0;
        let pts: Vec<_> = (0..40)
            .map(|i| {
                x += if i % 2 == 0 { 0.33 } else { 0.12 };
                (x, 0.0, if i % 2 == 0 { 0.5 } else { -0.5 })
            })
            .collect();
        let r = kinematics(&[track(AgentType::Vehicle, &pts, dt)], None, dt);
        assert!(r.vehicle.alternating_runs >= 2, "{r:?}");
        assert!(r.vehicle.steps_beyond_limits > 10);
        assert!(r.vehicle.raw_yaw_rate_max > 9.0);
        assert_eq!(alternating_runs(&[(0, 1.0), (1, -1.0), (2, 1.0), (4, -1.0), (5, 1.0)], 0.5), 0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
    }
}
