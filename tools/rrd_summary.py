"""Reads an .rrd back with the rerun SDK (rerun-sdk==0.36.3) and prints a JSON summary.

    .venv/bin/python tools/rrd_summary.py REC.rrd

{"recordings": N, "blueprints": N, "application_ids": [...],
 "entities": {"/world/ego/points/TOP": {"rows": 12, "static_rows": 0, "timelines": [...],
     "components": {"Points3D:positions": {"type": "rerun.components.Position3D", "rows": 12,
                                           "instances": 36943}, ...}}, ...},
 "blueprint_entities": [...]}

The scenetok tests check entity paths, component types and counts against what they logged.
"""

import json
import sys

from rerun.experimental import RrdReader


def summarise(path):
    reader = RrdReader(path)
    recordings, blueprints = reader.recordings(), reader.blueprints()
    entities = {}
    for store in recordings:
        for chunk in reader.stream(store=store).to_chunks():
            batch = chunk.to_record_batch()
            e = entities.setdefault(
                chunk.entity_path, {"rows": 0, "static_rows": 0, "timelines": set(), "components": {}}
            )
            e["static_rows" if chunk.is_static else "rows"] += chunk.num_rows
            for field, column in zip(batch.schema, batch.columns):
                meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
                kind = meta.get("rerun:kind")
                if kind == "index":
                    e["timelines"].add(field.name)
                if kind != "data":
                    continue
                c = e["components"].setdefault(
                    meta.get("rerun:component", field.name),
                    {"type": meta.get("rerun:component_type"), "rows": 0, "instances": 0},
                )
                for value in column.to_pylist() if column.null_count == len(column) else column:
                    if value is None or not value.is_valid:
                        continue
                    c["rows"] += 1
                    c["instances"] += len(value)
    blueprint_entities = set()
    for store in blueprints:
        for chunk in reader.stream(store=store).to_chunks():
            blueprint_entities.add(chunk.entity_path)
    for e in entities.values():
        e["timelines"] = sorted(e["timelines"] - {"log_time"})
    return {
        "recordings": len(recordings),
        "blueprints": len(blueprints),
        "application_ids": sorted({s.application_id for s in recordings + blueprints}),
        "entities": entities,
        "blueprint_entities": sorted(blueprint_entities),
    }


if __name__ == "__main__":
    json.dump(summarise(sys.argv[1]), sys.stdout, indent=1, sort_keys=True)
    print()
