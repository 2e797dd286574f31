import sys, numpy as np, scenetok

metrics = scenetok.metrics.MotionMetrics()                        # Waymo's challenge config
for s in scenetok.womd.iter_scenarios(sys.argv[1]):               # a file, or a folder of shards
    ids, now = s.object_ids[s.tracks_to_predict], s.states[s.tracks_to_predict, s.current_time_index]
    t = 0.5 * np.arange(1, 17)                                    # 16 points at 2 Hz, 0.5 ... 8 s
    xy = now[:, None, None, 0:2] + now[:, None, None, 7:9] * t[:, None]   # constant velocity, [N, 1, 16, 2]
    metrics.add(s, scenetok.metrics.Predictions(s.scenario_id, ids, xy, np.ones((len(ids), 1))))
for name, m in metrics.result().items():
    print(f"{name:18} minADE {m['min_ade']:.3f}  minFDE {m['min_fde']:.3f}  mAP {m['mean_average_precision']:.3f}")
