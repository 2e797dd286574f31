//! Agents with behaviour on a [`RoadNetwork`]: vehicles that follow routes through the lane
//! graph, stop at stop signs, take turns at intersections one road at a time, turn (moving
//! over to the lane a left-turn pocket branches from when they plan a left turn), U-turn,
//! change lanes, swerve around unlabelled obstacles and pull over to park; cyclists keeping
//! right; pedestrians on sidewalks and crosswalks (some jaywalking, some turning back, some
//! standing, some running); parked cars. The ego vehicle is a vehicle like the others.
//!
//! Motion is physical. Vehicles and cyclists are kinematic bicycles (rear axle, heading,
//! speed, acceleration, path curvature): a driver plans (10 Hz) an acceleration with an
//! IDM/ACC car-following model and the speed that curves, lane speed limits and speed bumps
//! ahead allow at the driver's lateral-acceleration limit, and a lateral offset from the lane
//! centre (lane changes, swerves, pulling over) as a smooth profile; a path tracker steers
//! the bicycle along the route's lane centres, offset by that profile, with curvature
//! feed-forward and feedback. Acceleration, jerk, curvature and its rate are bounded at
//! every sub-step by the driver's limits (drawn per driver from realistic ranges) and by
//! physics, so headings are continuous and follow the direction of travel, and labels
//! (velocity, acceleration, yaw rate) are the simulated state's. Pedestrians walk, stand or
//! run with acceleration and turn-rate limits, steering towards a point ahead on their path.

use nalgebra::vector;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::road::{LANE_WIDTH, LaneId, LaneKind, RoadNetwork, Turn};
use super::snapshot::{ObjectKind, P3, SceneObject};
use crate::geom::polyline::{P2, Polyline, dir, left, wrap};
use crate::scene::Box3d;

/// Counts and timing of a simulation.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub steps: usize,
    /// Seconds per step.
    pub dt: f64,
    pub vehicles: usize,
    pub cyclists: usize,
    pub pedestrians: usize,
    pub parked: usize,
    /// Unlabelled obstacle groups (cone lines, debris, stalled trucks).
    pub obstacles: usize,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig { steps: 199, dt: 0.1, vehicles: 40, cyclists: 6, pedestrians: 30, parked: 12, obstacles: 5 }
    }
}

/// One agent's state at one step (world frame): the box centre, its heading, and their
/// derivatives as simulated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub pos: P2,
    pub heading: f64,
    pub vel: P2,
    pub accel: P2,
    /// rad/s, counter-clockwise.
    pub yaw_rate: f64,
}

/// An agent or obstacle over the whole simulation.
#[derive(Debug, Clone)]
pub struct Trajectory {
    pub id: String,
    pub instance: u32,
    pub kind: ObjectKind,
    /// Length, width, height.
    pub size: [f64; 3],
    pub color: [u8; 3],
    /// One entry per step; `None` where the agent does not exist.
    pub states: Vec<Option<State>>,
}

impl Trajectory {
    /// The object at step `i`, or `None`.
    pub fn object_at(&self, i: usize) -> Option<SceneObject> {
        let s = self.states.get(i).copied().flatten()?;
        let [l, w, h] = self.size;
        Some(SceneObject {
            id: self.id.clone(),
            instance: self.instance,
            kind: self.kind,
            bbox: Box3d { center: vector![s.pos.x, s.pos.y, h / 2.0], size: vector![l, w, h], heading: s.heading },
            velocity: vector![s.vel.x, s.vel.y, 0.0],
            acceleration: vector![s.accel.x, s.accel.y, 0.0],
            color: self.color,
        })
    }
}

/// The simulated segment: the ego and every other trajectory.
#[derive(Debug, Clone)]
pub struct AgentWorld {
    pub ego: Trajectory,
    pub others: Vec<Trajectory>,
}

impl AgentWorld {
    /// Every object except the ego at step `i`.
    pub fn objects_at(&self, i: usize) -> Vec<SceneObject> {
        self.others.iter().filter_map(|t| t.object_at(i)).collect()
    }
}

// ---------------------------------------------------------------------------------------
// Limits.

/// Physics sub-steps per simulation step.
const SUBSTEPS: usize = 4;
/// The hardest any driver brakes (tyres give ~9 m/s² on dry asphalt).
const MAX_BRAKE: f64 = 8.5;
/// Lateral acceleration no path may ask for (v²·κ), m/s².
const MAX_LATERAL: f64 = 6.0;
/// Lateral jerk from steering (v²·dκ/dt), m/s³.
const MAX_LATERAL_JERK: f64 = 4.0;
/// Road-wheel steering rate, rad/s, and lock angle, rad.
const STEER_RATE: f64 = 0.5;
const STEER_LOCK: f64 = 0.61;
/// Time constant of the steering following the tracker, s.
const STEER_LAG: f64 = 0.15;
/// Jerk when braking hard is needed at once, m/s³.
const EMERGENCY_JERK: f64 = 10.0;
/// Path tracker: natural frequency (rad/s) and damping of the lateral error.
const TRACK_OMEGA: f64 = 1.4;
const TRACK_ZETA: f64 = 0.85;

/// A driver's (or rider's) limits and car-following style, drawn per agent.
#[derive(Debug, Clone, Copy)]
struct Driver {
    /// IDM: maximum acceleration and comfortable deceleration, m/s².
    a_max: f64,
    b_comf: f64,
    /// The braking this driver never exceeds, m/s².
    b_hard: f64,
    /// Comfortable jerk, m/s³.
    jerk: f64,
    /// Lateral acceleration taken in curves, m/s².
    a_lat: f64,
    /// IDM time gap (s) and standstill gap (m).
    time_gap: f64,
    s0: f64,
}

impl Driver {
    fn draw(kind: ObjectKind, ego: bool, rng: &mut ChaCha8Rng) -> Driver {
        let mut u = |a: f64, b: f64| rng.random_range(a..b);
        if ego {
            // A cautious automated vehicle.
            return Driver { a_max: 1.2, b_comf: 2.0, b_hard: 6.0, jerk: 2.0, a_lat: 1.5, time_gap: 1.6, s0: 2.5 };
        }
        match kind {
            ObjectKind::Cyclist => Driver {
                a_max: u(0.6, 1.2),
                b_comf: u(1.5, 2.5),
                b_hard: u(3.5, 5.0),
                jerk: u(2.0, 4.0),
                a_lat: u(1.5, 2.5),
                time_gap: u(1.0, 1.6),
                s0: u(1.5, 2.5),
            },
            ObjectKind::Truck | ObjectKind::Bus => Driver {
                a_max: u(0.6, 1.2),
                b_comf: u(1.5, 2.2),
                b_hard: u(4.0, 5.5),
                jerk: u(1.5, 3.0),
                a_lat: u(1.2, 2.0),
                time_gap: u(1.5, 2.2),
                s0: u(2.5, 3.5),
            },
            _ => Driver {
                a_max: u(1.0, 2.0),
                b_comf: u(1.8, 3.0),
                b_hard: u(5.0, 7.0),
                jerk: u(3.0, 6.0),
                a_lat: u(1.8, 3.0),
                time_gap: u(1.0, 1.8),
                s0: u(1.8, 3.0),
            },
        }
    }

    /// IDM acceleration blended with the constant-acceleration heuristic (Treiber and
    /// Kesting's ACC model), which keeps drivers from over-reacting to gaps that shrink
    /// without danger (a vehicle cutting in ahead): braking beyond the comfortable level only
    /// where the kinematics demand it.
    fn follow(&self, v: f64, v0: f64, gap: f64, leader_speed: f64) -> f64 {
        let (a, b) = (self.a_max, self.b_comf);
        let free = if v0 < 0.05 {
            -b
        } else if v <= v0 {
            a * (1.0 - (v / v0).powi(4))
        } else {
            // Improved IDM above the desired speed: slow down at no more than `b`.
            -b * (1.0 - (v0 / v).powf(a * 4.0 / b))
        };
        if !gap.is_finite() {
            return free;
        }
        let s = gap.max(0.1);
        let dv = v - leader_speed;
        let s_star = self.s0 + (v * self.time_gap + v * dv / (2.0 * (a * b).sqrt())).max(0.0);
        let idm = free.min(a) - a * (s_star / s).powi(2);
        let cah = -(dv.max(0.0)).powi(2) / (2.0 * s);
        if idm >= cah {
            idm
        } else {
            let c = 0.99;
            (1.0 - c) * idm + c * (cah + b * ((idm - cah) / b).tanh())
        }
    }
}

