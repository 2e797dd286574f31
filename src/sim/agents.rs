//! Agents with behaviour on a [`RoadNetwork`]: vehicles that follow routes through the lane
//! graph with an IDM speed controller, stop at stop signs, take turns at intersections one
//! road at a time, turn (moving over to the lane a left-turn pocket branches from when they
//! plan a left turn), U-turn, change lanes, swerve around unlabelled obstacles and pull
//! over to park; cyclists keeping right; pedestrians on sidewalks and crosswalks (some
//! jaywalking, some turning back); parked cars. The ego vehicle is a vehicle like the others.

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

/// One agent's state at one step (world frame).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub pos: P2,
    pub heading: f64,
    pub vel: P2,
    pub accel: P2,
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
// Vehicles.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Drive,
    /// Stopped at a stop line since this time.
    StoppedAtSign(f64),
    /// Pulling over to park, then parked.
    PullOver,
}

#[derive(Debug, Clone)]
struct Vehicle {
    traj: usize,
    route: Vec<LaneId>,
    /// Index in `route` of the current lane.
    at: usize,
    s: f64,
    v: f64,
    /// Lateral offset from the lane centre (left positive) and its target.
    d: f64,
    d_target: f64,
    desired_speed: f64,
    length: f64,
    width: f64,
    mode: Mode,
    /// The stop sign at the end of this route index was obeyed.
    stopped_for: Option<usize>,
    pull_over_at: Option<f64>,
    cyclist: bool,
    last_lane_change: f64,
    /// The lane on which this driver last decided whether to move over for a left turn.
    turn_plan_on: Option<LaneId>,
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
    s: f64,
    speed: f64,
    /// Waits (at a curb) until this time.
    wait_until: f64,
}

/// Something vehicles must not drive into: position, heading, half extents.
#[derive(Debug, Clone, Copy)]
struct Body {
    pos: P2,
    half_length: f64,
    half_width: f64,
    /// Index into `others` trajectories (the ego is `usize::MAX`).
    traj: usize,
    speed: f64,
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

/// Runs the simulation.
pub fn simulate(net: &RoadNetwork, cfg: &AgentConfig, rng: &mut ChaCha8Rng) -> AgentWorld {
    let mut sim = Sim::new(net, cfg, rng);
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
    /// For each node: the vehicles (indices into `vehicles`) on its connectors, with the
    /// road lane they came from.
    occupants: Vec<Vec<(usize, LaneId)>>,
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

impl<'a> Sim<'a> {
    fn new(net: &'a RoadNetwork, cfg: &AgentConfig, rng: &mut ChaCha8Rng) -> Self {
        let mut sim = Sim {
            net,
            cfg: cfg.clone(),
            trajs: Vec::new(),
            vehicles: Vec::new(),
            fixed: Vec::new(),
            peds: Vec::new(),
            occupants: vec![Vec::new(); net.nodes.len()],
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
            let desired_speed = if cyclist { rng.random_range(4.0..6.5) } else { limit * rng.random_range(0.85..1.1) };
            let route = random_route(net, lane, 600.0, rng);
            let pull_over_at = (!cyclist && i != 0 && rng.random_bool(0.1)).then(|| rng.random_range(3.0..12.0));
            let d = if cyclist { -(LANE_WIDTH / 2.0 - 0.7) } else { 0.0 };
            sim.vehicles.push(Vehicle {
                traj,
                route,
                at: 0,
                s,
                v: desired_speed * rng.random_range(0.5..1.0),
                d,
                d_target: d,
                desired_speed,
                length: size[0],
                width: size[1],
                mode: Mode::Drive,
                stopped_for: None,
                pull_over_at,
                cyclist,
                last_lane_change: -10.0,
                turn_plan_on: None,
            });
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
            let walk = rng.random_range(8.0..25.0);
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
                    pts.push(end + across + dir(h) * rng.random_range(5.0..15.0));
                }
                // Turn back to the right onto a parallel line: a right U-turn.
                2 => {
                    let right = -left(&dir(h));
                    pts.push(end + dir(h) * 1.0 + right * 0.8);
                    pts.push(end + right * 1.6);
                    pts.push(end + right * 1.6 - dir(h) * rng.random_range(6.0..14.0));
                }
                _ => {}
            }
            let traj = self.push_traj(
                ObjectKind::Pedestrian,
                [0.6, 0.6, rng.random_range(1.55..1.9)],
                [rng.random_range(40..220), 80, 120],
            );
            self.peds.push(Pedestrian {
                traj,
                path: Polyline::new(pts),
                s: 0.0,
                speed: rng.random_range(1.0..1.6),
                wait_until: if k % 5 < 2 { rng.random_range(0.0..6.0) } else { 0.0 },
            });
        }
    }

