"""Runs named SQL queries on DuckDB over Parquet files and reports their times and answers.

The peer side of `orbas bench kpi`: reads one JSON document on stdin
    {"threads": 2, "runs": 5,
     "tables": {"<name>": ["<parquet file URI or path>", ...]},
     "views": [["<name>", "<SQL>"], ...],
     "queries": [["<name>", "<SQL>"], ...]}
creates a view per table over `read_parquet` of exactly those files, then the views in order, times
each query `runs` times (wall clock around execute + fetchall) and prints
    {"version": "...", "queries": {"<name>": {"ms": [...], "rows": [[...], ...]}}}
with every value as text (NULL as null), so the caller compares answers without DuckDB's types.
"""

import json
import sys
import time
from urllib.parse import unquote, urlparse

import duckdb


def path_of(uri: str) -> str:
    if uri.startswith("file://"):
        return unquote(urlparse(uri).path)
    return uri


def text(v):
    if v is None:
        return None
    return str(v)


def main() -> None:
    spec = json.load(sys.stdin)
    con = duckdb.connect()
    con.execute(f"SET threads = {int(spec['threads'])}")
    con.execute("SET TimeZone = 'UTC'")
    for name, files in spec["tables"].items():
        paths = ", ".join("'" + path_of(f).replace("'", "''") + "'" for f in files)
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet([{paths}])')
    for name, sql in spec["views"]:
        con.execute(f'CREATE VIEW "{name}" AS {sql}')
    out = {}
    for name, sql in spec["queries"]:
        times = []
        rows = []
        for _ in range(int(spec["runs"])):
            started = time.perf_counter()
            rows = con.execute(sql).fetchall()
            times.append((time.perf_counter() - started) * 1000.0)
        out[name] = {"ms": times, "rows": [[text(v) for v in r] for r in rows]}
    print(json.dumps({"version": duckdb.__version__, "queries": out}))


if __name__ == "__main__":
    main()
