"""Writing tables in the dataset formats: Parquet, CSV, JSONL, and one DuckDB database.

Parquet is written by pyarrow (zstd, dictionary-encoded columns), CSV by
pyarrow's CSV writer, JSONL by DuckDB's ``COPY ... (FORMAT JSON)`` (one object a
line); no row goes through Python. A DuckDB dataset is staged as Parquet parts
while planning (workers cannot share one database file) and loaded into
``dataset.duckdb`` at the end by :func:`load_duckdb`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = ["EXTENSIONS", "FORMATS", "load_duckdb", "part_format", "write_table"]

FORMATS = ("parquet", "duckdb", "csv", "jsonl")
"""The formats ``generate`` writes."""
EXTENSIONS = {"parquet": ".parquet", "csv": ".csv", "jsonl": ".jsonl", "duckdb": ".parquet"}
"""File extension of each format's parts (DuckDB stages Parquet)."""
DUCKDB_FILE = "dataset.duckdb"


def part_format(fmt: str) -> str:
    """The format parts are written in (``duckdb`` stages Parquet)."""
    return "parquet" if fmt == "duckdb" else fmt


def _plain(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain strings (text formats)."""
    cols = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.Table.from_arrays(cols, names=table.column_names)


def write_table(table: pa.Table, path: Path, fmt: str) -> None:
    """Write ``table`` to ``path`` (extension included) in ``fmt``, through a temporary
    name so that a file that exists is complete.

    Raises:
        OSError: the file cannot be written.
        ValueError: an unknown format.
    """
    tmp = path.with_name(path.name + ".tmp")
    fmt = part_format(fmt)
    if fmt == "parquet":
        _write_parquet(table, tmp)
    elif fmt == "csv":
        pacsv.write_csv(_plain(table), tmp)
    elif fmt == "jsonl":
        _write_jsonl(_plain(table), tmp)
    else:
        raise ValueError(f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})")
    os.replace(tmp, path)


_STATS = ("user_id", "ts_utc", "date")


def _write_parquet(table: pa.Table, path: Path) -> None:
    """zstd; dictionaries only for categorical columns, delta encoding for integers and
    times, statistics for the columns queries filter on (measured: 2.4x faster and 30 %
    smaller than pyarrow's defaults on the events table, bench/generate.py)."""
    dicts, deltas = [], {}
    for f in table.schema:
        if pa.types.is_dictionary(f.type):
            dicts.append(f.name)
        elif pa.types.is_integer(f.type) or pa.types.is_timestamp(f.type):
            deltas[f.name] = "DELTA_BINARY_PACKED"
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=dicts,
        column_encoding=deltas,
        write_statistics=[c for c in _STATS if c in table.column_names],
    )


def _write_jsonl(table: pa.Table, path: Path) -> None:
    import duckdb

    con = duckdb.connect()
    try:
        con.register("rows", table)
        target = str(path).replace("'", "''")
        con.execute(f"COPY rows TO '{target}' (FORMAT JSON)")
    finally:
        con.close()


def load_duckdb(out: Path, tables: dict[str, list[Path]]) -> Path:
    """Load staged Parquet parts into one database file ``out/dataset.duckdb``.

    Args:
        out: the dataset directory.
        tables: table name -> its Parquet files (a table without files is created
            empty by the caller's schema: not here).

    Returns:
        The database's path.
    """
    import duckdb

    path = out / DUCKDB_FILE
    tmp = out / (DUCKDB_FILE + ".tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    try:
        for name, files in tables.items():
            listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet([{listed}])")
    finally:
        con.close()
    os.replace(tmp, path)
    return path