/// Moves `value` towards `target` by at most `step`.
fn approach(value: f64, target: f64, step: f64) -> f64 {
    value + (target - value).clamp(-step, step)
}

fn smoothstep(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

/// A lateral offset profile: offset, rate and acceleration, driven towards a target with
/// bounded rate, acceleration and jerk (lane changes, swerves, pulling over).
#[derive(Debug, Clone, Copy, Default)]
struct Lateral {
    d: f64,
    rate: f64,
    acc: f64,
}

/// How fast a lateral move may go.
#[derive(Debug, Clone, Copy)]
struct LateralLimits {
    /// m/s, and as a share of the speed (the heading offset it takes).
    rate: f64,
    slope: f64,
    acc: f64,
    jerk: f64,
}

const LANE_CHANGE: LateralLimits = LateralLimits { rate: 0.9, slope: 0.15, acc: 0.8, jerk: 1.0 };
const SWERVE: LateralLimits = LateralLimits { rate: 1.2, slope: 0.45, acc: 1.5, jerk: 2.5 };

impl LateralLimits {
    /// The rate allowed at speed `v`.
    fn rate_at(&self, v: f64) -> f64 {
        self.rate.min(self.slope * v)
    }
    /// Metres of travel a move of `delta` takes at speed `v` (for planning the corridor).
    fn distance(&self, delta: f64, v: f64) -> f64 {
        let per_metre = self.slope.min(self.rate / v.max(0.1));
        delta.abs() * 1.3 / per_metre + 4.0
    }
}

impl Lateral {
    fn step(&mut self, target: f64, lim: &LateralLimits, v: f64, kappa_max: f64, h: f64) {
        let max_rate = lim.rate_at(v);
        // Lateral acceleration is path curvature times v²: slow, it must be small.
        let max_acc = lim.acc.min(0.5 * kappa_max * v * v + 0.02);
        let max_jerk = lim.jerk.min(0.3 * kappa_max * v * v + 0.05);
        let e = target - self.d;
        let brake = (2.0 * 0.6 * max_acc * e.abs()).sqrt();
        let want = e.signum() * max_rate.min(brake).min(1.2 * e.abs());
        let acc_want = ((want - self.rate) / 0.4).clamp(-max_acc, max_acc);
        self.acc = approach(self.acc, acc_want, max_jerk * h);
        self.rate = (self.rate + self.acc * h).clamp(-max_rate, max_rate);
        self.d += self.rate * h;
    }
}

// ---------------------------------------------------------------------------------------
// Vehicles.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Drive,
    /// Stopped at a stop line since this time.
    StoppedAtSign(f64),
    /// Pulling over to park, then parked.
    PullOver,
}

/// A swerve around a static obstacle in my lane, held until I have passed it.
#[derive(Debug, Clone, Copy)]
struct Swerve {
    /// The farthest obstacle of the group I am passing.
    obstacle: P2,
}

#[derive(Debug, Clone)]
struct Vehicle {
    traj: usize,
    route: Vec<LaneId>,
    /// Index in `route` of the current lane.
    at: usize,
    /// Arc length and lateral offset (left positive) of my box centre on the current lane.
    s: f64,
    d: f64,
    /// The lateral offset I am moving to, and the profile that gets me there.
    d_target: f64,
    lateral: Lateral,
    /// Kinematic bicycle: rear axle, heading, speed, acceleration, path curvature of the
    /// rear axle and its rate.
    rear: P2,
    heading: f64,
    v: f64,
    a: f64,
    kappa: f64,
    kappa_rate: f64,
    /// The acceleration the driver asks for this step.
    a_cmd: f64,
    /// Distance between the axles, and from the rear axle forward to the box centre.
    wheelbase: f64,
    rear_to_centre: f64,
    kappa_max: f64,
    driver: Driver,
    desired_speed: f64,
    length: f64,
    width: f64,
    mode: Mode,
    /// The stop sign at the end of this route index was obeyed.
    stopped_for: Option<usize>,
    pull_over_at: Option<f64>,
    cyclist: bool,
    last_lane_change: f64,
    /// The lane on which this driver last decided whether to move over for a left turn, and
    /// whether it will (it waits for a gap in the lane beside it until the lane runs out).
    turn_plan_on: Option<(LaneId, bool)>,
    swerve: Option<Swerve>,
}

impl Vehicle {
    fn centre(&self) -> P2 {
        self.rear + dir(self.heading) * self.rear_to_centre
    }
    /// The offset from the lane centre this agent keeps when nothing else is asked of it.
    fn home_offset(&self) -> f64 {
        if self.cyclist { -(LANE_WIDTH / 2.0 - 0.7) } else { 0.0 }
    }
    fn lateral_limits(&self) -> &'static LateralLimits {
        if self.swerve.is_some() || self.mode == Mode::PullOver { &SWERVE } else { &LANE_CHANGE }
    }
    /// The state of the box centre: velocity and acceleration of a point `rear_to_centre`
    /// ahead of the rear axle of a bicycle turning at `v·κ`.
    fn state(&self) -> State {
        let (u, n) = (dir(self.heading), left(&dir(self.heading)));
        let l = self.rear_to_centre;
        let yaw_rate = self.v * self.kappa;
        let yaw_acc = self.a * self.kappa + self.v * self.kappa_rate;
        let vel = u * self.v + n * (l * yaw_rate);
        let accel = u * (self.a - l * yaw_rate * yaw_rate) + n * (self.v * yaw_rate + l * yaw_acc);
        State { pos: self.centre(), heading: self.heading, vel, accel, yaw_rate }
    }
}

/// A static obstacle or parked car: fixed pose.
#[derive(Debug, Clone)]
struct Fixed {
    traj: usize,
    pos: P2,
    heading: f64,
    length: f64,
    width: f64,
}

#[derive(Debug, Clone)]
struct Pedestrian {
    traj: usize,
    path: Polyline,
    /// Progress along `path` (arc length of the closest point).
    s: f64,
    pos: P2,
    heading: f64,
    speed: f64,
    accel: f64,
    yaw_rate: f64,
    /// Preferred speed (0: stands all along), acceleration and deceleration limits.
    pref_speed: f64,
    a_max: f64,
    b_max: f64,
    /// Waits (at a curb) until this time.
    wait_until: f64,
}

impl Pedestrian {
    fn state(&self) -> State {
        let (u, n) = (dir(self.heading), left(&dir(self.heading)));
        State {
            pos: self.pos,
            heading: self.heading,
            vel: u * self.speed,
            accel: u * self.accel + n * (self.speed * self.yaw_rate),
            yaw_rate: self.yaw_rate,
        }
    }