    fn vehicle_pose(&self, v: &Vehicle) -> (P2, f64) {
        let path = &self.net.lanes[v.route[v.at]].path;
        let (p, h) = path.pose_at(v.s);
        // Heading leans into lateral motion so a lane change looks like one.
        let lateral_rate = (v.d_target - v.d).clamp(-1.0, 1.0) * 0.6;
        let lean = if v.v > 0.5 { (lateral_rate / v.v.max(1.0)).atan() } else { 0.0 };
        (p + left(&dir(h)) * v.d, wrap(h + lean))
    }

    fn bodies(&self) -> Vec<Body> {
        let mut out = Vec::new();
        for v in &self.vehicles {
            let (pos, _) = self.vehicle_pose(v);
            out.push(Body { pos, half_length: v.length / 2.0, half_width: v.width / 2.0, traj: v.traj, speed: v.v });
        }
        for f in &self.fixed {
            out.push(Body {
                pos: f.pos,
                half_length: f.length / 2.0,
                half_width: f.width / 2.0,
                traj: f.traj,
                speed: 0.0,
            });
        }
        for p in &self.peds {
            let (pos, _) = p.path.pose_at(p.s);
            out.push(Body { pos, half_length: 0.4, half_width: 0.4, traj: p.traj, speed: p.speed });
        }
        out
    }

    fn record(&mut self, step: usize) {
        let dt = self.cfg.dt;
        let mut poses: Vec<(usize, P2, f64)> = Vec::new();
        for v in &self.vehicles {
            let (p, h) = self.vehicle_pose(v);
            poses.push((v.traj, p, h));
        }
        for f in &self.fixed {
            poses.push((f.traj, f.pos, f.heading));
        }
        for p in &self.peds {
            let (pos, h) = p.path.pose_at(p.s);
            poses.push((p.traj, pos, h));
        }
        for (traj, pos, heading) in poses {
            let prev = if step > 0 { self.trajs[traj].states[step - 1] } else { None };
            let vel = prev.map(|q| (pos - q.pos) / dt).unwrap_or_else(P2::zeros);
            let accel = prev.map(|q| (vel - q.vel) / dt).unwrap_or_else(P2::zeros);
            // A pedestrian standing still keeps the heading it had.
            let heading = match prev {
                Some(q) if vel.norm() < 0.05 => q.heading,
                _ => heading,
            };
            self.trajs[traj].states[step] = Some(State { pos, heading, vel, accel });
        }
    }

    fn advance(&mut self, t: f64, rng: &mut ChaCha8Rng) {
        let dt = self.cfg.dt;
        let bodies = self.bodies();
        // Intersection occupancy: who is on which node's connectors.
        for occ in &mut self.occupants {
            occ.clear();
        }
        for (i, v) in self.vehicles.iter().enumerate() {
            if let LaneKind::Connector { node, .. } = self.net.lanes[v.route[v.at]].kind {
                let from = if v.at > 0 { v.route[v.at - 1] } else { v.route[v.at] };
                self.occupants[node].push((i, from));
            }
        }
        for i in 0..self.vehicles.len() {
            self.step_vehicle(i, t, dt, &bodies, rng);
        }
        for p in &mut self.peds {
            if t < p.wait_until {
                continue;
            }
            // Pedestrians on the road wait for close, fast traffic before stepping out.
            p.s = (p.s + p.speed * dt).min(p.path.length());
        }
    }

