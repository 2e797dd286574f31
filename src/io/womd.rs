//! WOMD `Scenario` TFRecords → [`scene::Scenario`].
//!
//! The converter validates what downstream code indexes with (track indices, state counts,
//! the current step) so that a bad file fails here, with its record and field named, rather
//! than as a panic inside the motion model.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use nalgebra::Vector3;
use prost::Message;

use super::proto;
use super::tfrecord::DecodedRecords;
use crate::error::{Error, Location, Result};
use crate::scene::{
    AgentState, AgentType, DifficultyLevel, MapFeature, MapFeatureType, PredictionTarget, Scenario, SignalState, Track,
};

/// The highest `TrafficSignalLaneState.State` value (`LANE_STATE_FLASHING_CAUTION`).
const MAX_LANE_STATE: i32 = 8;

/// Reads every scenario of a TFRecord file.
pub fn read_scenarios(path: impl AsRef<Path>) -> Result<Vec<Scenario>> {
    open_scenarios(path)?.collect()
}

/// Streams the scenarios of a TFRecord file, one record at a time.
pub fn open_scenarios(path: impl AsRef<Path>) -> Result<ScenarioReader<BufReader<File>>> {
    DecodedRecords::open(path, decode_scenario)
}

/// An iterator of decoded scenarios (see [`DecodedRecords::new`] for other readers).
pub type ScenarioReader<R> = DecodedRecords<R, Scenario>;

/// Decodes and converts one serialized `Scenario`.
pub fn decode_scenario(bytes: &[u8], at: &Location) -> Result<Scenario> {
    let msg = proto::Scenario::decode(bytes).map_err(|e| Error::decode(at.clone(), "Scenario protobuf", e))?;
    convert_scenario(&msg, at)
}

/// Converts a decoded `Scenario`, validating indices and counts.
pub fn convert_scenario(msg: &proto::Scenario, at: &Location) -> Result<Scenario> {
    let id = msg.scenario_id.clone().unwrap_or_default();
    let at = if id.is_empty() { at.clone() } else { at.clone().detail(format!("scenario {id}")) };
    let steps = msg.timestamps_seconds.len();

    let cti = msg.current_time_index.unwrap_or(0);
    let current_time_index = index_in(cti, steps)
        .ok_or_else(|| Error::invalid(at.clone(), format!("current_time_index in 0..{steps}"), cti.to_string()))?;

    let tracks =
        msg.tracks.iter().enumerate().map(|(i, t)| convert_track(t, i, steps, &at)).collect::<Result<Vec<_>>>()?;

    let sdc_track_index = match msg.sdc_track_index {
        None => None,
        Some(i) => Some(index_in(i, tracks.len()).ok_or_else(|| {
            Error::invalid(at.clone(), format!("sdc_track_index in 0..{}", tracks.len()), i.to_string())
        })?),
    };

    let tracks_to_predict = msg
        .tracks_to_predict
        .iter()
        .enumerate()
        .map(|(k, rp)| {
            let here = at.clone().column(format!("tracks_to_predict[{k}]"));
            let ti = rp.track_index.unwrap_or(0);
            let track_index = index_in(ti, tracks.len()).ok_or_else(|| {
                Error::invalid(
                    here.clone(),
                    format!("track_index in 0..{} (the number of tracks)", tracks.len()),
                    ti.to_string(),
                )
            })?;
            let d = rp.difficulty.unwrap_or(0);
            let difficulty = DifficultyLevel::from_value(d.into())
                .ok_or_else(|| Error::invalid(here, DifficultyLevel::expected(), d.to_string()))?;
            Ok(PredictionTarget { track_index, difficulty })
        })
        .collect::<Result<Vec<_>>>()?;

    let map = msg.map_features.iter().map(|f| convert_map_feature(f, &at)).collect::<Result<Vec<_>>>()?;

    if !msg.dynamic_map_states.is_empty() && msg.dynamic_map_states.len() != steps {
        return Err(Error::invalid(
            at.column("dynamic_map_states"),
            format!("one entry per timestamp ({steps})"),
            format!("{} entries", msg.dynamic_map_states.len()),
        ));
    }
    let dynamic_map_states = msg
        .dynamic_map_states
        .iter()
        .enumerate()
        .map(|(step, d)| {
            d.lane_states
                .iter()
                .map(|s| {
                    let state = s.state.unwrap_or(0);
                    if !(0..=MAX_LANE_STATE).contains(&state) {
                        return Err(Error::invalid(
                            at.clone().column(format!("dynamic_map_states[{step}]")),
                            format!(
                                "lane state 0..={MAX_LANE_STATE} (LANE_STATE_UNKNOWN … LANE_STATE_FLASHING_CAUTION)"
                            ),
                            state.to_string(),
                        ));
                    }
                    Ok(SignalState { lane_id: s.lane.unwrap_or(0), state, stop_point: point(s.stop_point.as_ref()) })
                })
                .collect::<Result<Vec<_>>>()
        })
        .collect::<Result<Vec<_>>>()?;

    Ok(Scenario {
        id,
        timestamps_seconds: msg.timestamps_seconds.clone(),
        current_time_index,
        sdc_track_index,
        tracks,
        tracks_to_predict,
        objects_of_interest: msg.objects_of_interest.iter().map(|&i| i64::from(i)).collect(),
        map,
        dynamic_map_states,
    })
}