    fn step(&mut self, t: f64, h: f64) {
        const JERK: f64 = 4.0;
        const TURN_ACC: f64 = 6.0;
        let len = self.path.length();
        self.s = project_near(&self.path, &self.pos, self.s).0.clamp(0.0, len);
        let remaining = len - self.s;
        let walking = self.pref_speed > 0.0 && t >= self.wait_until && remaining > 0.05;
        // Steer towards a point ahead on the path, turning at a bounded rate.
        let look = 0.6 + 0.5 * self.speed;
        let target = self.path.pose_at((self.s + look).min(len)).0;
        let to = target - self.pos;
        let error = if walking && to.norm() > 0.05 { wrap(to.y.atan2(to.x) - self.heading) } else { 0.0 };
        // Turning at most as sharply as a person's grip allows at this speed.
        let max_turn = 2.2f64.min(2.5 / self.speed.max(0.1));
        let want_turn = if self.speed > 0.05 || walking { (2.5 * error).clamp(-max_turn, max_turn) } else { 0.0 };
        self.yaw_rate = approach(self.yaw_rate, want_turn, TURN_ACC * h);
        // Speed: slower through sharp turns, stopping at the end of the path.
        let mut want = if walking { self.pref_speed * error.cos().max(0.3) } else { 0.0 };
        want = want.min((2.0 * 0.6 * self.b_max * (remaining - 0.1).max(0.0)).sqrt());
        let mut acc = ((want - self.speed) / 0.5).clamp(-self.b_max, self.a_max);
        acc = acc.max(-(2.0 * JERK * self.speed).sqrt());
        self.accel = approach(self.accel, acc, JERK * h);
        let v0 = self.speed;
        self.speed = (self.speed + self.accel * h).max(0.0);
        if self.speed == 0.0 {
            self.accel = self.accel.max(0.0);
        }
        let vm = (v0 + self.speed) / 2.0;
        self.pos += dir(self.heading + self.yaw_rate * h / 2.0) * (vm * h);
        self.heading = wrap(self.heading + self.yaw_rate * h);
    }
}

/// A vehicle's claim on an intersection.
#[derive(Debug, Clone, Copy)]
struct Reservation {
    vehicle: usize,
    from: LaneId,
    since: f64,
}

/// Something vehicles must not drive into: position, half extents.
#[derive(Debug, Clone, Copy)]
struct Body {
    pos: P2,
    half_length: f64,
    half_width: f64,
    /// Index into `others` trajectories (the ego is `usize::MAX`).
    traj: usize,
    vel: P2,
    /// A parked car or an unlabelled obstacle: it will not move.
    fixed: bool,
    /// A vehicle or cyclist (not a person, not a fixed object).
    vehicle: bool,
}

const VEHICLE_COLORS: [[u8; 3]; 8] = [
    [200, 30, 30],
    [30, 60, 160],
    [220, 220, 220],
    [30, 30, 30],
    [120, 120, 130],
    [20, 110, 60],
    [230, 190, 40],
    [90, 40, 20],
];

/// Steps simulated before the first recorded one, so that agents placed at random settle
/// into traffic (a queue behind a stop line, the speed of a curve ahead) before anyone
/// records them.
const WARMUP_STEPS: usize = 50;

/// Runs the simulation.
pub fn simulate(net: &RoadNetwork, cfg: &AgentConfig, rng: &mut ChaCha8Rng) -> AgentWorld {
    let mut sim = Sim::new(net, cfg, rng);
    for k in 0..WARMUP_STEPS {
        sim.advance((k as f64 - WARMUP_STEPS as f64) * cfg.dt, rng);
    }
    for step in 0..cfg.steps {
        sim.record(step);
        if step + 1 < cfg.steps {
            sim.advance(step as f64 * cfg.dt, rng);
        }
    }
    sim.finish()
}

struct Sim<'a> {
    net: &'a RoadNetwork,
    cfg: AgentConfig,
    trajs: Vec<Trajectory>,
    vehicles: Vec<Vehicle>,
    fixed: Vec<Fixed>,
    peds: Vec<Pedestrian>,
    /// For each node, first come first served: the vehicles (indices into `vehicles`) on its
    /// connectors or committed to entering it, with the road lane they come from and since
    /// when they hold it.
    reservations: Vec<Vec<Reservation>>,
    /// Where the speed bumps are.
    bumps: Vec<P2>,
}

fn lane_road(net: &RoadNetwork, lane: LaneId) -> Option<usize> {
    net.lanes[lane].kind.road()
}

/// The left-turn pocket that `lane` branches into, if any.
fn left_pocket_after(net: &RoadNetwork, lane: LaneId) -> Option<LaneId> {
    net.lanes[lane]
        .exit
        .iter()
        .copied()
        .find(|&e| matches!(net.lanes[e].kind, LaneKind::TurnLane { turn: Turn::Left, .. }))
}

fn random_color(rng: &mut ChaCha8Rng) -> [u8; 3] {
    VEHICLE_COLORS[rng.random_range(0..VEHICLE_COLORS.len())]
}

/// Arc length and signed lateral offset of `p` on `path`, searching the segments within a
/// few metres of `guess` and extending the first and last segments beyond the ends.
fn project_near(path: &Polyline, p: &P2, guess: f64) -> (f64, f64) {
    let pts = path.points();
    let n = pts.len();
    let mut best = (f64::INFINITY, guess, 0.0);
    let mut along = 0.0;
    for i in 0..n - 1 {
        let (a, b) = (pts[i], pts[i + 1]);
        let seg = b - a;
        let len = seg.norm().max(1e-9);
        if along + len < guess - 6.0 || along > guess + 6.0 {
            along += len;
            continue;
        }
        let mut t = (p - a).dot(&seg) / (len * len);
        if i > 0 {
            t = t.max(0.0);
        }
        if i + 2 < n {
            t = t.min(1.0);
        }
        let q = a + seg * t;
        let d2 = (p - q).norm_squared();
        if d2 < best.0 {
            let side = seg.x * (p.y - a.y) - seg.y * (p.x - a.x);
            best = (d2, along + t * len, d2.sqrt() * side.signum());
        }
        along += len;
    }
    if best.0.is_infinite() {
        return path.project(p);
    }
    (best.1, best.2)
}

impl<'a> Sim<'a> {
    fn new(net: &'a RoadNetwork, cfg: &AgentConfig, rng: &mut ChaCha8Rng) -> Self {
        let bumps = net.roads.iter().filter_map(|r| r.speed_bump_at.map(|s| r.centre.pose_at(s).0)).collect();
        let mut sim = Sim {
            net,
            cfg: cfg.clone(),
            trajs: Vec::new(),
            vehicles: Vec::new(),
            fixed: Vec::new(),
            peds: Vec::new(),
            reservations: vec![Vec::new(); net.nodes.len()],
            bumps,
        };
        let road_lanes: Vec<LaneId> = net
            .lanes
            .iter()
            .filter(|l| matches!(l.kind, LaneKind::Road { .. }) && l.path.length() > 30.0)
            .map(|l| l.id)
            .collect();
        if road_lanes.is_empty() {
            return sim;
        }
        // Ego first: trajectory 0 of `trajs` is the ego until `finish`.
        let mut occupied: Vec<(LaneId, f64)> = Vec::new();
        for i in 0..cfg.vehicles + cfg.cyclists + 1 {
            let cyclist = i > cfg.vehicles;
            let (kind, size, color) = if i == 0 {
                (ObjectKind::Car, [4.8, 2.1, 1.8], [240, 240, 240])
            } else if cyclist {
                (ObjectKind::Cyclist, [1.8, 0.7, 1.7], [rng.random_range(0..255), 60, 200])
            } else {
                match rng.random_range(0..10) {
                    0 => (
                        ObjectKind::Truck,
                        [rng.random_range(6.5..9.0), 2.5, rng.random_range(2.8..3.6)],
                        random_color(rng),
                    ),
                    1 if i % 3 == 0 => (ObjectKind::Bus, [12.0, 2.6, 3.2], [220, 180, 30]),
                    _ => (
                        ObjectKind::Car,
                        [rng.random_range(4.2..5.2), rng.random_range(1.8..2.05), rng.random_range(1.45..1.9)],
                        random_color(rng),
                    ),
                }
            };
            // A free spot: not within 12 m of another spawned vehicle on the same lane.
            let mut spot = None;
            for _ in 0..30 {
                let lane = road_lanes[rng.random_range(0..road_lanes.len())];
                let len = net.lanes[lane].path.length();
                let s = rng.random_range(5.0..(len - 15.0).max(6.0));
                if occupied.iter().all(|&(l, s2)| l != lane || (s - s2).abs() > 14.0) {
                    spot = Some((lane, s));
                    break;
                }
            }
            let Some((lane, s)) = spot else { continue };
            let lane = if cyclist {
                // Cyclists keep to the outermost lane.
                let mut l = lane;
                while let Some(r) = net.lanes[l].right {
                    l = r;
                }
                l
            } else {
                lane
            };
            occupied.push((lane, s));
            let traj = sim.push_traj(kind, size, color);
            let limit = net.lanes[lane].speed_limit;
            let desired_speed = if cyclist { rng.random_range(3.5..7.5) } else { limit * rng.random_range(0.85..1.1) };
            let route = random_route(net, lane, 600.0, rng);
            let pull_over_at = (!cyclist && i != 0 && rng.random_bool(0.1)).then(|| rng.random_range(3.0..12.0));
            let driver = Driver::draw(kind, i == 0, rng);
            // Axles by body: a car's rear axle ~1 m from its rear, a bus's ~3.3 m.
            let (wheelbase, rear_to_centre) = match kind {
                ObjectKind::Bus => (0.5 * size[0], 0.225 * size[0]),
                ObjectKind::Truck => (0.62 * size[0], 0.26 * size[0]),
                _ => (0.6 * size[0], 0.29 * size[0]),
            };
            let d = if cyclist { -(LANE_WIDTH / 2.0 - 0.7) } else { 0.0 };
            let mut v = Vehicle {
                traj,
                route,
                at: 0,
                s,
                d,
                d_target: d,
                lateral: Lateral { d, rate: 0.0, acc: 0.0 },
                rear: P2::zeros(),
                heading: 0.0,
                v: 0.0,
                a: 0.0,
                kappa: 0.0,
                kappa_rate: 0.0,
                a_cmd: 0.0,
                wheelbase,
                rear_to_centre,
                kappa_max: STEER_LOCK.tan() / wheelbase,
                driver,
                desired_speed,
                length: size[0],
                width: size[1],
                mode: Mode::Drive,
                stopped_for: None,
                pull_over_at,
                cyclist,
                last_lane_change: -10.0,
                turn_plan_on: None,
                swerve: None,
            };
            // On the lane, along it, at a speed its curvature allows.
            let (centre, heading, kappa) = sim.route_frame(&v, 0.0);
            v.heading = heading;
            v.rear = centre + left(&dir(heading)) * d - dir(heading) * v.rear_to_centre;
            v.kappa = kappa.clamp(-v.kappa_max, v.kappa_max);
            let curve = (driver.a_lat / kappa.abs().max(1e-6)).sqrt();
            v.v = (desired_speed * rng.random_range(0.5..1.0)).min(curve);
            sim.vehicles.push(v);
        }
        sim.spawn_parked(rng);
        sim.spawn_obstacles(rng);
        sim.spawn_pedestrians(rng);
        sim
    }

