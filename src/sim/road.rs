//! The procedural road network of a segment: a jittered grid of 3- and 4-way intersections
//! (some all-way stops) joined by curved multi-lane two-way roads, with turn connectors,
//! U-turns, crosswalks, sidewalks, speed bumps and driveways; and its WOMD-style map.

use nalgebra::vector;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::geom::polyline::{P2, Polyline, dir, left, wrap};
use crate::scene::{MapFeature, MapFeatureType};

pub const LANE_WIDTH: f64 = 3.6;
/// Distance from an intersection's centre to where its roads begin.
const NODE_RADIUS: f64 = 16.0;
const SIDEWALK_WIDTH: f64 = 3.0;
const SAMPLE_STEP: f64 = 1.0;

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
    /// A path through an intersection.
    Connector { node: NodeId, turn: Turn },
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
}

#[derive(Debug, Clone)]
pub struct Road {
    pub a: NodeId,
    pub b: NodeId,
    pub lanes_per_direction: usize,
    /// Parking / shoulder strip beyond the outermost lane on each side.
    pub shoulder: f64,
    pub centre: Polyline,
    /// a→b lanes, index 0 next to the centre line.
    pub forward: Vec<LaneId>,
    /// b→a lanes, index 0 next to the centre line.
    pub backward: Vec<LaneId>,
    pub speed_bump_at: Option<f64>,
}

impl Road {
    /// Distance from the centre line to the road edge (curb).
    pub fn half_width(&self) -> f64 {
        self.lanes_per_direction as f64 * LANE_WIDTH + self.shoulder
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
        let mut net = RoadNetwork {
            nodes,
            roads: Vec::new(),
            lanes: Vec::new(),
            areas: Vec::new(),
            stop_signs: Vec::new(),
            sidewalks: Vec::new(),
        };
        for (e, &(a, b)) in edges.iter().enumerate() {
            if keep[e] {
                let lanes = if rng.random_bool(0.45) { 2 } else { 1 };
                let shoulder = if rng.random_bool(0.5) { 2.6 } else { 0.6 };
                let bend = if rng.random_bool(0.4) { rng.random_range(-18.0..18.0) } else { 0.0 };
                net.add_road(a, b, lanes, shoulder, bend, rng);
            }
        }
        for n in 0..net.nodes.len() {
            let degree = net.nodes[n].roads.len();
            net.nodes[n].all_way_stop = degree >= 3 && rng.random_bool(0.45);
            net.nodes[n].allow_u_turn = degree >= 3 && rng.random_bool(0.5);
        }
        for n in 0..net.nodes.len() {
            net.connect_node(n);
        }
        net.add_stop_signs();
        net.add_areas(rng);
        net.link_neighbours();
        net
    }