fn convert_track(t: &proto::Track, index: usize, steps: usize, at: &Location) -> Result<Track> {
    let id = i64::from(t.id.unwrap_or(0));
    let here = at.clone().column(format!("tracks[{index}]")).detail(format!("track id {id}"));
    if t.states.len() != steps {
        return Err(Error::invalid(
            here,
            format!("{steps} states (one per timestamp)"),
            format!("{} states", t.states.len()),
        ));
    }
    let ty = t.object_type.unwrap_or(0);
    let agent_type = AgentType::from_value(ty.into())
        .ok_or_else(|| Error::invalid(here.clone(), AgentType::expected(), ty.to_string()))?;
    let mut states = Vec::with_capacity(steps);
    for (step, s) in t.states.iter().enumerate() {
        let state = AgentState {
            x: s.center_x.unwrap_or(0.0),
            y: s.center_y.unwrap_or(0.0),
            z: s.center_z.unwrap_or(0.0),
            length: s.length.unwrap_or(0.0),
            width: s.width.unwrap_or(0.0),
            height: s.height.unwrap_or(0.0),
            heading: s.heading.unwrap_or(0.0),
            velocity_x: s.velocity_x.unwrap_or(0.0),
            velocity_y: s.velocity_y.unwrap_or(0.0),
            valid: s.valid.unwrap_or(false),
        };
        // A valid state is used by the metrics: NaN or infinity there would make them NaN.
        if state.valid {
            let values = [
                ("center_x", state.x, false),
                ("center_y", state.y, false),
                ("center_z", state.z, false),
                ("length", state.length.into(), true),
                ("width", state.width.into(), true),
                ("height", state.height.into(), true),
                ("heading", state.heading.into(), false),
                ("velocity_x", state.velocity_x.into(), false),
                ("velocity_y", state.velocity_y.into(), false),
            ];
            if let Some((field, v, size)) =
                values.into_iter().find(|&(_, v, size): &(&str, f64, bool)| !v.is_finite() || (size && v < 0.0))
            {
                return Err(Error::invalid(
                    here.clone().detail(format!("track id {id}, state {step}, {field}")),
                    format!("a finite {field}{} in a valid state", if size { " of at least 0" } else { "" }),
                    v.to_string(),
                ));
            }
        }
        states.push(state);
    }
    Ok(Track { id, source_id: id.to_string(), agent_type, states })
}