    fn push_traj(&mut self, kind: ObjectKind, size: [f64; 3], color: [u8; 3]) -> usize {
        let i = self.trajs.len();
        self.trajs.push(Trajectory {
            id: String::new(),
            instance: i as u32 + 1,
            kind,
            size,
            color,
            states: vec![None; self.cfg.steps],
        });
        i
    }

    fn spawn_fixed(&mut self, kind: ObjectKind, size: [f64; 3], color: [u8; 3], pos: P2, heading: f64) {
        let traj = self.push_traj(kind, size, color);
        self.fixed.push(Fixed { traj, pos, heading, length: size[0], width: size[1] });
    }

    fn spawn_parked(&mut self, rng: &mut ChaCha8Rng) {
        let roads: Vec<usize> = (0..self.net.roads.len()).filter(|&r| self.net.roads[r].shoulder > 1.0).collect();
        for _ in 0..self.cfg.parked {
            if roads.is_empty() {
                break;
            }
            let r = &self.net.roads[roads[rng.random_range(0..roads.len())]];
            let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let s = rng.random_range(8.0..(r.centre.length() - 8.0).max(9.0));
            let (p, h) = r.centre.pose_at(s);
            // Mid-shoulder, which moves out with the curb where turn pockets widen the road.
            let d = r.edge_offset(side, s) - side * r.shoulder / 2.0;
            let heading = if side > 0.0 { wrap(h + std::f64::consts::PI) } else { h };
            let color = random_color(rng);
            self.spawn_fixed(ObjectKind::Car, [4.5, 1.9, 1.5], color, p + left(&dir(h)) * d, heading);
        }
    }

    /// Unlabelled obstacles on road lanes: cone lines closing part of a lane, debris, a
    /// stalled truck. Drivers react to them; no label or map entry says they are there.
    fn spawn_obstacles(&mut self, rng: &mut ChaCha8Rng) {
        let lanes: Vec<LaneId> = self
            .net
            .lanes
            .iter()
            .filter(|l| matches!(l.kind, LaneKind::Road { .. }) && l.path.length() > 50.0)
            .map(|l| l.id)
            .collect();
        for _ in 0..self.cfg.obstacles {
            if lanes.is_empty() {
                break;
            }
            let lane = &self.net.lanes[lanes[rng.random_range(0..lanes.len())]];
            let s = rng.random_range(20.0..lane.path.length() - 20.0);
            let (p, h) = lane.path.pose_at(s);
            match rng.random_range(0..3) {
                0 => {
                    // A taper of cones closing the right half of the lane, then a stretch.
                    for k in 0..6 {
                        let (q, hq) = lane.path.pose_at(s + k as f64 * 3.0);
                        let off = -(LANE_WIDTH / 2.0) + (k.min(3) as f64) * 0.5;
                        self.spawn_fixed(
                            ObjectKind::Cone,
                            [0.4, 0.4, 0.7],
                            [255, 110, 0],
                            q + left(&dir(hq)) * off,
                            hq,
                        );
                    }
                }
                1 => {
                    let off = rng.random_range(-0.8..0.8);
                    self.spawn_fixed(
                        ObjectKind::Debris,
                        [1.2, 0.9, 0.35],
                        [110, 90, 70],
                        p + left(&dir(h)) * off,
                        h + rng.random_range(-1.0..1.0),
                    );
                }
                _ => {
                    self.spawn_fixed(ObjectKind::StalledTruck, [7.5, 2.5, 3.2], [200, 200, 190], p, h);
                }
            }
        }
    }

    fn spawn_pedestrians(&mut self, rng: &mut ChaCha8Rng) {
        let net = self.net;
        if net.sidewalks.is_empty() {
            return;
        }
        for k in 0..self.cfg.pedestrians {
            let sw = &net.sidewalks[rng.random_range(0..net.sidewalks.len())];
            let len = sw.length();
            let s0 = rng.random_range(0.0..len);
            let forward = rng.random_bool(0.5);
            let mut pts = Vec::new();
            // Long enough to keep walking most of a segment (those who only walk along the
            // sidewalk go farther).
            let walk = if k % 5 >= 3 { rng.random_range(20.0..45.0) } else { rng.random_range(8.0..25.0) };
            let s1 = if forward { (s0 + walk).min(len) } else { (s0 - walk).max(0.0) };
            let part = if forward { sw.slice(s0, s1) } else { sw.slice(s1, s0).reversed() };
            pts.extend_from_slice(part.points());
            let end = part.end();
            let h = part.end_heading();
            match k % 5 {
                // Cross the road (at a crosswalk-like spot, or jaywalking): to the other side.
                0 | 1 => {
                    let side = left(&dir(h));
                    let (road_s, d) = nearest_road_offset(net, &end);
                    let width = 2.0 * d.abs();
                    let across = if road_s.is_some() { -side * d.signum() * width } else { side * 12.0 };
                    pts.push(end + across * 0.02);
                    pts.push(end + across);
                    pts.push(end + across + dir(h) * rng.random_range(10.0..25.0));
                }
                // Turn back to the right onto a parallel line: a right U-turn.
                2 => {
                    let right = -left(&dir(h));
                    pts.push(end + dir(h) * 1.0 + right * 0.8);
                    pts.push(end + right * 1.6);
                    pts.push(end + right * 1.6 - dir(h) * rng.random_range(10.0..25.0));
                }
                _ => {}
            }
            let traj = self.push_traj(
                ObjectKind::Pedestrian,
                [0.6, 0.6, rng.random_range(1.55..1.9)],
                [rng.random_range(40..220), 80, 120],
            );
            // Most walk at 1.0-1.7 m/s, some slowly, some run, and some of those on the
            // sidewalks stand (never those whose paths cross the road or turn back).
            let r: f64 = rng.random();
            let (pref_speed, a_max, b_max) = if k % 5 >= 3 && r < 0.25 {
                (0.0, 1.0, 1.5)
            } else if r > 0.92 {
                (rng.random_range(2.3..3.8), rng.random_range(1.5..2.5), 2.5)
            } else if r > 0.8 {
                (rng.random_range(0.5..0.95), rng.random_range(0.4..0.8), 1.0)
            } else {
                let u: f64 = rng.random::<f64>() + rng.random::<f64>();
                (1.0 + 0.35 * u, rng.random_range(0.7..1.2), rng.random_range(1.0..1.6))
            };
            let wait_until = if k % 5 < 2 { rng.random_range(0.0..6.0) } else { 0.0 };
            let path = Polyline::new(pts);
            let pos = path.start();
            let heading = path.start_heading();
            self.peds.push(Pedestrian {
                traj,
                path,
                s: 0.0,
                pos,
                heading,
                speed: if wait_until > 0.0 { 0.0 } else { pref_speed },
                accel: 0.0,
                yaw_rate: 0.0,
                pref_speed,
                a_max,
                b_max,
                wait_until,
            });
        }
    }

