"""The config file: strict keys with their line, precedence, globs, dropping finished runs, the run cap."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from monitor.daemon.config import Config, load_config, sources
from monitor.daemon.writer import Monitor
from monitor.errors import TrainwatchError

GOOD = """
price_per_kwh = 0.30
notify_before = "15m"
listen = "127.0.0.1:10999"

[[run]]
log = "{dir}/runs/*/out.log"
max_iters = 5000
labels = {{ cluster = "a" }}

[[run]]
log = "{dir}/single.log"
name = "the-one"
tokens_per_iter = 524288
price_per_kwh = 0.10
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text.format(dir=tmp_path))
    return str(path)


def test_a_good_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.settings.notify_before == 900.0 and cfg.settings.listen == "127.0.0.1:10999"
    assert [r.settings for r in cfg.runs] == [{"max_iters": 5000}, {"tokens_per_iter": 524288}]
    assert [r.price_per_kwh for r in cfg.runs] == [0.30, 0.10]
    assert cfg.runs[0].labels == {"cluster": "a"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("price_per_kwh = 0.3\nmax_iter = 5\n", ":2: unknown key `max_iter`"),
        ("[[run]]\nlog = 'a.log'\n\nmax_itres = 5\n", ":4: unknown key `run.max_itres`"),
        ("max_iters = 'many'\n", ":1: `max_iters` must be a whole number from 0 to 1e+15, not 'many'"),
        ("notify_before = 'soon'\n", ":1: `notify_before` must be a duration"),
        ("[[run]]\nname = 'x'\n", "needs `log"),
        ("max_iters = \n", "Invalid value"),
        ("max_runs = true\n", "`max_runs` must be a whole number from 1 to 100000, not True"),
    ],
    ids=["unknown-key", "unknown-run-key", "wrong-type", "bad-duration", "no-log", "not-toml", "bool-for-int"],
)
def test_mistakes_name_the_key_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TrainwatchError) as e:
        load_config(write(tmp_path, text))
    assert message in str(e.value)
    assert str(tmp_path / "config.toml") in str(e.value)


def test_missing_default_file_is_no_config_but_a_named_one_is_an_error(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert load_config(None) == Config()
    with pytest.raises(TrainwatchError, match="no such config file"):
        load_config(str(tmp_path / "nope.toml"))


def test_precedence_flags_over_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    specs = sources(cfg, [], {"settings": {"max_iters": 9000}, "price_per_kwh": 0.5})()
    single = next(s for s in specs if s.name == "the-one")
    assert single.user == {"tokens_per_iter": 524288, "max_iters": 9000}
    assert single.price_per_kwh == 0.5


def test_a_glob_names_runs_by_their_folder_and_finds_new_logs(tmp_path: Path) -> None:
    for run in ("a", "b"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        (tmp_path / "runs" / run / "out.log").write_text("")
    resolve = sources(load_config(write(tmp_path, GOOD)), [], {})
    assert sorted(s.name for s in resolve()) == ["a", "b", "the-one"]
    (tmp_path / "runs" / "c").mkdir()
    (tmp_path / "runs" / "c" / "out.log").write_text("")
    assert sorted(s.name for s in resolve()) == ["a", "b", "c", "the-one"]


def test_same_file_names_in_different_folders_get_distinct_stable_names(tmp_path: Path) -> None:
    logs = [str(tmp_path / d / "train.log") for d in ("x", "y")]
    names = [s.name for s in sources(Config(), logs, {})()]
    assert names == ["train", "train-2"]


def finished_log(path: Path) -> None:
    path.write_text("Overriding: max_iters = 10\niter 0: loss 1.0, time 1.00ms, mfu 1.00%\n"
                    "iter 10: loss 1.0, time 1.00ms, mfu 1.00%\n")


def test_monitor_picks_up_new_logs_and_drops_finished_ones_after_keep_time(tmp_path: Path) -> None:
    (tmp_path / "runs" / "a").mkdir(parents=True)
    finished_log(tmp_path / "runs" / "a" / "out.log")
    old = time.time() - 7200
    os.utime(tmp_path / "runs" / "a" / "out.log", (old, old))
    cfg = load_config(write(tmp_path, '[[run]]\nlog = "{dir}/runs/*/out.log"\n'))
    mon = Monitor(sources=sources(cfg, [], {}), poll_interval=0.05, rescan_s=0.0, keep_finished_s=3600)
    mon.step()
    assert [s.state for s in mon.snapshots()] == ["finished"]
    mon.step()  # finished two hours ago: dropped at the next scan
    assert mon.snapshots() == ()
    mon.step()
    assert mon.snapshots() == (), "a dropped run is not picked up again by the glob"
    (tmp_path / "runs" / "b").mkdir()
    (tmp_path / "runs" / "b" / "out.log").write_text("iter 0: loss 1.0, time 1.00ms, mfu 1.00%\n")
    mon.step()
    assert [s.run for s in mon.snapshots()] == ["b"]
    mon.stop()


def test_the_run_cap_is_kept_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logs = []
    for i in range(5):
        p = tmp_path / f"r{i}.log"
        p.write_text("")
        logs.append(str(p))
    mon = Monitor(sources=sources(Config(), logs, {}), max_runs=3)
    mon.step()
    assert len(mon.snapshots()) == 3
    assert "already following 3 runs" in caplog.text
    mon.stop()


def test_notify_urls_are_global_not_per_run(tmp_path: Path) -> None:
    """Notifications go to the same destinations for every run: a per-run `notify` would be silently
    ignored, so it is refused."""
    assert load_config(write(tmp_path, 'notify = ["ntfy://x"]\n')).settings.notify == ("ntfy://x",)
    with pytest.raises(TrainwatchError, match="unknown key `run.notify`"):
        load_config(write(tmp_path, '[[run]]\nlog = "a.log"\nnotify = ["ntfy://x"]\n'))
