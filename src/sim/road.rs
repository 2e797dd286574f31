//! The procedural road network of a segment: a jittered grid of 3- and 4-way intersections
//! (some all-way stops) joined by curved multi-lane two-way roads, with turn connectors,
//! U-turns, left- and right-turn pockets on junction approaches, crosswalks, sidewalks, speed
//! bumps and driveways; and its WOMD-style map.
//!
//! A turn pocket is a real extra lane: on its approach the road widens on that side, the
//! through lanes shift outward over a short taper (left pocket) or the pocket opens beside
//! them (right pocket), and the through lanes are split where the pocket branches off, so
//! every lane keeps one entry point, one exit point and one neighbour per side. Road lines
//! ([`Road::lines`]) and road edges ([`Road::edge_offset`]) follow the widening; the map and
//! the rendered world are both drawn from them.

use std::f64::consts::PI;

use nalgebra::vector;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::geom::polyline::{P2, Polyline, dir, left, wrap};
use crate::scene::{MapFeature, MapFeatureType};

pub const LANE_WIDTH: f64 = 3.6;
/// Distance from an intersection's centre to where its roads begin, at least and at most:
/// an intersection whose turns would bend tighter than `MIN_TURN_RADIUS` (acute corners,
/// wide roads, bent roads arriving at an angle) starts its roads further out.
const NODE_RADIUS: f64 = 16.0;
const MAX_NODE_RADIUS: f64 = 34.0;
/// Smallest radius of a connector through an intersection at the lane centre, m: tight urban
/// corners are driven at 8-10 m; tighter, a car's body slips visibly off its path
/// (box-centre slip atan(l·κ) ≈ 10° at 8 m). U-turns are excepted: they turn on the spot.
pub const MIN_TURN_RADIUS: f64 = 8.0;
const SIDEWALK_WIDTH: f64 = 3.0;
const SAMPLE_STEP: f64 = 1.0;
/// Length over which a turn pocket opens beside the through lanes, m.
pub const POCKET_TAPER: f64 = 12.0;

pub type LaneId = usize;
pub type NodeId = usize;
pub type RoadId = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    Straight,
    Left,
    Right,
    UTurn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneKind {
    /// A lane of a road; `forward` is the road's a→b direction; `index` 0 is next to the centre line.
    Road { road: RoadId, forward: bool, index: usize },
    /// A dedicated turn lane (pocket) on the approach to a road's end: `turn` is
    /// [`Turn::Left`] (its exits are the left turns and U-turns) or [`Turn::Right`].
    TurnLane { road: RoadId, forward: bool, turn: Turn },
    /// A path through an intersection.
    Connector { node: NodeId, turn: Turn },
}

impl LaneKind {
    /// The road a road or turn lane belongs to.
    pub fn road(&self) -> Option<RoadId> {
        match *self {
            LaneKind::Road { road, .. } | LaneKind::TurnLane { road, .. } => Some(road),
            LaneKind::Connector { .. } => None,
        }
    }
}

/// Dedicated turn lanes on one approach to an intersection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pockets {
    pub left: bool,
    pub right: bool,
    /// Distance before the stop line (the road's end) where the pocket lanes branch off.
    pub start: f64,
}

impl Pockets {
    /// How far open (0 to 1) the pockets are `u` metres before the stop line: a smooth
    /// taper over [`POCKET_TAPER`] from where they branch off.
    pub fn opening(&self, u: f64) -> f64 {
        let t = ((self.start - u) / POCKET_TAPER).clamp(0.0, 1.0);
        t * t * (3.0 - 2.0 * t)
    }
    /// Where (before the stop line) the line between a pocket and the through lanes turns
    /// from broken (lane changes allowed) to solid.
    pub fn solid_from(&self) -> f64 {
        (self.start - POCKET_TAPER) * 0.6
    }
}

/// A painted line along a road, as written to the map and drawn in the world.
#[derive(Debug, Clone)]
pub struct RoadLine {
    /// One of the `RoadLine*` map feature types.
    pub kind: MapFeatureType,
    pub path: Polyline,
}

#[derive(Debug, Clone)]
pub struct Lane {
    pub id: LaneId,
    pub path: Polyline,
    pub kind: LaneKind,
    pub entry: Vec<LaneId>,
    pub exit: Vec<LaneId>,
    /// Same-direction neighbours (road lanes only).
    pub left: Option<LaneId>,
    pub right: Option<LaneId>,
    /// m/s.
    pub speed_limit: f64,
    /// The lane ends at a stop sign.
    pub stop_at_end: bool,
    /// For road lanes: the intersection at the lane's end.
    pub end_node: Option<NodeId>,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub pos: P2,
    pub all_way_stop: bool,
    pub allow_u_turn: bool,
    pub roads: Vec<RoadId>,
    /// Distance from `pos` to where the roads begin.
    pub radius: f64,
}

#[derive(Debug, Clone)]
pub struct Road {
    pub a: NodeId,
    pub b: NodeId,
    pub lanes_per_direction: usize,
    /// Parking / shoulder strip beyond the outermost lane on each side.
    pub shoulder: f64,
    pub centre: Polyline,
    /// m/s.
    pub speed_limit: f64,
    /// a→b through lanes as they leave a, index 0 next to the centre line.
    pub forward: Vec<LaneId>,
    /// b→a through lanes as they leave b, index 0 next to the centre line.
    pub backward: Vec<LaneId>,
    /// The a→b lanes arriving at b, from the centre line outward: the left pocket (if any),
    /// the through lanes, the right pocket (if any). Equal to `forward` without pockets.
    pub forward_end: Vec<LaneId>,
    /// The b→a lanes arriving at a, as `forward_end`.
    pub backward_end: Vec<LaneId>,
    /// Turn pockets on the approach to b (`[0]`) and to a (`[1]`).
    pub pockets: [Option<Pockets>; 2],
    pub speed_bump_at: Option<f64>,
}

