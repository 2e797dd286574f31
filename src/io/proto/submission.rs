//! The motion challenge submission (`protos/motion_submission.proto`); scenetok only
//! writes these.

/// Predicted positions at steps 15, 20, …, 90 (2 Hz) of the scenario.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Trajectory {
    #[prost(float, repeated, packed = "true", tag = "2")]
    pub center_x: Vec<f32>,
    #[prost(float, repeated, packed = "true", tag = "3")]
    pub center_y: Vec<f32>,
}

/// One mode with its confidence.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScoredTrajectory {
    #[prost(message, optional, tag = "1")]
    pub trajectory: Option<Trajectory>,
    #[prost(float, optional, tag = "2")]
    pub confidence: Option<f32>,
}

/// Up to six modes for one object (by track id, not index).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SingleObjectPrediction {
    #[prost(int32, optional, tag = "1")]
    pub object_id: Option<i32>,
    #[prost(message, repeated, tag = "2")]
    pub trajectories: Vec<ScoredTrajectory>,
}

/// The predictions for every required object of a scenario.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PredictionSet {
    #[prost(message, repeated, tag = "1")]
    pub predictions: Vec<SingleObjectPrediction>,
}

/// One object's part of a joint mode.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectTrajectory {
    #[prost(int32, optional, tag = "1")]
    pub object_id: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub trajectory: Option<Trajectory>,
}

/// One joint mode of the interacting objects.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScoredJointTrajectory {
    #[prost(message, repeated, tag = "2")]
    pub trajectories: Vec<ObjectTrajectory>,
    #[prost(float, optional, tag = "3")]
    pub confidence: Option<f32>,
}

/// Up to six joint modes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct JointPrediction {
    #[prost(message, repeated, tag = "1")]
    pub joint_trajectories: Vec<ScoredJointTrajectory>,
}

/// `ChallengeScenarioPredictions.prediction_set`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum PredictionSetKind {
    #[prost(message, tag = "2")]
    SinglePredictions(PredictionSet),
    #[prost(message, tag = "3")]
    JointPrediction(JointPrediction),
}

/// The predictions for one scenario.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChallengeScenarioPredictions {
    #[prost(string, optional, tag = "1")]
    pub scenario_id: Option<String>,
    #[prost(oneof = "PredictionSetKind", tags = "2, 3")]
    pub prediction_set: Option<PredictionSetKind>,
}

/// `MotionChallengeSubmission.SubmissionType` values.
pub mod submission_type {
    pub const UNKNOWN: i32 = 0;
    pub const MOTION_PREDICTION: i32 = 1;
    pub const INTERACTION_PREDICTION: i32 = 2;
}

/// A whole challenge submission.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MotionChallengeSubmission {
    #[prost(message, repeated, tag = "1")]
    pub scenario_predictions: Vec<ChallengeScenarioPredictions>,
    /// See [`submission_type`].
    #[prost(int32, optional, tag = "2")]
    pub submission_type: Option<i32>,
    #[prost(string, optional, tag = "3")]
    pub account_name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub unique_method_name: Option<String>,
    #[prost(string, repeated, tag = "5")]
    pub authors: Vec<String>,
    #[prost(string, optional, tag = "6")]
    pub affiliation: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub description: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub method_link: Option<String>,
    #[prost(bool, optional, tag = "9")]
    pub uses_lidar_data: Option<bool>,
    #[prost(bool, optional, tag = "10")]
    pub uses_camera_data: Option<bool>,
    #[prost(bool, optional, tag = "11")]
    pub uses_public_model_pretraining: Option<bool>,
    #[prost(string, optional, tag = "12")]
    pub num_model_parameters: Option<String>,
    #[prost(string, repeated, tag = "13")]
    pub public_model_names: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn submission_round_trips() {
        let traj = Trajectory { center_x: (0..16).map(|i| i as f32).collect(), center_y: vec![0.5; 16] };
        let sub = MotionChallengeSubmission {
            scenario_predictions: vec![
                ChallengeScenarioPredictions {
                    scenario_id: Some("637f20cafde22ff8".into()),
                    prediction_set: Some(PredictionSetKind::SinglePredictions(PredictionSet {
                        predictions: vec![SingleObjectPrediction {
                            object_id: Some(42),
                            trajectories: vec![ScoredTrajectory {
                                trajectory: Some(traj.clone()),
                                confidence: Some(0.7),
                            }],
                        }],
                    })),
                },
                ChallengeScenarioPredictions {
                    scenario_id: Some("b".into()),
                    prediction_set: Some(PredictionSetKind::JointPrediction(JointPrediction {
                        joint_trajectories: vec![ScoredJointTrajectory {
                            trajectories: vec![
                                ObjectTrajectory { object_id: Some(1), trajectory: Some(traj.clone()) },
                                ObjectTrajectory { object_id: Some(2), trajectory: Some(traj) },
                            ],
                            confidence: Some(0.25),
                        }],
                    })),
                },
            ],
            submission_type: Some(submission_type::MOTION_PREDICTION),
            account_name: Some("me@example.com".into()),
            unique_method_name: Some("scenetok".into()),
            authors: vec!["A".into(), "B".into()],
            uses_lidar_data: Some(false),
            uses_camera_data: Some(false),
            uses_public_model_pretraining: Some(false),
            num_model_parameters: Some("2M".into()),
            ..Default::default()
        };
        let bytes = sub.encode_to_vec();
        let back = MotionChallengeSubmission::decode(bytes.as_slice()).expect("own encoding decodes");
        assert_eq!(back, sub);
        // Field 1 (scenario_predictions, length-delimited) leads the encoding: tag byte 0x0a.
        assert_eq!(bytes.first(), Some(&0x0a));
    }
}