    fn step_vehicle(&mut self, i: usize, t: f64, dt: f64, bodies: &[Body], rng: &mut ChaCha8Rng) {
        let net = self.net;
        let mut v = self.vehicles[i].clone();
        if v.route.len() < v.at + 3 {
            let last = *v.route.last().unwrap_or(&v.route[v.at]);
            let more = random_route(net, last, 300.0, rng);
            v.route.extend(more.into_iter().skip(1));
        }
        let (pos, heading) = self.vehicle_pose(&v);

        // Pull over: once its time comes on a lane with a shoulder, move right and stop.
        if let (Some(when), Mode::Drive) = (v.pull_over_at, v.mode)
            && t >= when
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

        // Leader: the closest body in my corridor ahead; obstacles blocking my lane.
        let lookahead = (v.v * 4.0).max(35.0);
        let corridor = self.corridor(&v, lookahead);
        let mut gap = f64::INFINITY;
        let mut leader_speed = 0.0;
        let mut blocked_by_static: Option<f64> = None;
        for b in bodies {
            if b.traj == v.traj || (b.pos - pos).norm() > lookahead + 15.0 {
                continue;
            }
            if let Some((along, lateral)) = corridor_hit(&corridor, &b.pos) {
                let reach = v.width / 2.0 + b.half_width.max(b.half_length.min(1.5)) + 0.3;
                if lateral.abs() < reach {
                    let g = along - v.length / 2.0 - b.half_length;
                    if g < gap {
                        gap = g;
                        leader_speed = b.speed;
                    }
                    if b.speed < 0.1 && is_obstacle(&self.trajs[b.traj].kind) {
                        blocked_by_static = Some(blocked_by_static.map_or(g, |x: f64| x.min(g)));
                    }
                }
            }
        }

        // React to a static obstacle ahead: change lane if a neighbour exists, else swerve.
        let lane = &net.lanes[v.route[v.at]];
        if let (Some(g), Mode::Drive) = (blocked_by_static, v.mode) {
            if g < 30.0 && t - v.last_lane_change > 4.0 {
                if let Some(l2) = lane.left {
                    self.change_lane(&mut v, l2, t);
                    gap = f64::INFINITY;
                } else if !v.cyclist {
                    // Swerve left around it, into the opposite lane if need be.
                    v.d_target = LANE_WIDTH * 0.75;
                    gap = gap.max(8.0);
                    leader_speed = leader_speed.max(3.0);
                }
            }
        } else if v.mode == Mode::Drive && !v.cyclist {
            v.d_target = 0.0;
            let is_pocket = |l: LaneId| matches!(net.lanes[l].kind, LaneKind::TurnLane { .. });
            let remaining = lane.path.length() - v.s;
            // A driver who plans to turn left at the next junction moves over, before the
            // pocket opens, to the lane it branches from; one decision per lane.
            if v.turn_plan_on != Some(v.route[v.at])
                && v.s > 2.0
                && remaining > 10.0
                && let Some(l2) = lane.left
                && let Some(pocket) = left_pocket_after(net, l2)
            {
                v.turn_plan_on = Some(v.route[v.at]);
                if t - v.last_lane_change > 3.0 && rng.random_bool(0.4) {
                    self.change_lane_towards(&mut v, l2, Some(pocket), t);
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
                self.change_lane(&mut v, l2, t);
            }
        }

        // Stop lines: a stop sign, or an intersection another road is using.
        let to_end = lane.path.length() - v.s;
        if !matches!(lane.kind, LaneKind::Connector { .. }) {
            let must_stop = lane.stop_at_end && v.stopped_for != Some(v.at);
            let busy = lane.end_node.is_some_and(|n| {
                self.occupants[n]
                    .iter()
                    .any(|&(j, from)| j != i && lane_road(net, from) != lane_road(net, v.route[v.at]))
            });
            if must_stop || busy {
                let g = to_end - v.length / 2.0 - 1.0;
                if g < gap {
                    gap = g.max(0.0);
                    leader_speed = 0.0;
                }
            }
            if must_stop && to_end < v.length / 2.0 + 3.0 && v.v < 0.2 {
                match v.mode {
                    Mode::StoppedAtSign(since) if t - since > 1.5 && !busy => {
                        v.stopped_for = Some(v.at);
                        v.mode = Mode::Drive;
                    }
                    Mode::StoppedAtSign(_) => {}
                    _ => v.mode = Mode::StoppedAtSign(t),
                }
            }
        }

        // Speed over bumps and through turns.
        let mut v0 = v.desired_speed.min(lane.speed_limit * 1.1);
        if let Some(next) = v.route.get(v.at + 1) {
            let next_limit = net.lanes[*next].speed_limit;
            if next_limit < v0 && to_end < 30.0 {
                v0 = next_limit + (v0 - next_limit) * (to_end / 30.0);
            }
        }
        if let Some(road) = lane.kind.road()
            && let Some(bump) = net.roads[road].speed_bump_at
        {
            // Lanes may cover only part of the road (split where pockets branch off).
            let (s_on_road, _) = net.roads[road].centre.project(&pos);
            if (s_on_road - bump).abs() < 12.0 {
                v0 = v0.min(3.5);
            }
        }
        if v.mode == Mode::PullOver {
            v0 = if (v.d - v.d_target).abs() < 0.3 { 0.0 } else { 3.0 };
        }
        if v.d_target.abs() > LANE_WIDTH / 2.0 && v.mode == Mode::Drive {
            v0 = v0.min(4.0);
        }

        // IDM.
        let (a_max, b_comf, s0, time_gap): (f64, f64, f64, f64) = (1.6, 2.5, 2.0, 1.3);
        let free = 1.0 - (v.v / v0.max(0.1)).powi(4);
        let interaction = if gap.is_finite() {
            let dv = v.v - leader_speed;
            let s_star = s0 + v.v * time_gap + v.v * dv / (2.0 * (a_max * b_comf).sqrt());
            (s_star.max(0.0) / gap.max(0.1)).powi(2)
        } else {
            0.0
        };
        let a = (a_max * (free - interaction)).clamp(-8.0, a_max);
        v.v = (v.v + a * dt).max(0.0);
        if v0 <= 0.0 && v.v < 0.3 {
            v.v = 0.0;
        }

        // Lateral motion: a smooth approach to the target offset.
        let max_rate = 1.0 * dt;
        let delta = (v.d_target - v.d).clamp(-max_rate, max_rate);
        v.d += delta * (0.5 + 0.5 * (v.v / 5.0).min(1.0));

        // Advance along the route.
        v.s += v.v * dt;
        loop {
            let len = net.lanes[v.route[v.at]].path.length();
            if v.s <= len || v.at + 1 >= v.route.len() {
                break;
            }
            v.s -= len;
            v.at += 1;
        }
        let _ = heading;
        self.vehicles[i] = v;
    }

    /// A lane change: continue on the neighbour lane from the same place, starting with the
    /// lateral offset that keeps the car where it is, and glide to its centre.
    fn change_lane(&self, v: &mut Vehicle, to: LaneId, t: f64) {
        self.change_lane_towards(v, to, None, t);
    }

    /// A lane change onto `to` whose route goes on through `via` (one of `to`'s exits) when
    /// given, else a random route from `to`.
    fn change_lane_towards(&self, v: &mut Vehicle, to: LaneId, via: Option<LaneId>, t: f64) {
        let (pos, _) = self.vehicle_pose(v);
        let path = &self.net.lanes[to].path;
        let (s, d) = path.project(&pos);
        if s < 1.0 || s > path.length() - 5.0 {
            return;
        }
        let mut rng = rand::SeedableRng::seed_from_u64(to as u64 ^ (t * 10.0) as u64);
        let rest: Vec<LaneId> = match via {
            Some(next) => std::iter::once(to).chain(random_route(self.net, next, 300.0, &mut rng)).collect(),
            None => random_route(self.net, to, 300.0, &mut rng),
        };
        v.route.truncate(v.at);
        v.route.extend(rest);
        v.s = s;
        v.d = d;
        v.d_target = if v.cyclist { -(LANE_WIDTH / 2.0 - 0.7) } else { 0.0 };
        v.last_lane_change = t;
    }

    /// Points every metre along my path ahead, from my position.
    fn corridor(&self, v: &Vehicle, lookahead: f64) -> Vec<(P2, f64)> {
        let mut out = Vec::new();
        let mut at = v.at;
        let mut s = v.s;
        let mut along = 0.0;
        while along <= lookahead && at < v.route.len() {
            let path = &self.net.lanes[v.route[at]].path;
            if s > path.length() {
                s -= path.length();
                at += 1;
                continue;
            }
            let (p, h) = path.pose_at(s);
            // The corridor follows my lateral target so a swerve clears the obstacle.
            out.push((p + left(&dir(h)) * v.d_target, along));
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

fn is_obstacle(kind: &ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::Cone | ObjectKind::Debris | ObjectKind::StalledTruck | ObjectKind::Barrier | ObjectKind::Car
    )
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
        for seed in 0..3 {
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