/// Maps the oneof kind and its proto sub-type onto scenetok's flattened code.
fn feature_type(data: Option<&proto::FeatureData>, here: &Location) -> Result<MapFeatureType> {
    use proto::FeatureData as F;
    let (kind, sub, base, max) = match data {
        Some(F::Lane(l)) => ("lane type (LaneCenter.LaneType 0..=3)", l.r#type.unwrap_or(0), 0, 3),
        Some(F::RoadLine(l)) => ("road line type (RoadLine.RoadLineType 0..=8)", l.r#type.unwrap_or(0), 5, 8),
        Some(F::RoadEdge(e)) => ("road edge type (RoadEdge.RoadEdgeType 0..=2)", e.r#type.unwrap_or(0), 14, 2),
        Some(F::StopSign(_)) => return Ok(MapFeatureType::StopSign),
        Some(F::Crosswalk(_)) => return Ok(MapFeatureType::Crosswalk),
        Some(F::SpeedBump(_)) => return Ok(MapFeatureType::SpeedBump),
        Some(F::Driveway(_)) => return Ok(MapFeatureType::Driveway),
        None => {
            return Err(Error::invalid(
                here.clone(),
                "a map feature of a known kind (lane, road_line, road_edge, stop_sign, crosswalk, speed_bump, driveway)",
                "no known feature data (unknown or missing map feature type)",
            ));
        }
    };
    if !(0..=max).contains(&sub) {
        return Err(Error::invalid(here.clone(), kind, format!("unknown map feature type value {sub}")));
    }
    MapFeatureType::from_value(i64::from(base + sub))
        .ok_or_else(|| Error::invalid(here.clone(), MapFeatureType::expected(), (base + sub).to_string()))
}

fn convert_map_feature(f: &proto::MapFeature, at: &Location) -> Result<MapFeature> {
    use proto::FeatureData as F;
    let id = f.id.unwrap_or(0);
    let here = at.clone().column("map_features").detail(format!("map feature id {id}"));
    let ty = feature_type(f.feature_data.as_ref(), &here)?;
    let mut out = MapFeature::new(id, ty, Vec::new());
    match &f.feature_data {
        Some(F::Lane(l)) => {
            out.polyline = points(&l.polyline);
            out.entry_lanes = l.entry_lanes.clone();
            out.exit_lanes = l.exit_lanes.clone();
            out.left_neighbors = l.left_neighbors.iter().filter_map(|n| n.feature_id).collect();
            out.right_neighbors = l.right_neighbors.iter().filter_map(|n| n.feature_id).collect();
            out.speed_limit_mph = l.speed_limit_mph;
        }
        Some(F::RoadLine(l)) => out.polyline = points(&l.polyline),
        Some(F::RoadEdge(e)) => out.polyline = points(&e.polyline),
        Some(F::StopSign(s)) => {
            out.polyline = s.position.iter().map(|p| point(Some(p))).collect();
            out.controlled_lanes = s.lane.clone();
        }
        Some(F::Crosswalk(p) | F::SpeedBump(p) | F::Driveway(p)) => out.polyline = points(&p.polygon),
        None => {}
    }
    Ok(out)
}

fn point(p: Option<&proto::MapPoint>) -> Vector3<f64> {
    p.map_or_else(Vector3::zeros, |p| Vector3::new(p.x.unwrap_or(0.0), p.y.unwrap_or(0.0), p.z.unwrap_or(0.0)))
}

fn points(ps: &[proto::MapPoint]) -> Vec<Vector3<f64>> {
    ps.iter().map(|p| point(Some(p))).collect()
}

/// `i` as an index into a sequence of `len`, or `None` when negative or too large.
fn index_in(i: i32, len: usize) -> Option<usize> {
    usize::try_from(i).ok().filter(|&u| u < len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> proto::Scenario {
        let state = proto::ObjectState { center_x: Some(1.0), valid: Some(true), ..Default::default() };
        proto::Scenario {
            scenario_id: Some("s".into()),
            timestamps_seconds: vec![0.0, 0.1, 0.2],
            current_time_index: Some(1),
            tracks: vec![proto::Track { id: Some(7), object_type: Some(1), states: vec![state; 3] }],
            sdc_track_index: Some(0),
            tracks_to_predict: vec![proto::RequiredPrediction { track_index: Some(0), difficulty: Some(1) }],
            map_features: vec![
                proto::MapFeature {
                    id: Some(1),
                    feature_data: Some(proto::FeatureData::RoadLine(proto::RoadLine {
                        r#type: Some(7),
                        polyline: vec![],
                    })),
                },
                proto::MapFeature {
                    id: Some(2),
                    feature_data: Some(proto::FeatureData::StopSign(proto::StopSign {
                        lane: vec![5, 6],
                        position: Some(proto::MapPoint { x: Some(3.0), y: Some(4.0), z: Some(0.5) }),
                    })),
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn converts_a_small_scenario() {
        let s = decode_scenario(&tiny().encode_to_vec(), &Location::file("t")).expect("valid");
        assert_eq!(s.tracks[0].agent_type, AgentType::Vehicle);
        assert_eq!(s.map[0].feature_type, MapFeatureType::RoadLineSolidDoubleYellow);
        assert_eq!(s.map[1].polyline, vec![Vector3::new(3.0, 4.0, 0.5)]);
        assert_eq!(s.map[1].controlled_lanes, vec![5, 6]);
        assert_eq!(s.tracks_to_predict[0].difficulty, DifficultyLevel::Level1);
    }

    #[test]
    fn rejects_bad_indices_counts_and_types() {
        let at = Location::file("t").record(0);
        let mut m = tiny();
        m.current_time_index = Some(3);
        assert!(convert_scenario(&m, &at).expect_err("cti").to_string().contains("current_time_index"));

        let mut m = tiny();
        m.tracks[0].states.pop();
        assert!(convert_scenario(&m, &at).expect_err("states").to_string().contains("3 states"));

        let mut m = tiny();
        m.tracks_to_predict[0].track_index = Some(-1);
        assert!(convert_scenario(&m, &at).expect_err("tti").to_string().contains("track_index"));

        let mut m = tiny();
        m.map_features[0].feature_data =
            Some(proto::FeatureData::RoadEdge(proto::RoadEdge { r#type: Some(9), polyline: vec![] }));
        let msg = convert_scenario(&m, &at).expect_err("type").to_string();
        assert!(msg.contains("map feature id 1") && msg.contains("record 0"), "{msg}");
    }
}
