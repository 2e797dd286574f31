//! Prediction outputs: a parquet table (one row per object and mode) and the official
//! `MotionChallengeSubmission` protobuf.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use prost::Message;

use super::motion::ScenarioPredictions;
use crate::error::{Error, Location, Result};
use crate::io::proto::submission as pb;
use crate::scene::prediction::PositionCovariance;

/// The parquet schema of `predictions.parquet`.
pub fn predictions_schema() -> Arc<Schema> {
    let list = |t| DataType::List(Arc::new(Field::new_list_field(t, true)));
    Arc::new(Schema::new(vec![
        Field::new("scenario_id", DataType::Utf8, true),
        Field::new("object_id", DataType::Int64, true),
        Field::new("mode", DataType::Int32, true),
        Field::new("confidence", DataType::Float64, true),
        Field::new("x", list(DataType::Float64), true),
        Field::new("y", list(DataType::Float64), true),
        // The position covariance per step (m², world frame) where the model predicts one
        // (the transformer); null for the baselines.
        Field::new("cov_xx", list(DataType::Float64), true),
        Field::new("cov_xy", list(DataType::Float64), true),
        Field::new("cov_yy", list(DataType::Float64), true),
    ]))
}

/// Writes every mode of every object (marginal predictions) as one parquet file.
pub fn write_predictions_parquet(path: &Path, predictions: &[ScenarioPredictions]) -> Result<()> {
    let at = Location::file(path);
    let (mut sid, mut oid, mut mode, mut conf) =
        (StringBuilder::new(), Int64Builder::new(), Int32Builder::new(), Float64Builder::new());
    let list = || ListBuilder::new(Float64Builder::new());
    let (mut xs, mut ys) = (list(), list());
    let mut cov = [list(), list(), list()];
    for s in predictions {
        for m in &s.predictions {
            for (k, j) in m.joints.iter().enumerate() {
                for t in &j.trajectories {
                    sid.append_value(&s.scenario_id);
                    oid.append_value(t.object_id);
                    mode.append_value(k as i32);
                    conf.append_value(j.confidence);
                    xs.values().append_slice(&t.x);
                    xs.append(true);
                    ys.values().append_slice(&t.y);
                    ys.append(true);
                    let parts: [fn(&PositionCovariance) -> f64; 3] = [|c| c.xx, |c| c.xy, |c| c.yy];
                    for (b, part) in cov.iter_mut().zip(parts) {
                        t.covariance.iter().for_each(|c| b.values().append_value(part(c)));
                        b.append(!t.covariance.is_empty());
                    }
                }
            }
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(sid.finish()),
        Arc::new(oid.finish()),
        Arc::new(mode.finish()),
        Arc::new(conf.finish()),
        Arc::new(xs.finish()),
        Arc::new(ys.finish()),
    ];
    let columns: Vec<ArrayRef> =
        columns.into_iter().chain(cov.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef)).collect();
    let batch =
        RecordBatch::try_new(predictions_schema(), columns).map_err(|e| Error::Arrow { at: at.clone(), cause: e })?;
    let mut out = crate::io::output::PendingParquet::new(path, Default::default())?;
    out.write(&batch)?;
    out.close()?.commit()
}

/// The official submission message for marginal predictions (`MOTION_PREDICTION`).
pub fn to_submission(predictions: &[ScenarioPredictions], method: &str) -> Result<pb::MotionChallengeSubmission> {
    let mut scenario_predictions = Vec::with_capacity(predictions.len());
    for s in predictions {
        let mut objects = Vec::new();
        for m in &s.predictions {
            let Some(first) = m.joints.first().and_then(|j| j.trajectories.first()) else { continue };
            let object_id = i32::try_from(first.object_id).map_err(|_| {
                Error::invalid(
                    Location::default().detail(format!("scenario {}", s.scenario_id)),
                    "an object id that fits the submission's int32",
                    first.object_id.to_string(),
                )
            })?;
            let trajectories = m
                .joints
                .iter()
                .filter_map(|j| {
                    let t = j.trajectories.first()?;
                    Some(pb::ScoredTrajectory {
                        trajectory: Some(pb::Trajectory {
                            center_x: t.x.iter().map(|v| *v as f32).collect(),
                            center_y: t.y.iter().map(|v| *v as f32).collect(),
                        }),
                        confidence: Some(j.confidence as f32),
                    })
                })
                .collect();
            objects.push(pb::SingleObjectPrediction { object_id: Some(object_id), trajectories });
        }
        scenario_predictions.push(pb::ChallengeScenarioPredictions {
            scenario_id: Some(s.scenario_id.clone()),
            prediction_set: Some(pb::PredictionSetKind::SinglePredictions(pb::PredictionSet { predictions: objects })),
        });
    }
    Ok(pb::MotionChallengeSubmission {
        scenario_predictions,
        submission_type: Some(pb::submission_type::MOTION_PREDICTION),
        unique_method_name: Some(method.to_string()),
        ..Default::default()
    })
}

/// Writes the submission as a binary protobuf.
pub fn write_submission(path: &Path, submission: &pb::MotionChallengeSubmission) -> Result<()> {
    crate::io::output::write_file(path, &submission.encode_to_vec())
}
