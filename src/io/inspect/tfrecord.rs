//! TFRecord inspection: WOMD scenarios and v1 frames, one summary line per record.

use std::collections::BTreeMap;
use std::path::Path;

use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Location, Result};
use crate::io::detect::{InputKind, kind_of_record};
use crate::io::{tfrecord, v1, womd, womd_sensors};
use crate::scene::{Frame, Scenario};

#[derive(Debug, Serialize)]
pub struct TfRecordReport {
    pub path: PathBuf,
    pub records: usize,
    /// "WOMD Scenario", "v1 Frame" or "unknown".
    pub content: String,
    /// One line per record.
    pub summaries: Vec<String>,
}

/// Whether the file starts with valid TFRecord framing (or is empty).
pub fn is_tfrecord(path: &Path) -> bool {
    tfrecord::open(path).is_ok_and(|mut r| r.next_record().is_ok())
}

/// Reads every record (checking both CRCs) and says what each holds.
pub fn inspect_tfrecord(path: &Path) -> Result<TfRecordReport> {
    let mut summaries = Vec::new();
    let mut kinds = BTreeMap::new();
    for (i, record) in tfrecord::open(path)?.enumerate() {
        let record = record?;
        let at = Location::file(path).record(i);
        // The message kind by structure, then its content: a record of a known kind whose
        // content is invalid says why.
        let (kind, line) = match kind_of_record(&record) {
            Some(InputKind::WomdScenarios) => match womd::decode_scenario(&record, &at) {
                Ok(s) => ("WOMD Scenario", scenario_line(&s) + &sensors_line(&record, &at)),
                // A LiDAR or camera-token file of WOMD: a `Scenario` with only those fields.
                Err(_) if womd_sensors::sensors_only(&record) => {
                    ("WOMD Scenario", "sensor data only".to_string() + &sensors_line(&record, &at))
                }
                Err(e) => ("WOMD Scenario", format!("invalid WOMD Scenario: {e}")),
            },
            Some(_) => match v1::decode_frame(&record, &at) {
                Ok(f) => ("v1 Frame", frame_line(&f)),
                Err(e) => ("v1 Frame", format!("invalid v1 Frame: {e}")),
            },
            None => ("unknown", format!("{} bytes, neither a WOMD Scenario nor a v1 Frame", record.len())),
        };
        *kinds.entry(kind).or_insert(0usize) += 1;
        summaries.push(format!("record {i}: {line}"));
    }
    let content = match kinds.len() {
        0 => "nothing".to_string(),
        1 => kinds.keys().next().map(|k| k.to_string()).unwrap_or_default(),
        _ => kinds.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", "),
    };
    Ok(TfRecordReport { path: path.to_path_buf(), records: summaries.len(), content, summaries })
}

fn scenario_line(s: &Scenario) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &s.map {
        let k = f.feature_type.kind().name();
        *kinds.entry(k).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!(
        "scenario {}: {} tracks × {} states, current index {}, sdc track {}, {} tracks_to_predict, {} map features ({}), {} dynamic map states",
        s.id,
        s.tracks.len(),
        s.timestamps_seconds.len(),
        s.current_time_index,
        s.sdc_track_index.map(|i| i.to_string()).unwrap_or_else(|| "none".into()),
        s.tracks_to_predict.len(),
        s.map.len(),
        kinds.join(", "),
        s.dynamic_map_states.len()
    )
}

/// What history sensor data (WOMD v1.2+) the record carries, if any.
fn sensors_line(record: &[u8], at: &Location) -> String {
    match womd_sensors::decode_scenario_sensors(record, at) {
        Ok((_, s)) if s.is_empty() => String::new(),
        Ok((_, s)) => {
            let lasers: usize = s.lidar.iter().map(|(_, f)| f.lasers.len()).sum();
            let cameras: usize = s.camera_tokens.iter().map(|(_, c)| c.len()).sum();
            format!(
                "; LiDAR on {} history steps ({lasers} laser images), camera tokens on {} steps ({cameras} camera images)",
                s.lidar.len(),
                s.camera_tokens.len()
            )
        }
        Err(e) => format!("; invalid sensor data: {e}"),
    }
}

fn frame_line(f: &Frame) -> String {
    let cams: Vec<String> = f
        .cameras
        .iter()
        .map(|c| match &c.calibration {
            Some(cal) => format!("{} {}×{}", c.camera, cal.width, cal.height),
            None => c.camera.to_string(),
        })
        .collect();
    let panoptic = f.cameras.iter().filter(|c| c.segmentation.is_some()).count();
    let lidar_calibs = f.lasers.iter().filter(|l| l.calibration.is_some()).count();
    let range_images = f.lasers.iter().filter(|l| l.return1.is_some()).count();
    format!(
        "frame {} @ {}: cameras [{}], {} laser calibrations, {} range images, {} laser labels, {} projected labels, {} camera labels, panoptic labels on {} cameras",
        f.segment,
        f.timestamp_micros,
        cams.join(", "),
        lidar_calibs,
        range_images,
        f.lidar_boxes.len(),
        f.projected_lidar_boxes.len(),
        f.camera_boxes.len(),
        panoptic
    )
}