    fn bodies(&self) -> Vec<Body> {
        let mut out = Vec::new();
        for v in &self.vehicles {
            out.push(Body {
                pos: v.centre(),
                half_length: v.length / 2.0,
                half_width: v.width / 2.0,
                traj: v.traj,
                vel: v.state().vel,
                fixed: false,
                vehicle: true,
            });
        }
        for f in &self.fixed {
            out.push(Body {
                pos: f.pos,
                half_length: f.length / 2.0,
                half_width: f.width / 2.0,
                traj: f.traj,
                vel: P2::zeros(),
                fixed: true,
                vehicle: false,
            });
        }
        for p in &self.peds {
            out.push(Body {
                pos: p.pos,
                half_length: 0.4,
                half_width: 0.4,
                traj: p.traj,
                vel: p.state().vel,
                fixed: false,
                vehicle: false,
            });
        }
        out
    }

    fn record(&mut self, step: usize) {
        for v in &self.vehicles {
            self.trajs[v.traj].states[step] = Some(v.state());
        }
        for f in &self.fixed {
            let still = State { pos: f.pos, heading: f.heading, vel: P2::zeros(), accel: P2::zeros(), yaw_rate: 0.0 };
            self.trajs[f.traj].states[step] = Some(still);
        }
        for p in &self.peds {
            self.trajs[p.traj].states[step] = Some(p.state());
        }
    }

    fn advance(&mut self, t: f64, rng: &mut ChaCha8Rng) {
        let dt = self.cfg.dt;
        let bodies = self.bodies();
        // Intersections: a claim lasts while its vehicle is on the node's connectors or on
        // a lane ending there; whoever is on a connector holds one.
        let net = self.net;
        let at_node = |v: &Vehicle, n: usize| match net.lanes[v.route[v.at]].kind {
            LaneKind::Connector { node, .. } => node == n,
            _ => net.lanes[v.route[v.at]].end_node == Some(n),
        };
        for (n, claims) in self.reservations.iter_mut().enumerate() {
            claims.retain(|c| at_node(&self.vehicles[c.vehicle], n));
        }
        for (i, v) in self.vehicles.iter().enumerate() {
            if let LaneKind::Connector { node, .. } = net.lanes[v.route[v.at]].kind
                && !self.reservations[node].iter().any(|c| c.vehicle == i)
            {
                let from = if v.at > 0 { v.route[v.at - 1] } else { v.route[v.at] };
                self.reservations[node].push(Reservation { vehicle: i, from, since: t });
            }
        }
        for i in 0..self.vehicles.len() {
            self.plan_vehicle(i, t, &bodies, rng);
        }
        let h = dt / SUBSTEPS as f64;
        for i in 0..self.vehicles.len() {
            let mut v = self.vehicles[i].clone();
            for _ in 0..SUBSTEPS {
                self.drive(&mut v, h);
            }
            self.localise(&mut v);
            self.vehicles[i] = v;
        }
        for k in 0..SUBSTEPS {
            let tk = t + k as f64 * h;
            for p in &mut self.peds {
                p.step(tk, h);
            }
        }
    }

    /// Where I am on my route: arc length and offset of my centre on the current lane,
    /// moving on to the next lane past its end.
    fn localise(&self, v: &mut Vehicle) {
        let centre = v.centre();
        loop {
            let path = &self.net.lanes[v.route[v.at]].path;
            let (s, d) = project_near(path, &centre, v.s);
            (v.s, v.d) = (s, d);
            if s <= path.length() || v.at + 1 >= v.route.len() {
                break;
            }
            v.at += 1;
            v.s = s - path.length();
        }
    }

    /// The point of my route's lane centres `x` metres ahead of my arc length (behind for
    /// negative `x`: along the lane I came from where it leads here, else along the
    /// current lane's first segment).
    fn route_point(&self, v: &Vehicle, x: f64) -> P2 {
        let lanes = &self.net.lanes;
        let (mut at, mut s) = (v.at, v.s + x);
        if s < 0.0 && at > 0 && lanes[v.route[at - 1]].exit.contains(&v.route[at]) {
            at -= 1;
            s += lanes[v.route[at]].path.length();
        }
        while s > lanes[v.route[at]].path.length() && at + 1 < v.route.len() {
            s -= lanes[v.route[at]].path.length();
            at += 1;
        }
        lanes[v.route[at]].path.pose_at(s).0
    }

    /// Heading of my route at `x` metres ahead, from points a metre either side.
    fn route_heading(&self, v: &Vehicle, x: f64) -> f64 {
        let d = self.route_point(v, x + 1.0) - self.route_point(v, x - 1.0);
        d.y.atan2(d.x)
    }

    /// Curvature of my route at `x` metres ahead, smoothed over 6 m (the lanes are
    /// polylines with a vertex every metre).
    fn route_curvature(&self, v: &Vehicle, x: f64) -> f64 {
        wrap(self.route_heading(v, x + 2.0) - self.route_heading(v, x - 2.0)) / 4.0
    }

    /// Lane-centre point, heading and curvature at `x` metres ahead.
    fn route_frame(&self, v: &Vehicle, x: f64) -> (P2, f64, f64) {
        (self.route_point(v, x), self.route_heading(v, x), self.route_curvature(v, x))
    }

    /// One physics sub-step of a vehicle: acceleration towards the planned one within the
    /// jerk limit, the lateral profile, the path tracker's steering within curvature,
    /// steering-rate and lateral-acceleration limits, then the bicycle moves.
    fn drive(&self, v: &mut Vehicle, h: f64) {
        let d = v.driver;
        // Longitudinal.
        let mut target = v.a_cmd.clamp(-d.b_hard.min(MAX_BRAKE), d.a_max);
        // Ease off the brake while stopping, so the stop itself is smooth.
        target = target.max(-(2.0 * 1.5 * d.jerk * v.v).sqrt());
        let jerk = if target < -d.b_comf && v.a > target { EMERGENCY_JERK } else { d.jerk };
        v.a = approach(v.a, target, jerk * h);
        let v0 = v.v;
        v.v = (v.v + v.a * h).max(0.0);
        if v.v == 0.0 {
            v.a = v.a.max(0.0);
        }
        let vm = (v0 + v.v) / 2.0;

        // Lateral profile and tracking.
        self.localise(v);
        let lim = *v.lateral_limits();
        v.lateral.step(v.d_target, &lim, v.v, v.kappa_max, h);
        // Anti-windup: the profile never runs far from where I am.
        v.lateral.d = v.lateral.d.clamp(v.d - 0.5, v.d + 0.5);
        let ve = v.v.max(2.0);
        let theta = self.route_heading(v, 0.0);
        let kappa_path = self.route_curvature(v, v.v * 0.3);
        let psi = (v.lateral.rate / ve).atan();
        let beta = (v.rear_to_centre * v.kappa).atan();
        let e_d = v.d - v.lateral.d;
        let e_psi = wrap(v.heading + beta - theta - psi);
        let k1 = (TRACK_OMEGA / ve).powi(2);
        let k2 = 2.0 * TRACK_ZETA * TRACK_OMEGA / ve;
        let kappa_ff = kappa_path / (1.0 - kappa_path * v.d).max(0.5) + v.lateral.acc / (ve * ve);
        let mut want = kappa_ff - k1 * e_d - k2 * e_psi;
        let lateral_cap = MAX_LATERAL / (v.v * v.v).max(1e-6);
        want = want.clamp(-v.kappa_max.min(lateral_cap), v.kappa_max.min(lateral_cap));
        // The steering follows with a short lag at a bounded rate; drivers do not steer
        // standing still.
        let max_rate =
            if v.v < 0.3 { 0.0 } else { (STEER_RATE / v.wheelbase).min(MAX_LATERAL_JERK / (v.v * v.v).max(1e-6)) };
        v.kappa_rate = ((want - v.kappa) / STEER_LAG).clamp(-max_rate, max_rate);
        v.kappa += v.kappa_rate * h;

        // The bicycle moves: rear axle along its heading on an arc of curvature κ.
        let turn = vm * v.kappa * h;
        v.rear += dir(v.heading + turn / 2.0) * (vm * h);
        v.heading = wrap(v.heading + turn);
    }

