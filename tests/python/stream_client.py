"""A plain pyarrow.flight client of `scenetok serve`: sends one v2 segment, one DoPut per
component (the components the server's `components` action names, in its order), reads the
predictions back with DoGet and the counters with the `stats` action.

Usage: stream_client.py HOST:PORT DATASET_DIR. Prints one JSON line: results, trajectories, stats.
"""

import json
import pathlib
import sys

import pyarrow.flight as flight
import pyarrow.parquet as pq


def main():
    addr, root = sys.argv[1], pathlib.Path(sys.argv[2])
    client = flight.connect(f"grpc://{addr}")
    needs = json.loads(next(iter(client.do_action(flight.Action("components", b"")))).body.to_pybytes())
    segment = None
    frames = set()
    for tag in needs["components"]:
        files = sorted((root / tag).glob("*.parquet"))
        if not files:
            continue
        table = pq.read_table(files[0])
        segment = table.column("key.segment_context_name")[0].as_py()
        if "key.frame_timestamp_micros" in table.column_names:
            frames.update(table.column("key.frame_timestamp_micros").to_pylist())
        writer, reader = client.do_put(flight.FlightDescriptor.for_path(tag), table.schema)
        writer.write_table(table, max_chunksize=64)
        writer.done_writing()
        # Acknowledgements: one per batch, with what the server rejected.
        rejected = []
        while True:
            try:
                buf = reader.read()
            except StopIteration:
                break
            if buf is None:
                break
            ack = json.loads(buf.to_pybytes())
            if ack.get("rejected"):
                rejected.append(ack)
        writer.close()
        if rejected:
            raise SystemExit(f"{tag}: rejected {rejected}")
    ticket = json.dumps({"segment": segment, "count": len(frames)}).encode()
    table = client.do_get(flight.Ticket(ticket)).read_all()
    trajectories = sum(len(t) for t in table.column("trajectories").to_pylist())
    stats = json.loads(next(iter(client.do_action(flight.Action("stats", b"")))).body.to_pybytes())
    print(json.dumps({"results": table.num_rows, "trajectories": trajectories, "stats": stats}))


if __name__ == "__main__":
    main()
