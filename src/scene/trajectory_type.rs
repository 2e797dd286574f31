//! WOMD trajectory types (`ClassifyTrack` in upstream `motion_metrics_utils.cc`, as
//! docs/motion-metrics.md#trajectory-types gives it): what an agent does between the current step and the
//! end of its track.

use serde::Serialize;

use crate::scene::AgentState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
pub enum TrajectoryType {
    Stationary = 0,
    Straight = 1,
    StraightLeft = 2,
    StraightRight = 3,
    LeftUTurn = 4,
    LeftTurn = 5,
    RightUTurn = 6,
    RightTurn = 7,
}

impl TrajectoryType {
    pub const ALL: [TrajectoryType; 8] = [
        TrajectoryType::Stationary,
        TrajectoryType::Straight,
        TrajectoryType::StraightLeft,
        TrajectoryType::StraightRight,
        TrajectoryType::LeftUTurn,
        TrajectoryType::LeftTurn,
        TrajectoryType::RightUTurn,
        TrajectoryType::RightTurn,
    ];
    pub fn name(self) -> &'static str {
        match self {
            TrajectoryType::Stationary => "STATIONARY",
            TrajectoryType::Straight => "STRAIGHT",
            TrajectoryType::StraightLeft => "STRAIGHT_LEFT",
            TrajectoryType::StraightRight => "STRAIGHT_RIGHT",
            TrajectoryType::LeftUTurn => "LEFT_U_TURN",
            TrajectoryType::LeftTurn => "LEFT_TURN",
            TrajectoryType::RightUTurn => "RIGHT_U_TURN",
            TrajectoryType::RightTurn => "RIGHT_TURN",
        }
    }
}

const MAX_SPEED_FOR_STATIONARY: f64 = 2.0;
const MAX_DISPLACEMENT_FOR_STATIONARY: f64 = 3.0;
const MAX_LATERAL_FOR_STRAIGHT: f64 = 2.5;
const MAX_HEADING_DIFF_FOR_STRAIGHT: f64 = std::f64::consts::PI / 6.0;

/// Wraps into [-π, π).
fn normalize(a: f64) -> f64 {
    let t = (a + std::f64::consts::PI).rem_euclid(2.0 * std::f64::consts::PI);
    t - std::f64::consts::PI
}

/// Classifies a track from step `current` to its last valid state after it; `None` when
/// the current state is invalid or nothing valid follows.
pub fn classify(states: &[AgentState], current: usize) -> Option<TrajectoryType> {
    let start = states.get(current).filter(|s| s.valid)?;
    let end = states.iter().skip(current + 1).rev().find(|s| s.valid)?;
    let (dx, dy) = (end.x - start.x, end.y - start.y);
    let final_displacement = dx.hypot(dy);
    let heading_diff = normalize(end.heading as f64 - start.heading as f64);
    let (sin, cos) = (-(start.heading as f64)).sin_cos();
    let (dx_n, dy_n) = (dx * cos - dy * sin, dx * sin + dy * cos);
    let speed = |s: &AgentState| (s.velocity_x as f64).hypot(s.velocity_y as f64);
    let max_speed = speed(start).max(speed(end));
    if max_speed < MAX_SPEED_FOR_STATIONARY && final_displacement < MAX_DISPLACEMENT_FOR_STATIONARY {
        return Some(TrajectoryType::Stationary);
    }
    if heading_diff.abs() < MAX_HEADING_DIFF_FOR_STRAIGHT {
        return Some(if dy_n.abs() < MAX_LATERAL_FOR_STRAIGHT {
            TrajectoryType::Straight
        } else if dy_n < 0.0 {
            TrajectoryType::StraightRight
        } else {
            TrajectoryType::StraightLeft
        });
    }
    if dy_n < 0.0 {
        return Some(if dx_n < 0.0 { TrajectoryType::RightUTurn } else { TrajectoryType::RightTurn });
    }
    Some(if dx_n < 0.0 { TrajectoryType::LeftUTurn } else { TrajectoryType::LeftTurn })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(x: f64, y: f64, heading: f32, vx: f32) -> AgentState {
        AgentState { x, y, heading, velocity_x: vx, valid: true, ..Default::default() }
    }

    fn track(end: AgentState) -> Vec<AgentState> {
        let mut v = vec![AgentState::default(); 10];
        v.push(st(0.0, 0.0, 0.0, end.velocity_x));
        v.push(end);
        v
    }

    #[test]
    fn each_type_from_its_defining_motion() {
        use std::f32::consts::PI;
        let cases = [
            (st(1.0, 0.5, 0.0, 0.5), TrajectoryType::Stationary),
            (st(40.0, 1.0, 0.1, 5.0), TrajectoryType::Straight),
            (st(40.0, 4.0, 0.0, 5.0), TrajectoryType::StraightLeft),
            (st(40.0, -4.0, 0.0, 5.0), TrajectoryType::StraightRight),
            (st(15.0, 15.0, PI / 2.0, 5.0), TrajectoryType::LeftTurn),
            (st(15.0, -15.0, -PI / 2.0, 5.0), TrajectoryType::RightTurn),
            (st(-3.0, 8.0, PI, 5.0), TrajectoryType::LeftUTurn),
            (st(-3.0, -8.0, -PI + 0.01, 5.0), TrajectoryType::RightUTurn),
        ];
        for (end, expected) in cases {
            assert_eq!(classify(&track(end), 10), Some(expected));
        }
    }

    #[test]
    fn invalid_current_or_no_future_is_none() {
        let mut t = track(st(40.0, 0.0, 0.0, 5.0));
        t[11].valid = false;
        assert_eq!(classify(&t, 10), None);
        t[10].valid = false;
        assert_eq!(classify(&t, 10), None);
    }
}