    /// A driver's decisions for the next step: route, lane changes and swerves, the lateral
    /// target and the acceleration asked for.
    fn plan_vehicle(&mut self, i: usize, t: f64, bodies: &[Body], rng: &mut ChaCha8Rng) {
        let net = self.net;
        let mut v = self.vehicles[i].clone();
        // Know the route well beyond the speed-planning horizon.
        let known: f64 = v.route[v.at..].iter().map(|&l| net.lanes[l].path.length()).sum::<f64>() - v.s;
        if v.route.len() < v.at + 3 || known < 200.0 {
            let last = *v.route.last().unwrap_or(&v.route[v.at]);
            let more = random_route(net, last, 300.0, rng);
            v.route.extend(more.into_iter().skip(1));
        }
        let pos = v.centre();
        let forward = dir(v.heading);

        // Pull over: once its time comes on a lane with a shoulder, move right and stop.
        if let (Some(when), Mode::Drive) = (v.pull_over_at, v.mode)
            && t >= when
            && v.swerve.is_none()
            && let LaneKind::Road { road, .. } = net.lanes[v.route[v.at]].kind
        {
            let r = &net.roads[road];
            if net.lanes[v.route[v.at]].right.is_none()
                && r.shoulder > 1.0
                && net.lanes[v.route[v.at]].path.length() - v.s > 25.0
            {
                v.mode = Mode::PullOver;
                v.d_target = -(LANE_WIDTH / 2.0 + r.shoulder / 2.0 + 0.2);
            }
        }

        // What is in my way: the closest body in the corridor I am about to drive (lane
        // centres, offset as my lateral plan will take me), and parked cars or obstacles in
        // my lane as I would keep to it.
        let braking = v.v * v.v / (2.0 * v.driver.b_comf);
        let lookahead = (v.v * 4.0).max(35.0).max(braking * 1.5 + 10.0);
        let corridor = self.corridor(&v, lookahead, true);
        let lane_corridor = self.corridor(&v, lookahead.min(45.0), false);
        let mut gap = f64::INFINITY;
        let mut leader_speed = 0.0;
        let mut statics: Vec<(f64, P2)> = Vec::new();
        for b in bodies {
            if b.traj == v.traj || (b.pos - pos).norm() > lookahead + 15.0 {
                continue;
            }
            let reach = v.width / 2.0 + b.half_width.max(b.half_length.min(1.5)) + 0.3;
            if let Some((along, lateral)) = corridor_hit(&corridor, &b.pos)
                && lateral.abs() < reach
            {
                let g = along - v.length / 2.0 - b.half_length;
                if g < gap {
                    gap = g;
                    // How fast it moves my way (negative: towards me).
                    leader_speed = b.vel.dot(&forward);
                }
            }
            if b.fixed
                && let Some((along, lateral)) = corridor_hit(&lane_corridor, &b.pos)
                && lateral.abs() < reach
            {
                statics.push((along - v.length / 2.0 - b.half_length, b.pos));
            }
        }
        let ahead_of = |p: &P2| (p - pos).dot(&forward);

        // React to a static obstacle in my lane: change lane if a neighbour exists, else
        // swerve around it, held until I have passed the group.
        let lane = &net.lanes[v.route[v.at]];
        let nearest_static = statics.iter().map(|&(g, _)| g).fold(f64::INFINITY, f64::min);
        if let Some(sw) = &mut v.swerve {
            for &(_, p) in &statics {
                let (a, b) = (ahead_of(&p), ahead_of(&sw.obstacle));
                if a > b && a < b + 15.0 {
                    sw.obstacle = p;
                }
            }
            if ahead_of(&sw.obstacle) < -(v.length / 2.0 + 4.0) || v.mode != Mode::Drive {
                v.swerve = None;
                if v.mode == Mode::Drive {
                    v.d_target = v.home_offset();
                }
            }
        } else if v.mode == Mode::Drive && nearest_static < 30.0 && t - v.last_lane_change > 4.0 {
            if let Some(l2) = lane.left {
                self.change_lane(&mut v, l2, t, bodies);
            } else if !v.cyclist {
                // Swerve left around it, into the opposite lane if need be, once nobody comes
                // the other way; until then wait well short of it.
                let far = statics.iter().map(|&(_, p)| p).fold(None, |best: Option<P2>, p| match best {
                    Some(b) if ahead_of(&b) >= ahead_of(&p) => Some(b),
                    _ if ahead_of(&p) < nearest_static + v.length + 15.0 => Some(p),
                    _ => best,
                });
                if let Some(obstacle) = far {
                    if oncoming_clear(&v, bodies, ahead_of(&obstacle) + v.length + 10.0) {
                        v.swerve = Some(Swerve { obstacle });
                        v.d_target = LANE_WIDTH * 0.75;
                    } else if nearest_static - 12.0 < gap {
                        gap = (nearest_static - 12.0).max(0.0);
                        leader_speed = 0.0;
                    }
                }
            }
        } else if v.mode == Mode::Drive && !v.cyclist {
            let is_pocket = |l: LaneId| matches!(net.lanes[l].kind, LaneKind::TurnLane { .. });
            let remaining = lane.path.length() - v.s;
            // A driver who plans to turn left at the next junction moves over, before the
            // pocket opens, to the lane it branches from; one decision per lane, then a wait
            // for a gap in that lane until this one runs out.
            let here = v.route[v.at];
            if v.turn_plan_on.is_none_or(|(on, _)| on != here)
                && v.s > 2.0
                && remaining > 10.0
                && let Some(l2) = lane.left
                && left_pocket_after(net, l2).is_some()
            {
                v.turn_plan_on = Some((here, rng.random_bool(0.4)));
            }
            if let Some((on, true)) = v.turn_plan_on
                && on == here
                && remaining > 10.0
                && t - v.last_lane_change > 3.0
                && let Some(l2) = lane.left
                && let Some(pocket) = left_pocket_after(net, l2)
            {
                self.change_lane_towards(&mut v, l2, Some(pocket), t, bodies);
                if v.route[v.at] != here {
                    v.turn_plan_on = None;
                }
            } else if gap < 20.0
                && leader_speed < v.desired_speed * 0.6
                && t - v.last_lane_change > 6.0
                && rng.random_bool(0.05)
                && let Some(l2) = lane.left.or(lane.right)
                // Pockets are entered where they branch off, for a turn, not to overtake.
                && !is_pocket(l2)
                && !is_pocket(v.route[v.at])
            {
                self.change_lane(&mut v, l2, t, bodies);
            }
        }

        // Stop lines ahead: a stop sign, or an intersection another road is using (that one
        // only once near enough to matter).
        let lane = &net.lanes[v.route[v.at]];
        let to_end = lane.path.length() - v.s;
        let mut lane_end = to_end;
        for k in v.at..v.route.len() {
            let l = &net.lanes[v.route[k]];
            if k > v.at {
                lane_end += l.path.length();
            }
            if lane_end - l.path.length() > lookahead {
                break;
            }
            if matches!(l.kind, LaneKind::Connector { .. }) {
                continue;
            }
            let must_stop = l.stop_at_end && v.stopped_for != Some(k);
            // Another road's vehicle holds the intersection (and held it before me).
            let mine = l.end_node.and_then(|n| self.reservations[n].iter().find(|c| c.vehicle == i).copied());
            let busy = lane_end < braking + 15.0
                && l.end_node.is_some_and(|n| {
                    self.reservations[n].iter().any(|c| {
                        c.vehicle != i
                            && lane_road(net, c.from) != lane_road(net, v.route[k])
                            && mine.is_none_or(|m| c.since < m.since)
                    })
                });
            // Close enough that I will not stop comfortably: I claim it.
            if k == v.at
                && !must_stop
                && !busy
                && mine.is_none()
                && let Some(n) = l.end_node
                && lane_end - v.length / 2.0 < braking + 5.0
            {
                self.reservations[n].push(Reservation { vehicle: i, from: v.route[k], since: t });
            }
            if must_stop || busy {
                let g = lane_end - v.length / 2.0 - 1.0;
                if g < gap {
                    gap = g.max(0.0);
                    leader_speed = 0.0;
                }
            }
            if k == v.at && must_stop && to_end < v.length / 2.0 + 3.0 && v.v < 0.2 {
                match v.mode {
                    Mode::StoppedAtSign(since) if t - since > 1.5 && !busy => {
                        v.stopped_for = Some(v.at);
                        v.mode = Mode::Drive;
                    }
                    Mode::StoppedAtSign(_) => {}
                    _ => v.mode = Mode::StoppedAtSign(t),
                }
            }
            if must_stop || busy {
                break;
            }
        }

        // Speeds ahead: lane limits, curves at my lateral-acceleration limit, speed bumps.
        let cap = |lane: LaneId| v.desired_speed.min(net.lanes[lane].speed_limit * 1.1);
        let mut v0 = cap(v.route[v.at]);
        let mut a_ahead = f64::INFINITY;
        let horizon = (braking * 1.5 + 20.0).clamp(30.0, 150.0);
        let mut x = 0.0;
        let (mut at, mut s) = (v.at, v.s);
        while x <= horizon && at < v.route.len() {
            let len = net.lanes[v.route[at]].path.length();
            if s > len {
                s -= len;
                at += 1;
                continue;
            }
            let p = net.lanes[v.route[at]].path.pose_at(s).0;
            let mut limit = cap(v.route[at]);
            let kappa = self.route_curvature(&v, x).abs();
            limit = limit.min((v.driver.a_lat / kappa.max(1e-6)).sqrt());
            if self.bumps.iter().any(|b| (b - p).norm() < 12.0) {
                limit = limit.min(3.5);
            }
            if x == 0.0 {
                v0 = v0.min(limit);
            } else if limit < v.v {
                a_ahead = a_ahead.min((limit * limit - v.v * v.v) / (2.0 * (x - 1.0).max(0.5)));
            }
            s += 2.0;
            x += 2.0;
        }
        if v.mode == Mode::PullOver {
            v0 = if (v.d - v.d_target).abs() < 0.3 { 0.0 } else { 3.0 };
        }
        if v.swerve.is_some() && v.d_target.abs() > LANE_WIDTH / 2.0 {
            v0 = v0.min(4.0);
        }
        let a = v.driver.follow(v.v, v0, gap, leader_speed).min(a_ahead);
        v.a_cmd = a.clamp(-v.driver.b_hard, v.driver.a_max);
        self.vehicles[i] = v;
    }