    fn add_road(&mut self, a: NodeId, b: NodeId, lanes: usize, shoulder: f64, bend: f64, rng: &mut ChaCha8Rng) {
        let (pa, pb) = (self.nodes[a].pos, self.nodes[b].pos);
        let u = (pb - pa).normalize();
        let start = pa + u * NODE_RADIUS;
        let end = pb - u * NODE_RADIUS;
        let mid = (start + end) / 2.0 + left(&u) * bend;
        // A quadratic through the bend point, sampled finely; roads meet nodes straight enough
        // for the connectors to take over.
        let n = 64;
        let pts: Vec<P2> = (0..=n)
            .map(|i| {
                let t = i as f64 / n as f64;
                let ctrl = mid * 2.0 - (start + end) / 2.0;
                start * (1.0 - t) * (1.0 - t) + ctrl * 2.0 * t * (1.0 - t) + end * t * t
            })
            .collect();
        let centre = Polyline::new(pts).resampled(SAMPLE_STEP);
        let road_id = self.roads.len();
        let speed_limit = if lanes == 2 { rng.random_range(13.0..15.7) } else { rng.random_range(10.0..13.5) };
        let mut forward = Vec::new();
        let mut backward = Vec::new();
        for index in 0..lanes {
            let d = (index as f64 + 0.5) * LANE_WIDTH;
            forward.push(self.push_lane(
                centre.offset(-d),
                LaneKind::Road { road: road_id, forward: true, index },
                speed_limit,
                Some(b),
            ));
            backward.push(self.push_lane(
                centre.offset(d).reversed(),
                LaneKind::Road { road: road_id, forward: false, index },
                speed_limit,
                Some(a),
            ));
        }
        let speed_bump_at =
            (centre.length() > 60.0 && rng.random_bool(0.2)).then(|| centre.length() * rng.random_range(0.35..0.65));
        self.roads.push(Road { a, b, lanes_per_direction: lanes, shoulder, centre, forward, backward, speed_bump_at });
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

    /// Lanes of `road` that end at `node` (index order), and those that start there.
    pub fn lanes_at(&self, road: RoadId, node: NodeId) -> (&[LaneId], &[LaneId]) {
        let r = &self.roads[road];
        if r.b == node { (&r.forward, &r.backward) } else { (&r.backward, &r.forward) }
    }

    fn connect_node(&mut self, node: NodeId) {
        let roads = self.nodes[node].roads.clone();
        let degree = roads.len();
        for &r_in in &roads {
            let incoming: Vec<LaneId> = self.lanes_at(r_in, node).0.to_vec();
            for &r_out in &roads {
                let outgoing: Vec<LaneId> = self.lanes_at(r_out, node).1.to_vec();
                let (Some(&in0), Some(&out0)) = (incoming.first(), outgoing.first()) else { continue };
                let h_in = self.lanes[in0].path.end_heading();
                let h_out = self.lanes[out0].path.start_heading();
                let delta = wrap(h_out - h_in);
                let turn = if r_in == r_out {
                    if !self.nodes[node].allow_u_turn {
                        continue;
                    }
                    Turn::UTurn
                } else if degree == 2 || delta.abs() < 0.6 {
                    Turn::Straight
                } else if delta > 0.0 {
                    Turn::Left
                } else {
                    Turn::Right
                };
                let pairs: Vec<(LaneId, LaneId)> = match turn {
                    Turn::Straight => {
                        incoming.iter().enumerate().map(|(i, &l)| (l, outgoing[i.min(outgoing.len() - 1)])).collect()
                    }
                    Turn::Left | Turn::UTurn => vec![(incoming[0], outgoing[0])],
                    Turn::Right => vec![(incoming[incoming.len() - 1], outgoing[outgoing.len() - 1])],
                };
                for (l_in, l_out) in pairs {
                    let p0 = self.lanes[l_in].path.end();
                    let p3 = self.lanes[l_out].path.start();
                    let gap = (p3 - p0).norm();
                    let handle = if turn == Turn::UTurn { gap.max(6.0) * 0.9 + 4.0 } else { gap * 0.42 };
                    let path =
                        Polyline::bezier(p0, h_in, p3, self.lanes[l_out].path.start_heading(), handle, SAMPLE_STEP);
                    let limit = match turn {
                        Turn::Straight => self.lanes[l_in].speed_limit,
                        Turn::Left | Turn::Right => 6.5,
                        Turn::UTurn => 3.5,
                    };
                    let c = self.push_lane(path, LaneKind::Connector { node, turn }, limit, None);
                    self.lanes[c].entry.push(l_in);
                    self.lanes[c].exit.push(l_out);
                    self.lanes[l_in].exit.push(c);
                    self.lanes[l_out].entry.push(c);
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
            let hw = road.half_width();
            let len = road.centre.length();
            let strip = |s0: f64, s1: f64, d0: f64, d1: f64| -> Vec<P2> {
                let (a, ha) = road.centre.pose_at(s0);
                let (b, hb) = road.centre.pose_at(s1);
                vec![a + left(&dir(ha)) * d0, b + left(&dir(hb)) * d0, b + left(&dir(hb)) * d1, a + left(&dir(ha)) * d1]
            };
            let mut areas = Vec::new();
            // Crosswalks at both ends where the intersection is a real junction.
            for (node, s0) in [(road.a, 0.5), (road.b, len - 4.5)] {
                if self.nodes[node].roads.len() >= 3 {
                    areas.push(Area { kind: MapFeatureType::Crosswalk, corners: strip(s0, s0 + 4.0, -hw, hw) });
                }
            }
            if let Some(s) = road.speed_bump_at {
                areas.push(Area { kind: MapFeatureType::SpeedBump, corners: strip(s - 0.5, s + 0.5, -hw, hw) });
            }
            if len > 50.0 && rng.random_bool(0.5) {
                let s = rng.random_range(15.0..len - 15.0);
                let side = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                areas.push(Area {
                    kind: MapFeatureType::Driveway,
                    corners: strip(s, s + 4.5, side * hw, side * (hw + SIDEWALK_WIDTH + 3.0)),
                });
            }
            self.areas.extend(areas);
            let sw = hw + 0.3 + SIDEWALK_WIDTH / 2.0;
            let (c1, c2) = (road.centre.offset(sw), road.centre.offset(-sw));
            self.sidewalks.push(c1);
            self.sidewalks.push(c2);
        }
    }

    fn link_neighbours(&mut self) {
        for r in 0..self.roads.len() {
            for lanes in [self.roads[r].forward.clone(), self.roads[r].backward.clone()] {
                for w in lanes.windows(2) {
                    // Index 0 is next to the centre line, i.e. leftmost in driving direction.
                    self.lanes[w[0]].right = Some(w[1]);
                    self.lanes[w[1]].left = Some(w[0]);
                }
            }
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
            push(&mut out, MapFeatureType::RoadLineSolidDoubleYellow, to3(&road.centre));
            for i in 1..road.lanes_per_direction {
                let d = i as f64 * LANE_WIDTH;
                push(&mut out, MapFeatureType::RoadLineBrokenSingleWhite, to3(&road.centre.offset(-d)));
                push(&mut out, MapFeatureType::RoadLineBrokenSingleWhite, to3(&road.centre.offset(d)));
            }
            if road.shoulder > 1.0 {
                let d = road.lanes_per_direction as f64 * LANE_WIDTH;
                push(&mut out, MapFeatureType::RoadLineSolidSingleWhite, to3(&road.centre.offset(-d)));
                push(&mut out, MapFeatureType::RoadLineSolidSingleWhite, to3(&road.centre.offset(d)));
            }
            push(&mut out, MapFeatureType::RoadEdgeBoundary, to3(&road.centre.offset(-road.half_width())));
            push(&mut out, MapFeatureType::RoadEdgeBoundary, to3(&road.centre.offset(road.half_width())));
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
                let (p, h_out) = if road.a == n {
                    road.centre.pose_at(0.0)
                } else {
                    let (p, h) = road.centre.pose_at(road.centre.length());
                    (p, wrap(h + std::f64::consts::PI))
                };
                let hw = road.half_width();
                (wrap(h_out), p + left(&dir(h_out)) * hw, p - left(&dir(h_out)) * hw)
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
                assert!(!l.exit.is_empty(), "every road lane leads somewhere");
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

    #[test]
    fn same_seed_same_network() {
        let a = RoadNetwork::generate(&RoadConfig::default(), &mut ChaCha8Rng::seed_from_u64(3)).map_features();
        let b = RoadNetwork::generate(&RoadConfig::default(), &mut ChaCha8Rng::seed_from_u64(3)).map_features();
        assert_eq!(a, b);
    }
}