impl Road {
    /// Distance from the centre line to the road edge (curb) where no pocket widens it.
    pub fn half_width(&self) -> f64 {
        self.lanes_per_direction as f64 * LANE_WIDTH + self.shoulder
    }

    /// Distance before the stop line of the approach in direction `forward`, at arc length `s`.
    fn approach_u(&self, forward: bool, s: f64) -> f64 {
        if forward { self.centre.length() - s } else { s }
    }

    /// How far the pockets of the approach in direction `forward` push the through lanes
    /// outward (left pocket) and how wide the right pocket is, at arc length `s`.
    pub fn widening(&self, forward: bool, s: f64) -> (f64, f64) {
        let Some(p) = self.pockets[if forward { 0 } else { 1 }] else { return (0.0, 0.0) };
        let open = p.opening(self.approach_u(forward, s)) * LANE_WIDTH;
        (if p.left { open } else { 0.0 }, if p.right { open } else { 0.0 })
    }

    /// Signed offset (left positive) of the road edge on `side` (+1 left of the centre line,
    /// where the b→a lanes run; −1 right) at arc length `s`, pockets included.
    pub fn edge_offset(&self, side: f64, s: f64) -> f64 {
        let (l, r) = self.widening(side < 0.0, s);
        side * (self.half_width() + l + r)
    }

    /// The line at signed offset `d(s)` (left positive) from the centre line between arc
    /// lengths `s0 < s1`: the centre's vertices moved along their mitred normals (as
    /// [`Polyline::offset`] does), with exact end points at `s0` and `s1`.
    pub fn offset_line(&self, s0: f64, s1: f64, d: impl Fn(f64) -> f64) -> Polyline {
        let pts = self.centre.points();
        let n = pts.len();
        let at = |s: f64| {
            let (p, h) = self.centre.pose_at(s);
            p + left(&dir(h)) * d(s)
        };
        let mut out = vec![at(s0)];
        let mut s = 0.0;
        for i in 0..n {
            if i > 0 {
                s += (pts[i] - pts[i - 1]).norm();
            }
            // Vertices close to the cut ends would make tiny, noisy segments.
            if i == 0 || i + 1 == n || s <= s0 + 0.3 || s >= s1 - 0.3 {
                continue;
            }
            let before = (pts[i] - pts[i - 1]).normalize();
            let after = (pts[i + 1] - pts[i]).normalize();
            let tangent = (before + after).try_normalize(1e-9).unwrap_or(before);
            let cos_half = tangent.dot(&before).max(0.5);
            out.push(pts[i] + left(&tangent) * (d(s) / cos_half));
        }
        out.push(at(s1));
        Polyline::new(out)
    }

    /// The painted lines: the double yellow centre line, broken white lines between lanes
    /// going one way, lines between turn pockets and through lanes (broken where a pocket
    /// opens, solid near the stop line), and the solid line of a parking shoulder.
    pub fn lines(&self) -> Vec<RoadLine> {
        use MapFeatureType as T;
        let len = self.centre.length();
        let n = self.lanes_per_direction as f64;
        let mut out = vec![RoadLine { kind: T::RoadLineSolidDoubleYellow, path: self.centre.clone() }];
        for forward in [true, false] {
            let sign = if forward { -1.0 } else { 1.0 };
            // Arc lengths of the stretch from `u_hi` to `u_lo` metres before the stop line.
            let span = |u_hi: f64, u_lo: f64| if forward { (len - u_hi, len - u_lo) } else { (u_lo, u_hi) };
            let line = |kind, (s0, s1): (f64, f64), d: &dyn Fn(f64) -> f64| RoadLine {
                kind,
                path: self.offset_line(s0, s1, |s| sign * d(s)),
            };
            for i in 1..self.lanes_per_direction {
                let d = |s: f64| i as f64 * LANE_WIDTH + self.widening(forward, s).0;
                out.push(line(T::RoadLineBrokenSingleWhite, (0.0, len), &d));
            }
            if let Some(p) = self.pockets[if forward { 0 } else { 1 }] {
                let open = p.start - POCKET_TAPER;
                let solid = p.solid_from();
                let mut pocket_line = |d: &dyn Fn(f64) -> f64| {
                    out.push(line(T::RoadLineBrokenSingleWhite, span(open, solid), d));
                    out.push(line(T::RoadLineSolidSingleWhite, span(solid, 0.0), d));
                };
                if p.left {
                    pocket_line(&|_| LANE_WIDTH);
                }
                if p.right {
                    pocket_line(&|s| n * LANE_WIDTH + self.widening(forward, s).0);
                }
            }
            if self.shoulder > 1.0 {
                let d = |s: f64| {
                    let (l, r) = self.widening(forward, s);
                    n * LANE_WIDTH + l + r
                };
                out.push(line(T::RoadLineSolidSingleWhite, (0.0, len), &d));
            }
        }
        out
    }

    /// The two road edges (curbs): right of the centre line, then left.
    pub fn edges(&self) -> [Polyline; 2] {
        let len = self.centre.length();
        [-1.0, 1.0].map(|side| self.offset_line(0.0, len, |s| self.edge_offset(side, s)))
    }
}

/// A closed polygon on the ground (crosswalk, speed bump, driveway).
#[derive(Debug, Clone)]
pub struct Area {
    pub kind: MapFeatureType,
    pub corners: Vec<P2>,
}

#[derive(Debug, Clone)]
pub struct StopSign {
    pub pos: P2,
    pub lanes: Vec<LaneId>,
}

/// Settings of the network generator.
#[derive(Debug, Clone)]
pub struct RoadConfig {
    pub grid: [usize; 2],
    /// Mean spacing of intersections, m.
    pub spacing: f64,
}

impl Default for RoadConfig {
    fn default() -> Self {
        RoadConfig { grid: [3, 3], spacing: 110.0 }
    }
}

#[derive(Debug, Clone)]
pub struct RoadNetwork {
    pub nodes: Vec<Node>,
    pub roads: Vec<Road>,
    pub lanes: Vec<Lane>,
    pub areas: Vec<Area>,
    pub stop_signs: Vec<StopSign>,
    /// Sidewalk centre lines (pedestrians walk along them), one per road side.
    pub sidewalks: Vec<Polyline>,
}