    /// A lane change: continue on the neighbour lane from the same place, starting with the
    /// lateral offset that keeps the car where it is, and glide to its centre.
    fn change_lane(&self, v: &mut Vehicle, to: LaneId, t: f64, bodies: &[Body]) {
        self.change_lane_towards(v, to, None, t, bodies);
    }

    /// A lane change onto `to` whose route goes on through `via` (one of `to`'s exits) when
    /// given, else a random route from `to`; none while someone is beside me there.
    fn change_lane_towards(&self, v: &mut Vehicle, to: LaneId, via: Option<LaneId>, t: f64, bodies: &[Body]) {
        let pos = v.centre();
        let path = &self.net.lanes[to].path;
        let (s, d) = path.project(&pos);
        if s < 1.0 || s > path.length() - 5.0 || !lane_free(v, bodies, -d) {
            return;
        }
        let mut rng = rand::SeedableRng::seed_from_u64(to as u64 ^ (t * 10.0) as u64);
        let rest: Vec<LaneId> = match via {
            Some(next) => std::iter::once(to).chain(random_route(self.net, next, 300.0, &mut rng)).collect(),
            None => random_route(self.net, to, 300.0, &mut rng),
        };
        v.route.truncate(v.at);
        v.route.extend(rest);
        // The lateral profile carries over, measured from the new lane's centre.
        v.lateral.d += d - v.d;
        v.s = s;
        v.d = d;
        v.d_target = v.home_offset();
        v.last_lane_change = t;
    }

    /// Points every metre along my path ahead, from my position, with how far along they
    /// are: on the lateral offsets my plan will take me through (`planned`), or on the lane
    /// centres as I would keep to them.
    fn corridor(&self, v: &Vehicle, lookahead: f64, planned: bool) -> Vec<(P2, f64)> {
        let mut out = Vec::new();
        let mut at = v.at;
        let mut s = v.s;
        let mut along = 0.0;
        let lim = v.lateral_limits();
        let span = lim.distance(v.d_target - v.d, v.v);
        while along <= lookahead && at < v.route.len() {
            let path = &self.net.lanes[v.route[at]].path;
            if s > path.length() {
                s -= path.length();
                at += 1;
                continue;
            }
            let (p, h) = path.pose_at(s);
            let offset = if planned { v.d + (v.d_target - v.d) * smoothstep(along / span) } else { v.home_offset() };
            out.push((p + left(&dir(h)) * offset, along));
            s += 1.0;
            along += 1.0;
        }
        out
    }

    fn finish(mut self) -> AgentWorld {
        // Waymo-style ids: 22 characters from [A-Za-z0-9_-], deterministic per instance.
        for t in &mut self.trajs {
            t.id = object_id(t.instance);
        }
        let mut trajs = self.trajs;
        let ego = trajs.remove(0);
        AgentWorld { ego, others: trajs }
    }
}

/// Whether the lane whose centre is `offset` metres to my left (negative: right) is free
/// beside me: nobody within a few metres ahead, nobody behind who would reach me within
/// about a second and a half.
fn lane_free(v: &Vehicle, bodies: &[Body], offset: f64) -> bool {
    let (pos, fwd) = (v.centre(), dir(v.heading));
    let side = left(&fwd);
    bodies.iter().all(|b| {
        let rel = b.pos - pos;
        let (along, lat) = (rel.dot(&fwd), rel.dot(&side));
        let closing = (b.vel.dot(&fwd) - v.v).max(0.0);
        let behind = v.length / 2.0 + b.half_length + 4.0 + 1.5 * closing;
        let ahead = v.length / 2.0 + b.half_length + 4.0 + 0.5 * v.v;
        b.traj == v.traj || (lat - offset).abs() > LANE_WIDTH / 2.0 + b.half_width || along < -behind || along > ahead
    })
}

