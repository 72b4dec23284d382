"""``sim-engine realism``: reading every kind of log, the report, and bad input.

The readers are checked against the estimators on the same arrays (a generated
dataset read by pyarrow directly; CSV files whose local hours are known), the report
runs on a real log (Bitcoin OTC, tests/data/README.md) with plausible facts, and bad
input gets one line and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from helpers import assert_one_line_error, sim_engine
from sim_engine.cli.main import cli
from sim_engine.realism import facts
from sim_engine.realism.logfacts import log_facts
from sim_engine.realism.readers import LogError, LogOptions, read_log

DATA = Path(__file__).parent / "data"
BITCOIN = DATA / "soc-sign-bitcoinotc.csv"
BITCOIN_OPTIONS = ["--user-col", "1", "--time-col", "4"]
T0 = 1_772_409_600  # Monday 2026-03-02 00:00 UTC


def _realism_json(*argv: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(cli, ["realism", *argv, "--json"])
    assert result.exit_code == 0, result.output
    out: dict = json.loads(result.output)  # type: ignore[type-arg]
    return out


def test_bitcoin_otc_report_has_plausible_facts() -> None:
    f = _realism_json(str(BITCOIN), *BITCOIN_OPTIONS)["logs"][0]["facts"]
    assert f["events"] == 35_592 and f["users"] == 4_814
    assert 1_850 < f["span_days"] < 1_950  # November 2010 to January 2016
    assert 0.15 < f["trough_peak"] < 0.6  # a worldwide audience: a flattened rhythm
    assert 0.2 < f["burstiness_median"] < 0.6
    assert 0.6 < f["gini_events"] < 0.85  # few raters make most ratings
    assert f["d30"] < f["d7"] < f["d1"] < 0.5
    assert f["retention_exponent"] > 0 and f["gini_writes"] is None


def test_terminal_table_and_html_of_two_logs(tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    rows = [f"{1 + i % 7},{T0 + i * 3_600}" for i in range(300)]
    other = tmp_path / "other.csv"
    other.write_text("user,timestamp\n" + "\n".join(rows) + "\n")
    result = CliRunner().invoke(cli, ["realism", str(other), str(other), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert "trough / peak" in result.output and "stylized facts" in result.output
    text = page.read_text()
    assert 'id="chart-hourly"' in text and 'id="chart-retention"' in text
    assert "Plotly" in text[:5_000_000]


def test_two_logs_json_has_distances(tmp_path: Path) -> None:
    night = tmp_path / "night.csv"
    noon = tmp_path / "noon.csv"
    night.write_text(f"user,timestamp\n1,{T0}\n2,{T0 + 60}\n")
    noon.write_text(f"user,timestamp\n1,{T0 + 43_200}\n2,{T0 + 43_260}\n")
    report = _realism_json(str(night), str(noon))
    assert report["distances"]["hourly_l1"] == pytest.approx(2.0)
    assert [log["source"] for log in report["logs"]] == [str(night), str(noon)]


def test_generated_dataset_matches_its_own_columns(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    proc = sim_engine(
        "generate", "--users", "60", "--days", "8", "--start", "2026-03-02", "--seed", "3",
        "--out", str(out), "--quiet", timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    table = pads.dataset(out / "events", format="parquet", partitioning="hive").to_table(
        columns=["user_id", "ts_utc", "utc_offset_s", "event"]
    )
    log = read_log(out)
    assert len(log) == table.num_rows > 100
    t = table.column("ts_utc").cast(pa.int64()).to_numpy() / 1000.0
    offset = table.column("utc_offset_s").to_numpy().astype(np.float64)
    expected = facts(table.column("user_id").to_numpy(), t, offset)
    measured = facts(log.user, log.t, log.offset_s)
    assert measured == expected
    assert set(log.action_names) >= {"sign_up", "browse_feed"}
    assert log_facts(log).writes == int(np.isin(table.column("event").to_numpy(), [
        "create_post", "update_post", "delete_post", "comment", "react", "follow_author",
        "follow_back"]).sum())  # fmt: skip


def test_actions_jsonl_gives_local_offsets(tmp_path: Path) -> None:
    lines = [
        '{"sim_time":"2026-03-02T20:00:00.000+09:00","sim_ts":1772449200.0,"user_id":1,'
        '"action":"create_post","kind":"action"}',
        '{"sim_time":"2026-03-02T07:00:00.000-05:00","sim_ts":1772452800.0,"user_id":2,'
        '"action":"browse_feed","kind":"action"}',
    ]
    (tmp_path / "actions.jsonl").write_text("\n".join(lines) + "\n")
    log = read_log(tmp_path)
    assert log.offset_s is not None and log.offset_s.tolist() == [32_400.0, -18_000.0]
    assert log.t.tolist() == [1_772_449_200.0, 1_772_452_800.0]
    f = log_facts(log)
    assert f.hourly_shares[20] == 0.5 and f.hourly_shares[7] == 0.5
    assert f.writes == 1 and f.reads_per_write == 1.0


@pytest.mark.parametrize(
    ("tz_values", "shares"),
    [
        # 11:00 UTC for a week from Monday 2026-03-02: New York moves to summer time on
        # Sunday 8 March (07:00 local that day, 06:00 before); Tokyo has no DST.
        (["Asia/Tokyo", "America/New_York"], {20: 7 / 14, 6: 6 / 14, 7: 1 / 14}),
        (["+09:00", "-0500"], {20: 0.5, 6: 0.5}),
        (["32400", "-18000"], {20: 0.5, 6: 0.5}),
    ],
)
def test_csv_tz_column_sets_local_hours(
    tmp_path: Path, tz_values: list[str], shares: dict[int, float]
) -> None:
    path = tmp_path / "log.csv"
    rows = [f"{u},{T0 + 11 * 3_600 + d * 86_400},{tz_values[u]}" for d in range(7) for u in (0, 1)]
    path.write_text("user,when,zone\n" + "\n".join(rows) + "\n")
    log = read_log(path, LogOptions(time_col="when", tz_col="zone"))
    f = log_facts(log)
    assert {h: s for h, s in enumerate(f.hourly_shares) if s} == pytest.approx(shares)


def test_time_units_and_formats(tmp_path: Path) -> None:
    t = T0 + np.arange(50) * 977.0
    users = np.arange(50) % 5
    (tmp_path / "ms.tsv").write_text(
        "u\tt\n" + "\n".join(f"{u}\t{int(x * 1000)}" for u, x in zip(users, t, strict=True))
    )
    iso = [np.datetime_as_string(np.datetime64(int(x), "s")) + "Z" for x in t]
    (tmp_path / "iso.jsonl").write_text(
        "\n".join(
            json.dumps({"user": f"u{u}", "timestamp": s}) for u, s in zip(users, iso, strict=True)
        )
    )
    pq.write_table(pa.table({"user_id": users, "ts": t}), tmp_path / "s.parquet")
    a = read_log(tmp_path / "ms.tsv", LogOptions(user_col="u", time_col="t", time_unit="ms"))
    b = read_log(tmp_path / "iso.jsonl")
    c = read_log(tmp_path / "s.parquet")
    guessed = read_log(tmp_path / "ms.tsv", LogOptions(user_col="u", time_col="t"))
    for log in (a, b, c, guessed):
        assert np.allclose(np.sort(log.t), t)
        assert len(np.unique(log.user)) == 5


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("content", "argv", "words"),
    [
        (f"user,when\n1,{T0}\n2,{T0}\n", [], "no time column found"),
        (
            "user,timestamp\n1,2026-03-02\n2,yesterday\n",
            [],
            "row 2 has unparseable time 'yesterday'",
        ),
        (f"user,timestamp\n1,{T0}\n1,{T0 + 5}\n", [], "one user only"),
        ("", [], "the file is empty"),
        ("user,timestamp\n", [], "no events"),
        (f"user,timestamp\n1,{T0}\n2,{T0}\n", ["--time-col", "9"], "no time column '9'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, content: str, argv: list[str], words: str
) -> None:
    path = _write(tmp_path / "log.csv", content)
    line = assert_one_line_error(sim_engine("realism", str(path), *argv), 2)
    assert words in line and "log.csv" in line


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    line = assert_one_line_error(sim_engine("realism", str(tmp_path / "nope.csv")), 2)
    assert "no such file" in line
    line = assert_one_line_error(sim_engine("realism", str(_write(tmp_path / "x.xlsx", "a"))), 2)
    assert "unknown log format '.xlsx'" in line


def test_unknown_time_zone_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "z.csv", f"user,timestamp,tz\n1,{T0},Mars/Olympus\n2,{T0},UTC\n")
    with pytest.raises(LogError, match="unknown time zone 'Mars/Olympus'"):
        read_log(path)
