"""The benchmark scripts still run: each once, shrunk to seconds. They measure nothing here;
their real runs and outputs are in docs/bench_*.md."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT
from tunetorch.snapshot import Snapshot


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / name), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_bench_strategies_prints_its_table():
    out = script(
        "bench_strategies.py",
        *("--seeds", "2", "--budget", "8", "--functions", "branin", "--samplers", "bayes,random"),
        *("--workers", "1", "--no-timing"),
    )
    assert "| branin | bayes |" in out.stdout and "| branin | random |" in out.stdout


def test_bench_dispatch_prints_its_tables():
    from tests.test_ray import HAVE_RAY, _unshare_works

    out = script(
        "bench_dispatch.py",
        *("--reps", "1", "--trials", "20", "--cpu-trials", "3", "--cpu-epochs", "1", "--one-cluster"),
        *("--cpu-workers", "2"),  # the 2-worker rows only: a worker (local) and an actor (Ray) less
    )
    assert "added per trial" in out.stdout and "Utilisation on the CPU" in out.stdout
    assert "| 2 (local pool) |" in out.stdout, out.stdout
    if HAVE_RAY and _unshare_works():  # the Ray rows, from one two-node cluster
        assert "| Ray backend (2 nodes, 1 actor each) |" in out.stdout, out.stdout
        assert "| 2 (Ray backend, 2 nodes) |" in out.stdout, out.stdout


def test_bench_real_prints_best_so_far():
    out = script(
        "bench_real.py",
        *("--seeds", "1", "--trials", "3", "--epochs", "1", "--dataset", "digits"),
    )
    assert "| bayes |" in out.stdout and "| random |" in out.stdout


def test_race_check_reports_medians_and_bayes_wins_on_bumpy():
    out = script("race_check.py", "--seeds", "2", "--trials", "30")  # exit status 1 if bayes does not win
    assert "median best" in out.stdout


def test_bench_multifidelity_prints_its_tables():
    import importlib.util

    methods = "random,bayes+asha" + (",optuna-tpe+hyperband" if importlib.util.find_spec("optuna") else "")
    out = script(
        "bench_multifidelity.py",
        *("--dataset", "digits", "--epochs", "2", "--seeds", "1", "--budget-trials", "3"),
        *("--methods", methods, "--device", "cpu"),
    )
    assert "| random |" in out.stdout and "| bayes+asha |" in out.stdout and "Spearman" in out.stdout
    assert "Target 1" in out.stdout
    if "optuna" in methods:
        assert "| optuna-tpe+hyperband |" in out.stdout and "Target 2" in out.stdout

    # The test accuracy of the trial each method hands over, at each cut-off (budget 6: E = 1, 3, 6).
    header, rows = _markdown_table(out.stdout, "method | test E=1")
    assert header == ["method", "test E=1", "test E=3", "test E=6"], out.stdout
    assert [row[0] for row in rows] == methods.split(","), out.stdout
    for row in rows:
        for cell in row[1:]:  # one seed: a bare median
            assert 0.0 <= float(cell) <= 1.0, out.stdout
    # The weights scored are the ones picked: they give the validation value they were picked for.
    assert "note:" not in out.stderr, out.stderr
    if "optuna" in methods:
        header, rows = _markdown_table(out.stdout, "E | val bayes+asha")
        assert header[:7] == [
            "E",
            "val bayes+asha",
            "val optuna-tpe+hyperband",
            "val difference",
            "test bayes+asha",
            "test optuna-tpe+hyperband",
            "test difference",
        ], out.stdout
        assert [row[0] for row in rows] == ["1", "3", "6"], out.stdout
        for row in rows:
            assert all(0.0 <= float(row[i]) <= 1.0 for i in (1, 2, 4, 5)), out.stdout
            assert all(-1.0 <= float(row[i]) <= 1.0 for i in (3, 6)), out.stdout


def _markdown_table(text: str, first_header: str) -> tuple[list[str], list[list[str]]]:
    """(header cells, row cells) of the markdown table whose header starts with `first_header`."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |")), None)
    assert start is not None, f"no table headed | {first_header} | in:\n{text}"
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(cells(line))
    return cells(lines[start]), rows


def test_bench_suggest_prints_seconds_against_finished_trials():
    out = script("bench_suggest.py", *("--n", "20,40", "--reps", "1", "--no-optuna"))
    header, rows = _markdown_table(out.stdout, "n finished")
    assert header == [
        "n finished",
        "bayes",
        "bayes + ASHA (rank, the default)",
        "bayes + ASHA (fidelity=joint)",
    ], out.stdout
    assert [row[0] for row in rows] == ["20", "40"], out.stdout
    for row in rows:
        assert len(row) == len(header), out.stdout
        assert all(float(cell) > 0 for cell in row[1:]), out.stdout
    assert "--no-optuna" in out.stdout  # the note says why Optuna's columns are missing
    assert "Machine:" in out.stdout and "numpy" in out.stdout and "Command:" in out.stdout


def test_bench_suggest_asha_history_is_what_the_scheduler_decides(monkeypatch):
    """The script re-implements ASHA's rule (replaying 10,000 trials through the scheduler is
    quadratic); on a small history it must stop every trial where tunetorch's ASHA would."""
    import importlib.util

    from tunetorch import SearchSpace
    from tunetorch.schedulers.asha import ASHA

    spec = importlib.util.spec_from_file_location("bench_suggest", ROOT / "scripts" / "bench_suggest.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_suggest", bench)  # its dataclasses look their module up
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # it sets them on import
        monkeypatch.setenv(var, os.environ.get(var, "1"))
    spec.loader.exec_module(bench)
    space = SearchSpace.from_dict(bench.SPACE)
    history = bench.History(space, seed=3, asha=True)
    for params in bench.start_points(space, 3, 80):
        history.add(params)
    assert {t.state.value for t in history.trials} == {"PRUNED", "COMPLETE"}

    asha, curves, stopped_after = ASHA(max_resource=bench.EPOCHS, eta=bench.ETA), {}, []
    for t in history.trials:
        values = bench.curve(space.to_unit(t.params), 3, t.number)
        for epoch, value in enumerate(values):
            curves.setdefault(t.number, {})[epoch] = value
            if asha.on_epoch(t.number, epoch, value, Snapshot(curves=curves)):
                break
        stopped_after.append(len(curves[t.number]))
        assert history.curves[t.number] == curves[t.number]
    assert [t.epochs for t in history.trials] == stopped_after
