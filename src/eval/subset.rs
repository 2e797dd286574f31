//! Metrics on a subset of the agents to predict (e.g. those that pass an unlabelled
//! obstacle): the scenarios keep only those agents and each model's predictions for them,
//! so every WOMD rule applies to the subset unchanged.

use crate::scene::Scenario;
use crate::scene::prediction::ScenarioPredictions;

/// The agents to predict that `keep(scenario, track_index)` accepts, and each model's
/// predictions for them (`models[m][i]` belongs to `scenarios[i]`, one prediction per
/// agent to predict); scenarios left with none are dropped.
pub fn agent_subset(
    scenarios: &[Scenario],
    models: &[&[ScenarioPredictions]],
    keep: impl Fn(&Scenario, usize) -> bool,
) -> (Vec<Scenario>, Vec<Vec<ScenarioPredictions>>) {
    let mut kept = Vec::new();
    let mut preds: Vec<Vec<ScenarioPredictions>> = vec![Vec::new(); models.len()];
    for (i, s) in scenarios.iter().enumerate() {
        let which: Vec<usize> =
            (0..s.tracks_to_predict.len()).filter(|&k| keep(s, s.tracks_to_predict[k].track_index)).collect();
        if which.is_empty() {
            continue;
        }
        let mut sub = s.clone();
        sub.tracks_to_predict = which.iter().map(|&k| s.tracks_to_predict[k]).collect();
        kept.push(sub);
        for (m, p) in models.iter().enumerate() {
            let p = &p[i];
            preds[m].push(ScenarioPredictions {
                scenario_id: p.scenario_id.clone(),
                predictions: which.iter().filter_map(|&k| p.predictions.get(k).cloned()).collect(),
            });
        }
    }
    (kept, preds)
}