/// Whether nobody comes the other way in the lane to my left over the next `distance`
/// metres, in the time I need to drive them.
fn oncoming_clear(v: &Vehicle, bodies: &[Body], distance: f64) -> bool {
    let (pos, fwd) = (v.centre(), dir(v.heading));
    let side = left(&fwd);
    let time = distance / v.v.max(3.0);
    bodies.iter().filter(|b| b.vehicle && b.traj != v.traj).all(|b| {
        let rel = b.pos - pos;
        let (along, lat) = (rel.dot(&fwd), rel.dot(&side));
        let towards = (-b.vel.dot(&fwd)).max(0.0);
        !(0.5..=2.0 * LANE_WIDTH).contains(&lat) || along < -b.half_length || along > distance + towards * time + 10.0
    })
}

/// Where `p` is along a corridor (metres ahead) and how far to its side, if near it.
fn corridor_hit(corridor: &[(P2, f64)], p: &P2) -> Option<(f64, f64)> {
    let mut best: Option<(f64, f64, f64)> = None;
    for w in corridor.windows(2) {
        let (a, sa) = w[0];
        let (b, _) = w[1];
        let seg = b - a;
        let len2 = seg.norm_squared().max(1e-9);
        let t = ((p - a).dot(&seg) / len2).clamp(0.0, 1.0);
        let q = a + seg * t;
        let dist = (p - q).norm();
        if best.is_none_or(|(d, _, _)| dist < d) {
            let side = seg.x * (p.y - a.y) - seg.y * (p.x - a.x);
            best = Some((dist, sa + t * len2.sqrt(), dist * side.signum()));
        }
    }
    let (dist, along, lateral) = best?;
    // Ignore what is behind the start of the corridor.
    (dist < 6.0 && along > 0.0).then_some((along, lateral))
}

/// Signed distance from the centre line of the nearest road (and whether one is near).
fn nearest_road_offset(net: &RoadNetwork, p: &P2) -> (Option<usize>, f64) {
    let mut best = (None, f64::INFINITY);
    for (r, road) in net.roads.iter().enumerate() {
        let (_, d) = road.centre.project(p);
        if d.abs() < best.1.abs() {
            best = (Some(r), d);
        }
    }
    best
}

/// A random route from `start` through the lane graph, at least `min_length` metres.
pub fn random_route(net: &RoadNetwork, start: LaneId, min_length: f64, rng: &mut ChaCha8Rng) -> Vec<LaneId> {
    let mut route = vec![start];
    let mut length = net.lanes[start].path.length();
    while length < min_length && route.len() < 64 {
        let exits = &net.lanes[*route.last().unwrap_or(&start)].exit;
        if exits.is_empty() {
            break;
        }
        let weights: Vec<f64> = exits.iter().map(|&e| route_weight(net, e)).collect();
        let total: f64 = weights.iter().sum();
        let mut pick = rng.random_range(0.0..total);
        let mut next = exits[0];
        for (e, w) in exits.iter().zip(&weights) {
            if pick < *w {
                next = *e;
                break;
            }
            pick -= w;
        }
        route.push(next);
        length += net.lanes[next].path.length();
    }
    route
}

/// How likely a route takes lane `e` among its siblings: by turn for connectors; a lane
/// before a junction (a turn pocket, or a through lane where pockets branch off) weighs
/// what its turns weigh together, so the turn mix is the same with or without pockets.
fn route_weight(net: &RoadNetwork, e: LaneId) -> f64 {
    let by_turn = |l: LaneId| match net.lanes[l].kind {
        LaneKind::Connector { turn: Turn::Straight, .. } => 4.0,
        LaneKind::Connector { turn: Turn::Left | Turn::Right, .. } => 2.5,
        LaneKind::Connector { turn: Turn::UTurn, .. } => 0.8,
        LaneKind::Road { .. } | LaneKind::TurnLane { .. } => 4.0,
    };
    match net.lanes[e].kind {
        LaneKind::Connector { .. } => by_turn(e),
        _ => {
            let exits = &net.lanes[e].exit;
            if exits.iter().all(|&x| matches!(net.lanes[x].kind, LaneKind::Connector { .. })) && !exits.is_empty() {
                exits.iter().map(|&x| by_turn(x)).sum()
            } else {
                4.0
            }
        }
    }
}

/// A 22-character id in Waymo's style, deterministic for an instance number.
fn object_id(instance: u32) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = (instance as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x0005_DEEC_E66D;
    (0..22)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

impl State {
    pub fn speed(&self) -> f64 {
        self.vel.norm()
    }
}

/// The position of a state as a 3-D point on the ground.
pub fn ground_point(s: &State) -> P3 {
    vector![s.pos.x, s.pos.y, 0.0]
}

impl AgentWorld {
    /// Every trajectory as a WOMD-style track (world frame), the ego first.
    pub fn tracks(&self) -> Vec<crate::scene::Track> {
        std::iter::once(&self.ego).chain(&self.others).map(to_track).collect()
    }
}

fn to_track(t: &Trajectory) -> crate::scene::Track {
    use crate::scene::{AgentState, AgentType, Track};
    let agent_type = match t.kind {
        ObjectKind::Car | ObjectKind::Truck | ObjectKind::Bus => AgentType::Vehicle,
        ObjectKind::Pedestrian => AgentType::Pedestrian,
        ObjectKind::Cyclist => AgentType::Cyclist,
        _ => AgentType::Other,
    };
    let [l, w, h] = t.size;
    let states = t
        .states
        .iter()
        .map(|s| match s {
            Some(s) => AgentState {
                x: s.pos.x,
                y: s.pos.y,
                z: h / 2.0,
                length: l as f32,
                width: w as f32,
                height: h as f32,
                heading: s.heading as f32,
                velocity_x: s.vel.x as f32,
                velocity_y: s.vel.y as f32,
                valid: true,
            },
            None => AgentState::default(),
        })
        .collect();
    Track { id: t.instance as i64, source_id: t.id.clone(), agent_type, states }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::road::RoadConfig;
    use rand::SeedableRng;

    /// Drivers use the turn pockets as drivers do: whoever is in a left pocket turns left
    /// (or U-turns) at its end, through traffic does not enter pockets, and drivers on an
    /// outer lane who plan a left turn move over to the lane the pocket branches from.
    #[test]
    fn left_turners_move_into_pockets_and_turn() {
        let (mut in_pockets, mut moved_over) = (0, 0);
        for seed in 0..16 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let net = RoadNetwork::generate(&RoadConfig::default(), &mut rng);
            let cfg = AgentConfig { obstacles: 0, ..AgentConfig::default() };
            let mut sim = Sim::new(&net, &cfg, &mut rng);
            let mut visited: Vec<Vec<LaneId>> = vec![Vec::new(); sim.vehicles.len()];
            for step in 0..cfg.steps {
                for (i, v) in sim.vehicles.iter().enumerate() {
                    let lane = v.route[v.at];
                    if visited[i].last() != Some(&lane) {
                        visited[i].push(lane);
                    }
                }
                sim.advance(step as f64 * cfg.dt, &mut rng);
            }
            let is_left_pocket = |l: LaneId| matches!(net.lanes[l].kind, LaneKind::TurnLane { turn: Turn::Left, .. });
            for lanes in &visited {
                for (k, &l) in lanes.iter().enumerate() {
                    if !is_left_pocket(l) {
                        continue;
                    }
                    in_pockets += 1;
                    if let Some(&next) = lanes.get(k + 1) {
                        assert!(
                            matches!(net.lanes[next].kind, LaneKind::Connector { turn: Turn::Left | Turn::UTurn, .. }),
                            "a left pocket leads into a left turn, not {:?}",
                            net.lanes[next].kind
                        );
                    }
                    // Where from: an outer lane of the same road, then the pocket's feeder.
                    if k >= 2
                        && net.lanes[l].entry.contains(&lanes[k - 1])
                        && matches!(net.lanes[lanes[k - 2]].kind, LaneKind::Road { index, .. } if index > 0)
                        && net.lanes[lanes[k - 2]].left == Some(lanes[k - 1])
                    {
                        moved_over += 1;
                    }
                }
            }
        }
        eprintln!("{in_pockets} vehicles in left pockets, {moved_over} of them moved over from an outer lane first");
        assert!(in_pockets >= 5, "{in_pockets} vehicles used left pockets");
        assert!(moved_over >= 1, "no driver moved over for a left turn");
    }
}
