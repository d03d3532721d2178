"""Reads a lake table with engines that are not ours and prints one canonical line per row.

usage: readers.py deltalake|duckdb TABLE_DIR

- deltalake: delta-rs' Python package loads the table (log replay, Parquet decoding in its own code);
  DuckDB then only formats the Arrow data it returned.
- duckdb: DuckDB's delta extension (delta-kernel-rs) scans the table itself, loaded from the
  duckdb-extension-delta wheel because DuckDB's run-time INSTALL needs the internet.
"""
import pathlib
import sys

import duckdb

ROW = """concat_ws('~', id, tenant_id, coalesce(name, '∅'), coalesce(CAST(amount AS VARCHAR), '∅'),
    coalesce(array_to_string(tags, '|'), '∅'), coalesce(CAST(epoch_us(happened) AS VARCHAR), '∅'),
    coalesce(CAST(day AS VARCHAR), '∅'), coalesce(payload, '∅'), coalesce(lower(hex(data)), '∅'),
    coalesce(CAST(CAST(ratio * 4 AS BIGINT) AS VARCHAR), '∅'), coalesce(CAST(qty AS VARCHAR), '∅'))"""


def main() -> None:
    engine, path = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if engine == "deltalake":
        from deltalake import DeltaTable

        silver = DeltaTable(path).to_pyarrow_table()  # noqa: F841 (read by DuckDB below by name)
        rows = con.execute(f"SELECT {ROW} FROM silver ORDER BY id").fetchall()
    elif engine == "duckdb":
        import duckdb_extension_delta

        ext = next(pathlib.Path(duckdb_extension_delta.__file__).parent.rglob("delta.duckdb_extension"))
        con.execute(f"LOAD '{ext}'")
        rows = con.execute(f"SELECT {ROW} FROM delta_scan(?) ORDER BY id", [path]).fetchall()
    else:
        sys.exit(f"unknown engine {engine}")
    for (line,) in rows:
        print(line)


if __name__ == "__main__":
    main()