impl RoadNetwork {
    pub fn generate(cfg: &RoadConfig, rng: &mut ChaCha8Rng) -> Self {
        let [nx, ny] = cfg.grid;
        let mut nodes = Vec::new();
        for j in 0..ny {
            for i in 0..nx {
                let jitter = P2::new(rng.random_range(-12.0..12.0), rng.random_range(-12.0..12.0));
                nodes.push(Node {
                    pos: P2::new(i as f64 * cfg.spacing, j as f64 * cfg.spacing) + jitter,
                    all_way_stop: false,
                    allow_u_turn: false,
                    roads: Vec::new(),
                    radius: NODE_RADIUS,
                });
            }
        }
        let idx = |i: usize, j: usize| j * nx + i;
        let mut edges = Vec::new();
        for j in 0..ny {
            for i in 0..nx {
                if i + 1 < nx {
                    edges.push((idx(i, j), idx(i + 1, j)));
                }
                if j + 1 < ny {
                    edges.push((idx(i, j), idx(i, j + 1)));
                }
            }
        }
        // Remove some edges for T-junctions, keeping the graph connected and degree ≥ 2.
        let mut keep = vec![true; edges.len()];
        for e in 0..edges.len() {
            if rng.random_bool(0.2) {
                keep[e] = false;
                let degree_ok = [edges[e].0, edges[e].1].iter().all(|&n| {
                    edges.iter().enumerate().filter(|(k, (a, b))| keep[*k] && (*a == n || *b == n)).count() >= 2
                });
                if !degree_ok || !connected(nodes.len(), &edges, &keep) {
                    keep[e] = true;
                }
            }
        }
        let kept: Vec<(NodeId, NodeId)> = edges.iter().zip(&keep).filter(|(_, k)| **k).map(|(e, _)| *e).collect();
        // Build, then widen every intersection whose turns bend too tight and build again from
        // the same random state, until none does (or it has reached the largest radius).
        let start = rng.clone();
        loop {
            let mut attempt = start.clone();
            let net = RoadNetwork::build(nodes.clone(), &kept, &mut attempt);
            let mut widened = false;
            for n in net.tight_nodes() {
                if nodes[n].radius < MAX_NODE_RADIUS {
                    nodes[n].radius = (nodes[n].radius + 2.0).min(MAX_NODE_RADIUS);
                    widened = true;
                }
            }
            if !widened {
                *rng = attempt;
                return net;
            }
        }
    }

    /// The network on `nodes` (their radii fixed) with roads along `edges`.
    fn build(nodes: Vec<Node>, edges: &[(NodeId, NodeId)], rng: &mut ChaCha8Rng) -> Self {
        let mut net = RoadNetwork {
            nodes,
            roads: Vec::new(),
            lanes: Vec::new(),
            areas: Vec::new(),
            stop_signs: Vec::new(),
            sidewalks: Vec::new(),
        };
        for &(a, b) in edges {
            let lanes = if rng.random_bool(0.45) { 2 } else { 1 };
            let shoulder = if rng.random_bool(0.5) { 2.6 } else { 0.6 };
            let bend = if rng.random_bool(0.4) { rng.random_range(-18.0..18.0) } else { 0.0 };
            net.add_road(a, b, lanes, shoulder, bend, rng);
        }
        for n in 0..net.nodes.len() {
            let degree = net.nodes[n].roads.len();
            net.nodes[n].all_way_stop = degree >= 3 && rng.random_bool(0.45);
            net.nodes[n].allow_u_turn = degree >= 3 && rng.random_bool(0.5);
        }
        for r in 0..net.roads.len() {
            net.choose_pockets(r, rng);
            net.build_lanes(r);
        }
        for n in 0..net.nodes.len() {
            net.connect_node(n);
        }
        net.add_stop_signs();
        net.add_areas(rng);
        net
    }

    /// Intersections with a connector (U-turns aside) tighter than `MIN_TURN_RADIUS`.
    fn tight_nodes(&self) -> Vec<NodeId> {
        let mut out: Vec<NodeId> = self
            .lanes
            .iter()
            .filter_map(|l| match l.kind {
                LaneKind::Connector { node, turn } if turn != Turn::UTurn => {
                    (l.path.min_radius() < MIN_TURN_RADIUS).then_some(node)
                }
                _ => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The turn from road `r_in` (arriving at `node`) onto road `r_out` (leaving it), if
    /// that move is allowed; from the road centre lines' headings where they meet the node.
    fn turn_between(&self, node: NodeId, r_in: RoadId, r_out: RoadId) -> Option<Turn> {
        let (a, b) = (&self.roads[r_in], &self.roads[r_out]);
        let h_in = if a.b == node { a.centre.end_heading() } else { wrap(a.centre.start_heading() + PI) };
        let h_out = if b.a == node { b.centre.start_heading() } else { wrap(b.centre.end_heading() + PI) };
        let delta = wrap(h_out - h_in);
        Some(if r_in == r_out {
            if !self.nodes[node].allow_u_turn {
                return None;
            }
            Turn::UTurn
        } else if self.nodes[node].roads.len() == 2 || delta.abs() < 0.6 {
            Turn::Straight
        } else if delta > 0.0 {
            Turn::Left
        } else {
            Turn::Right
        })
    }

    /// Decides the turn pockets of both approaches of road `r`: only into real junctions
    /// with that turn to make, on roads long enough for the pocket and a stretch before it.
    /// A one-lane road may get both pockets, a two-lane road one, so the widened mouth stays
    /// within the intersection's reach.
    fn choose_pockets(&mut self, r: RoadId, rng: &mut ChaCha8Rng) {
        let len = self.roads[r].centre.length();
        let lanes = self.roads[r].lanes_per_direction;
        for (k, node) in [(0, self.roads[r].b), (1, self.roads[r].a)] {
            if self.nodes[node].roads.len() < 3 {
                continue;
            }
            let turns: Vec<Turn> =
                self.nodes[node].roads.iter().filter_map(|&out| self.turn_between(node, r, out)).collect();
            let start = rng.random_range(30.0..45.0f64).min(len - 12.0);
            let mut left = turns.contains(&Turn::Left) && rng.random_bool(0.6);
            let mut right = turns.contains(&Turn::Right) && (lanes == 1 || !left) && rng.random_bool(0.45);
            // The through lanes must keep a way on: a move no pocket takes.
            let keeps_a_move = |left: bool, right: bool| {
                turns.iter().any(|t| match t {
                    Turn::Straight => true,
                    Turn::Left | Turn::UTurn => !left,
                    Turn::Right => !right,
                })
            };
            if !keeps_a_move(left, right) {
                right = false;
            }
            if !keeps_a_move(left, right) {
                left = false;
            }
            // With several through lanes each keeps its own move only if straight on exists
            // (the inner lane turns left, the outer right, when the approach has no pocket).
            if lanes > 1 && !turns.contains(&Turn::Straight) {
                (left, right) = (false, false);
            }
            if (left || right) && start >= POCKET_TAPER + 12.0 {
                self.roads[r].pockets[k] = Some(Pockets { left, right, start });
            }
        }
    }

    /// The lanes of road `r` in both directions: through lanes split where pockets branch
    /// off, the pocket lanes, their connections and same-direction neighbours.
    fn build_lanes(&mut self, r: RoadId) {
        let road = self.roads[r].clone();
        let len = road.centre.length();
        let n = road.lanes_per_direction;
        for forward in [true, false] {
            let pockets = road.pockets[if forward { 0 } else { 1 }];
            let end_node = if forward { road.b } else { road.a };
            let sign = if forward { -1.0 } else { 1.0 };
            // The lane from `u_hi` to `u_lo` metres before the stop line, in driving
            // direction, at distance `d(s)` from the centre line.
            let piece = |u_hi: f64, u_lo: f64, d: &dyn Fn(f64) -> f64| {
                let (s0, s1) = if forward { (len - u_hi, len - u_lo) } else { (u_lo, u_hi) };
                let line = road.offset_line(s0, s1, |s| sign * d(s));
                if forward { line } else { line.reversed() }
            };
            let through = |i: usize, s: f64| (i as f64 + 0.5) * LANE_WIDTH + road.widening(forward, s).0;
            let kind = |index| LaneKind::Road { road: r, forward, index };
            let (starts, ends) = match pockets {
                None => {
                    let lanes: Vec<LaneId> = (0..n)
                        .map(|i| {
                            self.push_lane(
                                piece(len, 0.0, &|s| through(i, s)),
                                kind(i),
                                road.speed_limit,
                                Some(end_node),
                            )
                        })
                        .collect();
                    (lanes.clone(), lanes)
                }
                Some(p) => {
                    let up: Vec<LaneId> = (0..n)
                        .map(|i| {
                            self.push_lane(piece(len, p.start, &|s| through(i, s)), kind(i), road.speed_limit, None)
                        })
                        .collect();
                    let down: Vec<LaneId> = (0..n)
                        .map(|i| {
                            self.push_lane(
                                piece(p.start, 0.0, &|s| through(i, s)),
                                kind(i),
                                road.speed_limit,
                                Some(end_node),
                            )
                        })
                        .collect();
                    for i in 0..n {
                        self.link(up[i], down[i]);
                    }
                    let mut ends = Vec::new();
                    if p.left {
                        let l = self.push_lane(
                            piece(p.start, 0.0, &|_| 0.5 * LANE_WIDTH),
                            LaneKind::TurnLane { road: r, forward, turn: Turn::Left },
                            road.speed_limit,
                            Some(end_node),
                        );
                        self.link(up[0], l);
                        ends.push(l);
                    }
                    ends.extend(&down);
                    if p.right {
                        let d = |s: f64| {
                            let (l, r) = road.widening(forward, s);
                            (n as f64 - 0.5) * LANE_WIDTH + l + r
                        };
                        let l = self.push_lane(
                            piece(p.start, 0.0, &d),
                            LaneKind::TurnLane { road: r, forward, turn: Turn::Right },
                            road.speed_limit,
                            Some(end_node),
                        );
                        self.link(up[n - 1], l);
                        ends.push(l);
                    }
                    (up, ends)
                }
            };
            // Side by side rows, the centre line's side first: left/right neighbours.
            for row in [&starts, &ends] {
                for w in row.windows(2) {
                    self.lanes[w[0]].right = Some(w[1]);
                    self.lanes[w[1]].left = Some(w[0]);
                }
            }
            let road = &mut self.roads[r];
            if forward {
                (road.forward, road.forward_end) = (starts, ends);
            } else {
                (road.backward, road.backward_end) = (starts, ends);
            }
        }
    }

    fn link(&mut self, from: LaneId, to: LaneId) {
        self.lanes[from].exit.push(to);
        self.lanes[to].entry.push(from);
    }

    fn add_road(&mut self, a: NodeId, b: NodeId, lanes: usize, shoulder: f64, bend: f64, rng: &mut ChaCha8Rng) {
        let (pa, pb) = (self.nodes[a].pos, self.nodes[b].pos);
        let (ra, rb) = (self.nodes[a].radius, self.nodes[b].radius);
        let u = (pb - pa).normalize();
        // A road bends on a radius of at least ~40 m (a quadratic's curvature is about
        // 8·bend/reach²), however short widened intersections leave it.
        let reach = (pb - pa).norm() - ra - rb;
        let most = reach * reach / (8.0 * 40.0);
        let bend = bend.clamp(-most, most);
        // A quadratic whose control point lies `2·bend` beside the midpoint between the
        // nodes, starting and ending on the lines from each node to that point: a road
        // points straight at its intersections' centres, so their corners are regular.
        let ctrl = (pa + pb) / 2.0 + left(&u) * (2.0 * bend);
        let start = pa + (ctrl - pa).normalize() * ra;
        let end = pb + (ctrl - pb).normalize() * rb;
        let n = 64;
        let pts: Vec<P2> = (0..=n)
            .map(|i| {
                let t = i as f64 / n as f64;
                start * (1.0 - t) * (1.0 - t) + ctrl * 2.0 * t * (1.0 - t) + end * t * t
            })
            .collect();
        let centre = Polyline::new(pts).resampled(SAMPLE_STEP);
        let road_id = self.roads.len();
        let speed_limit = if lanes == 2 { rng.random_range(13.0..15.7) } else { rng.random_range(10.0..13.5) };
        let speed_bump_at =
            (centre.length() > 60.0 && rng.random_bool(0.2)).then(|| centre.length() * rng.random_range(0.35..0.65));
        self.roads.push(Road {
            a,
            b,
            lanes_per_direction: lanes,
            shoulder,
            centre,
            speed_limit,
            forward: Vec::new(),
            backward: Vec::new(),
            forward_end: Vec::new(),
            backward_end: Vec::new(),
            pockets: [None, None],
            speed_bump_at,
        });
        self.nodes[a].roads.push(road_id);
        self.nodes[b].roads.push(road_id);
    }

    fn push_lane(&mut self, path: Polyline, kind: LaneKind, speed_limit: f64, end_node: Option<NodeId>) -> LaneId {
        let id = self.lanes.len();
        self.lanes.push(Lane {
            id,
            path,
            kind,
            entry: Vec::new(),
            exit: Vec::new(),
            left: None,
            right: None,
            speed_limit,
            stop_at_end: false,
            end_node,
        });
        id
    }

    /// Lanes of `road` that end at `node` (from the centre line outward, turn pockets
    /// included), and the through lanes that start there (index order).
    pub fn lanes_at(&self, road: RoadId, node: NodeId) -> (&[LaneId], &[LaneId]) {
        let r = &self.roads[road];
        if r.b == node { (&r.forward_end, &r.backward) } else { (&r.backward_end, &r.forward) }
    }

    fn connect_node(&mut self, node: NodeId) {
        let roads = self.nodes[node].roads.clone();
        for &r_in in &roads {
            let incoming: Vec<LaneId> = self.lanes_at(r_in, node).0.to_vec();
            let pocket = |turn: Turn| {
                incoming
                    .iter()
                    .copied()
                    .find(|&l| matches!(self.lanes[l].kind, LaneKind::TurnLane { turn: t, .. } if t == turn))
            };
            let (left_pocket, right_pocket) = (pocket(Turn::Left), pocket(Turn::Right));
            let through: Vec<LaneId> =
                incoming.iter().copied().filter(|&l| matches!(self.lanes[l].kind, LaneKind::Road { .. })).collect();
            for &r_out in &roads {
                let outgoing: Vec<LaneId> = self.lanes_at(r_out, node).1.to_vec();
                let (Some(_), false, Some(turn)) =
                    (through.first(), outgoing.is_empty(), self.turn_between(node, r_in, r_out))
                else {
                    continue;
                };
                // Dedicated pockets take their turns away from the through lanes.
                let pairs: Vec<(LaneId, LaneId)> = match turn {
                    Turn::Straight => {
                        through.iter().enumerate().map(|(i, &l)| (l, outgoing[i.min(outgoing.len() - 1)])).collect()
                    }
                    Turn::Left | Turn::UTurn => vec![(left_pocket.unwrap_or(through[0]), outgoing[0])],
                    Turn::Right => {
                        vec![(right_pocket.unwrap_or(through[through.len() - 1]), outgoing[outgoing.len() - 1])]
                    }
                };
                for (l_in, l_out) in pairs {
                    let p0 = self.lanes[l_in].path.end();
                    let p3 = self.lanes[l_out].path.start();
                    let gap = (p3 - p0).norm();
                    let (h_in, h_out) = (self.lanes[l_in].path.end_heading(), self.lanes[l_out].path.start_heading());
                    let handle = if turn == Turn::UTurn { gap.max(6.0) * 0.9 + 4.0 } else { gap * 0.42 };
                    // Every turn (a "straight" one too, where a two-road corner bends) as a
                    // fillet; lanes that only shift sideways as a Bézier S-bend.
                    let fillet = match turn {
                        Turn::UTurn => None,
                        _ => Polyline::fillet(p0, h_in, p3, h_out, SAMPLE_STEP),
                    };
                    let path = fillet.unwrap_or_else(|| Polyline::bezier(p0, h_in, p3, h_out, handle, SAMPLE_STEP));
                    let limit = match turn {
                        Turn::Straight => self.lanes[l_in].speed_limit,
                        Turn::Left | Turn::Right => 6.5,
                        Turn::UTurn => 3.5,
                    };
                    let c = self.push_lane(path, LaneKind::Connector { node, turn }, limit, None);
                    self.link(l_in, c);
                    self.link(c, l_out);
                }
            }
        }
    }

    fn add_stop_signs(&mut self) {
        for n in 0..self.nodes.len() {
            if !self.nodes[n].all_way_stop {
                continue;
            }
            for r in self.nodes[n].roads.clone() {
                let incoming: Vec<LaneId> = self.lanes_at(r, n).0.to_vec();
                let Some(&outer) = incoming.last() else { continue };
                for &l in &incoming {
                    self.lanes[l].stop_at_end = true;
                }
                let path = &self.lanes[outer].path;
                let pos =
                    path.end() - left(&dir(path.end_heading())) * (LANE_WIDTH / 2.0 + self.roads[r].shoulder + 0.8);
                self.stop_signs.push(StopSign { pos, lanes: incoming });
            }
        }
    }

    fn add_areas(&mut self, rng: &mut ChaCha8Rng) {
        for r in 0..self.roads.len() {
            let road = &self.roads[r];
            let len = road.centre.length();
            // A strip across the road from `s0` to `s1`, between lateral offsets `d0(s)` and `d1(s)`.
            let strip = |s0: f64, s1: f64, d0: &dyn Fn(f64) -> f64, d1: &dyn Fn(f64) -> f64| -> Vec<P2> {
                let (a, ha) = road.centre.pose_at(s0);
                let (b, hb) = road.centre.pose_at(s1);
                let (na, nb) = (left(&dir(ha)), left(&dir(hb)));
                vec![a + na * d0(s0), b + nb * d0(s1), b + nb * d1(s1), a + na * d1(s0)]
            };
            let right_edge = |s: f64| road.edge_offset(-1.0, s);
            let left_edge = |s: f64| road.edge_offset(1.0, s);
            let mut areas = Vec::new();
            // Crosswalks at both ends where the intersection is a real junction.
            for (node, s0) in [(road.a, 0.5), (road.b, len - 4.5)] {
                if self.nodes[node].roads.len() >= 3 {
                    areas.push(Area {
                        kind: MapFeatureType::Crosswalk,
                        corners: strip(s0, s0 + 4.0, &right_edge, &left_edge),
                    });
                }
            }
            if let Some(s) = road.speed_bump_at {
                areas.push(Area {
                    kind: MapFeatureType::SpeedBump,
                    corners: strip(s - 0.5, s + 0.5, &right_edge, &left_edge),
                });
            }
            if len > 50.0 && rng.random_bool(0.5) {
                let s = rng.random_range(15.0..len - 15.0);
                let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                let edge = |s: f64| road.edge_offset(side, s);
                let far = |s: f64| road.edge_offset(side, s) + side * (SIDEWALK_WIDTH + 3.0);
                areas.push(Area { kind: MapFeatureType::Driveway, corners: strip(s, s + 4.5, &edge, &far) });
            }
            self.areas.extend(areas);
            let sw = 0.3 + SIDEWALK_WIDTH / 2.0;
            let c1 = road.offset_line(0.0, len, |s| road.edge_offset(1.0, s) + sw);
            let c2 = road.offset_line(0.0, len, |s| road.edge_offset(-1.0, s) - sw);
            self.sidewalks.push(c1);
            self.sidewalks.push(c2);
        }
    }

    /// The WOMD-style map: lanes (with connectivity), road lines, road edges, crosswalks,
    /// speed bumps, driveways and stop signs. Ids are unique within the segment.
    pub fn map_features(&self) -> Vec<MapFeature> {
        let to3 = |p: &Polyline| p.points().iter().map(|q| vector![q.x, q.y, 0.0]).collect::<Vec<_>>();
        let mut out = Vec::new();
        for l in &self.lanes {
            let mut f = MapFeature::new(l.id as i64, MapFeatureType::LaneSurfaceStreet, to3(&l.path));
            f.entry_lanes = l.entry.iter().map(|x| *x as i64).collect();
            f.exit_lanes = l.exit.iter().map(|x| *x as i64).collect();
            f.left_neighbors = l.left.iter().map(|x| *x as i64).collect();
            f.right_neighbors = l.right.iter().map(|x| *x as i64).collect();
            f.speed_limit_mph = Some((l.speed_limit / 0.44704).round());
            out.push(f);
        }
        let mut next_id = self.lanes.len() as i64 + 1000;
        let mut push = |out: &mut Vec<MapFeature>, kind, pts: Vec<nalgebra::Vector3<f64>>| {
            out.push(MapFeature::new(next_id, kind, pts));
            next_id += 1;
        };
        for road in &self.roads {
            for line in road.lines() {
                push(&mut out, line.kind, to3(&line.path));
            }
            for edge in road.edges() {
                push(&mut out, MapFeatureType::RoadEdgeBoundary, to3(&edge));
            }
        }
        for corner in self.corner_edges() {
            push(&mut out, MapFeatureType::RoadEdgeBoundary, to3(&corner));
        }
        for a in &self.areas {
            push(&mut out, a.kind, a.corners.iter().map(|q| vector![q.x, q.y, 0.0]).collect());
        }
        for s in &self.stop_signs {
            let mut f = MapFeature::new(next_id, MapFeatureType::StopSign, vec![vector![s.pos.x, s.pos.y, 0.0]]);
            f.controlled_lanes = s.lanes.iter().map(|x| *x as i64).collect();
            out.push(f);
            next_id += 1;
        }
        out
    }

    /// Where the roads of intersection `n` begin, sorted counter-clockwise by their outward
    /// heading: (heading out, curb point on the left looking out, curb point on the right).
    pub fn road_ends(&self, n: NodeId) -> Vec<(f64, P2, P2)> {
        let mut ends: Vec<(f64, P2, P2)> = self.nodes[n]
            .roads
            .iter()
            .map(|&r| {
                let road = &self.roads[r];
                let len = road.centre.length();
                let (s, out_side) = if road.a == n { (0.0, 1.0) } else { (len, -1.0) };
                let (p, h) = road.centre.pose_at(s);
                let h_out = if road.a == n { h } else { wrap(h + PI) };
                // Looking out of the node, the road's left edge is its own left edge at a and
                // its right edge at b; pockets widen the edge of the side arriving here.
                let normal = left(&dir(h));
                let (l, r) = (road.edge_offset(out_side, s), road.edge_offset(-out_side, s));
                (wrap(h_out), p + normal * l, p + normal * r)
            })
            .collect();
        ends.sort_by(|a, b| a.0.total_cmp(&b.0));
        ends
    }

    /// Curb lines around each intersection corner: from one road's edge to the next road's
    /// edge counter-clockwise.
    pub fn corner_edges(&self) -> Vec<Polyline> {
        let mut out = Vec::new();
        for n in 0..self.nodes.len() {
            let ends = self.road_ends(n);
            if ends.len() < 2 {
                continue;
            }
            for i in 0..ends.len() {
                let (h_a, left_edge, _) = ends[i];
                let (h_b, _, right_edge) = ends[(i + 1) % ends.len()];
                // Walk inward along road a's edge, then out along road b's edge.
                let gap = (right_edge - left_edge).norm();
                out.push(Polyline::bezier(
                    left_edge,
                    wrap(h_a + std::f64::consts::PI),
                    right_edge,
                    h_b,
                    gap * 0.45,
                    SAMPLE_STEP,
                ));
            }
        }
        out
    }
}

fn connected(n: usize, edges: &[(usize, usize)], keep: &[bool]) -> bool {
    let mut seen = vec![false; n];
    let mut stack = vec![0];
    seen[0] = true;
    while let Some(v) = stack.pop() {
        for (k, &(a, b)) in edges.iter().enumerate() {
            if !keep[k] {
                continue;
            }
            let w = if a == v {
                b
            } else if b == v {
                a
            } else {
                continue;
            };
            if !seen[w] {
                seen[w] = true;
                stack.push(w);
            }
        }
    }
    seen.iter().all(|s| *s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn network_is_connected_with_consistent_lane_graph() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let net = RoadNetwork::generate(&RoadConfig::default(), &mut rng);
        assert!(net.roads.len() >= 8);
        for l in &net.lanes {
            for &e in &l.exit {
                assert!(net.lanes[e].entry.contains(&l.id));
                // Consecutive lanes meet end to start.
                assert!((net.lanes[e].path.start() - l.path.end()).norm() < 1e-6);
            }
            if let LaneKind::Road { .. } = l.kind {
                assert!(!l.exit.is_empty(), "every road lane leads somewhere: {:?}", l.kind);
            }
        }
        let turns: Vec<Turn> = net
            .lanes
            .iter()
            .filter_map(|l| if let LaneKind::Connector { turn, .. } = l.kind { Some(turn) } else { None })
            .collect();
        for t in [Turn::Straight, Turn::Left, Turn::Right] {
            assert!(turns.contains(&t), "{t:?} missing");
        }
        let map = net.map_features();
        let ids: std::collections::BTreeSet<i64> = map.iter().map(|f| f.id).collect();
        assert_eq!(ids.len(), map.len(), "map feature ids are unique");
        for kind in
            [MapFeatureType::Crosswalk, MapFeatureType::RoadEdgeBoundary, MapFeatureType::RoadLineSolidDoubleYellow]
        {
            assert!(map.iter().any(|f| f.feature_type == kind), "{kind:?} missing");
        }
    }

    /// Connectors through intersections (U-turns aside) bend no tighter than
    /// `MIN_TURN_RADIUS`: intersections that would need it start their roads further out (20
    /// networks of each size).
    #[test]
    fn turns_bend_no_tighter_than_the_minimum_radius() {
        let (mut turns, mut widened) = (0, 0);
        for grid in [[2, 2], [3, 3]] {
            for seed in 0..20 {
                let cfg = RoadConfig { grid, ..RoadConfig::default() };
                let net = RoadNetwork::generate(&cfg, &mut ChaCha8Rng::seed_from_u64(seed));
                for l in &net.lanes {
                    if let LaneKind::Connector { node, turn } = l.kind
                        && turn != Turn::UTurn
                    {
                        let r = l.path.min_radius();
                        assert!(
                            r >= MIN_TURN_RADIUS,
                            "seed {seed}: a {:?} turn at node {node} (radius {}, {} roads) bends at {r:.1} m",
                            l.kind,
                            net.nodes[node].radius,
                            net.nodes[node].roads.len()
                        );
                        turns += 1;
                    }
                }
                widened += net.nodes.iter().filter(|n| n.radius > NODE_RADIUS).count();
                for road in &net.roads {
                    assert!(road.centre.length() > 20.0, "seed {seed}: a road {:.1} m long", road.centre.length());
                }
            }
        }
        assert!(turns > 300 && widened > 0, "{turns} turns, {widened} intersections widened");
    }

    fn is_turn(net: &RoadNetwork, l: LaneId, turns: &[Turn]) -> bool {
        matches!(net.lanes[l].kind, LaneKind::Connector { turn, .. } if turns.contains(&turn))
    }

    /// Left and right pockets exist, branch off the through lane next to them, lead only to
    /// their own turns, take those turns away from the through lanes, and sit beside the
    /// through lanes one lane width apart at the stop line.
    #[test]
    fn turn_pockets_branch_off_and_carry_only_their_turns() {
        let (mut lefts, mut rights) = (0, 0);
        for seed in 0..4 {
            let net = RoadNetwork::generate(&RoadConfig::default(), &mut ChaCha8Rng::seed_from_u64(seed));
            for road in &net.roads {
                for (k, ends) in [(0, &road.forward_end), (1, &road.backward_end)] {
                    let Some(p) = road.pockets[k] else {
                        assert!(ends.iter().all(|&l| matches!(net.lanes[l].kind, LaneKind::Road { .. })));
                        continue;
                    };
                    let through: Vec<LaneId> =
                        ends.iter().copied().filter(|&l| matches!(net.lanes[l].kind, LaneKind::Road { .. })).collect();
                    assert_eq!(through.len(), road.lanes_per_direction);
                    assert_eq!(ends.len(), through.len() + p.left as usize + p.right as usize);
                    for &l in &through {
                        assert!(!net.lanes[l].exit.is_empty());
                        if p.left {
                            assert!(!net.lanes[l].exit.iter().any(|&e| is_turn(&net, e, &[Turn::Left, Turn::UTurn])));
                        }
                        if p.right {
                            assert!(!net.lanes[l].exit.iter().any(|&e| is_turn(&net, e, &[Turn::Right])));
                        }
                    }
                    for (turn, pocket, beside) in [
                        (Turn::Left, p.left.then(|| ends[0]), through[0]),
                        (Turn::Right, p.right.then(|| ends[ends.len() - 1]), through[through.len() - 1]),
                    ] {
                        let Some(pocket) = pocket else { continue };
                        let lane = &net.lanes[pocket];
                        assert!(matches!(lane.kind, LaneKind::TurnLane { turn: t, .. } if t == turn));
                        let allowed: &[Turn] =
                            if turn == Turn::Left { &[Turn::Left, Turn::UTurn] } else { &[Turn::Right] };
                        assert!(!lane.exit.is_empty() && lane.exit.iter().all(|&e| is_turn(&net, e, allowed)));
                        // It branches off the through lane it lies beside, where that lane is split.
                        let [from] = lane.entry[..] else { panic!("one entry: {:?}", lane.entry) };
                        assert_eq!(net.lanes[beside].entry, vec![from]);
                        assert!(net.lanes[from].exit.contains(&beside));
                        assert!((lane.path.start() - net.lanes[beside].path.start()).norm() < 1e-6);
                        // p.start metres before the stop line, measured along the centre line.
                        let s = road.centre.project(&lane.path.start()).0;
                        let before = if k == 0 { road.centre.length() - s } else { s };
                        assert!((before - p.start).abs() < 1.0, "{before} vs {}", p.start);
                        let gap = (lane.path.end() - net.lanes[beside].path.end()).norm();
                        assert!((gap - LANE_WIDTH).abs() < 0.05, "pocket {gap} m from the through lane");
                        let (l, r) = if turn == Turn::Left { (pocket, beside) } else { (beside, pocket) };
                        assert_eq!((net.lanes[l].right, net.lanes[r].left), (Some(r), Some(l)));
                        assert!(lane.end_node.is_some() && net.lanes[from].end_node.is_none());
                        if turn == Turn::Left { lefts += 1 } else { rights += 1 }
                    }
                }
            }
        }
        assert!(lefts >= 4 && rights >= 4, "{lefts} left and {rights} right pockets");
    }

    /// Every lane of a road lies on its paved surface: between the curbs, pockets included.
    #[test]
    fn road_lanes_lie_between_the_curbs() {
        let net = RoadNetwork::generate(&RoadConfig::default(), &mut ChaCha8Rng::seed_from_u64(2));
        assert!(net.roads.iter().any(|r| r.pockets.iter().any(Option::is_some)));
        for l in &net.lanes {
            let Some(r) = l.kind.road() else { continue };
            let road = &net.roads[r];
            for p in l.path.points() {
                let (s, d) = road.centre.project(p);
                let edge = road.edge_offset(d.signum(), s).abs();
                assert!(d.abs() + LANE_WIDTH / 2.0 <= edge + 0.05, "lane {} at {d} m, curb at {edge} m", l.id);
                assert!(d.abs() >= LANE_WIDTH / 2.0 - 0.05, "lane {} crosses the centre line", l.id);
            }
        }
    }

    /// The map carries the pockets (as surface-street lanes with their connectivity) and the
    /// lines beside them: broken where the pocket opens, solid up to the stop line, midway
    /// between the pocket and the through lane.
    #[test]
    fn map_carries_pockets_and_their_lines() {
        let net = RoadNetwork::generate(&RoadConfig::default(), &mut ChaCha8Rng::seed_from_u64(1));
        let map = net.map_features();
        let by_id: std::collections::BTreeMap<i64, &MapFeature> = map.iter().map(|f| (f.id, f)).collect();
        let mut checked = 0;
        for road in &net.roads {
            for (k, ends) in [(0, &road.forward_end), (1, &road.backward_end)] {
                let Some(p) = road.pockets[k] else { continue };
                let pockets = ends.iter().filter(|&&l| matches!(net.lanes[l].kind, LaneKind::TurnLane { .. }));
                for &pocket in pockets {
                    let lane = &net.lanes[pocket];
                    let f = by_id[&(pocket as i64)];
                    assert_eq!(f.feature_type, MapFeatureType::LaneSurfaceStreet);
                    let ids = |v: &[LaneId]| v.iter().map(|x| *x as i64).collect::<Vec<_>>();
                    assert_eq!(f.entry_lanes, ids(&lane.entry));
                    assert_eq!(f.exit_lanes, ids(&lane.exit));
                    assert_eq!(f.left_neighbors, ids(&lane.left.into_iter().collect::<Vec<_>>()));
                    assert_eq!(f.right_neighbors, ids(&lane.right.into_iter().collect::<Vec<_>>()));
                    assert_eq!(f.left_neighbors.len() + f.right_neighbors.len(), 1);
                    let beside = lane.left.or(lane.right).expect("a pocket has a through lane beside it");
                    let mid_end = (lane.path.end() + net.lanes[beside].path.end()) / 2.0;
                    let near = |q: &nalgebra::Vector3<f64>, at: &P2| (P2::new(q.x, q.y) - at).norm() < 0.3;
                    let solid = map
                        .iter()
                        .find(|f| {
                            f.feature_type == MapFeatureType::RoadLineSolidSingleWhite
                                && f.polyline.iter().any(|q| near(q, &mid_end))
                        })
                        .expect("a solid white line between pocket and through lane at the stop line");
                    let solid_len: f64 = solid.polyline.windows(2).map(|w| (w[1] - w[0]).norm()).sum();
                    assert!((solid_len - p.solid_from()).abs() < 2.0, "solid for {solid_len} m");
                    // The broken part meets the solid part.
                    let joint = [solid.polyline[0], solid.polyline[solid.polyline.len() - 1]];
                    let broken = map.iter().any(|f| {
                        f.feature_type == MapFeatureType::RoadLineBrokenSingleWhite
                            && [f.polyline[0], f.polyline[f.polyline.len() - 1]]
                                .iter()
                                .any(|a| joint.iter().any(|b| (a - b).norm() < 1e-6))
                    });
                    assert!(broken, "the line is broken where the pocket opens");
                    checked += 1;
                }
            }
        }
        assert!(checked >= 2, "{checked} pockets checked");
    }

    #[test]
    fn same_seed_same_network() {
        let a = RoadNetwork::generate(&RoadConfig::default(), &mut ChaCha8Rng::seed_from_u64(3)).map_features();
        let b = RoadNetwork::generate(&RoadConfig::default(), &mut ChaCha8Rng::seed_from_u64(3)).map_features();
        assert_eq!(a, b);
    }
}
