"""The final evaluation: the one code path that loads the test split.

After the search, the best trial's weights (best.pt) are evaluated on the test split
once. The look is journaled as *started* (trial, the weights' sha256, forced or not)
before the split is read, and *completed* after (every metric the validation step returns on
the test split, the study's metric among them, the split's sha256), so a look that was killed
half-way still counts: its result may have been seen. A second look
is refused unless forced, and a forced one is flagged in summary.json: a test score that
can be looked at again and again turns into a validation score.

A study directory is untrusted input, so before the look everything is checked and built:
the stored config's `_target_`s by kind (training/build.py: nothing is called before it is
checked), then the weights. best.pt must be the file the best trial's worker wrote: the
sha256 the journal recorded for that trial (and `best.trial` must name it). Where it is not (a
tuner killed after a new best was journaled and before best.pt was copied, or a file put
there by hand), best.pt is restored from `checkpoints/trial_NNNN.pt` if that file matches the
record, or the evaluation is refused with one line. The look is journaled as started only once
the model holds those weights and the data module is built.

    python -m tunetorch.evaluate study.dir=runs/my-study [force=true] [device=cuda:0]

Over 350 lines as one concept, the one look at the test split: each check before it (config,
weights, their hash) is a step of that look and reads in its order.

A data module whose test() raises, or returns a split the model cannot score, is one line
naming the module and the exception (exit 1); that look stays journaled as started, never
completed, and counts: the next evaluate says so and needs force=true (flagged).

Exit status: 0 done, 1 a fault of the environment (the study directory cannot be written,
nothing was read; a damaged journal, left as it is; a full disk) or a data module whose test()
raised, 2 bad input, a study in use (another tune, race or evaluate holds its lock) or a look
already spent.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from tunetorch.errors import EnvironmentFault, UsageError
from tunetorch.history import best_trial, stale_test
from tunetorch.journal import Journal
from tunetorch.lock import StudyLock
from tunetorch.trial import Trial
from tunetorch.words import count, test_parts

OPTIONS = ("study.dir", "force", "device")
USAGE = "python -m tunetorch.evaluate study.dir=PATH [force=true|false] [device=cpu|cuda|cuda:N]"


def evaluate_best(
    study_dir: Path, journal: Journal, device: str = "cpu", force: bool = False
) -> dict[str, Any]:
    """Score the best trial's weights on the test split, once, recorded before and after.

    The caller holds the study's lock (StudyLock). Returns metrics (every metric on the test
    split), metric (the study's) and value (its test value, None where it has no test
    counterpart), trial, forced, n_test, test_hash, weights_hash, restored (a note when best.pt
    was restored, else None)."""
    from tunetorch.reports.meta import study_meta

    study_dir = Path(study_dir)
    meta = study_meta(journal)
    best = best_trial(journal.trials(), meta.direction)
    if best is None:
        raise UsageError(f"study.dir: {study_dir} has no completed trial to evaluate")
    looks = journal.evaluations()
    stale = evaluation_is_stale(journal)
    if looks and not force:
        raise UsageError(_already_looked(study_dir, looks[-1], best, stale, meta.metric))
    forced = bool(looks) or stale
    # Everything is checked and built before the look is recorded: the stored config's targets,
    # then the weights the journal recorded for the trial, loaded into its model.
    cfg = _stored_config(journal, study_dir)
    model, data = _build(cfg, best, device)
    weights, weights_hash, restored = best_weights(study_dir, best.number, journal.weights_hash(best.number))
    _load(model, weights, device)
    try:
        look = journal.start_evaluation(best.number, weights_hash, forced)
    except (sqlite3.Error, OSError, EnvironmentFault) as e:
        raise EnvironmentFault(
            f"study.dir: {study_dir}: the journal cannot be written ({_cause(e)}); "
            "the test split was not read, so no look was spent"
        ) from None
    scored = _score_on_test(model, data, int(cfg.study.seed), device, study_dir, cfg.dataset.get("_target_"))
    metrics = scored["metrics"]
    value = metrics.get(meta.metric)  # the study's metric, where the validation step returns it
    try:
        journal.complete_evaluation(look, metrics, value, scored["test_hash"])
    except (sqlite3.Error, OSError, EnvironmentFault) as e:
        raise EnvironmentFault(
            f"study.dir: {study_dir}: test {_scores(meta.metric, metrics)} was measured but cannot be "
            f"recorded ({_cause(e)}); the look stays recorded as started and counts as one"
        ) from None
    return {
        **scored,
        "metric": meta.metric,
        "value": value,
        "trial": best.number,
        "forced": forced,
        "weights_hash": weights_hash,
        "restored": restored,
    }


def _stored_config(journal: Journal, study_dir: Path) -> Any:
    from omegaconf import OmegaConf

    text = journal.get_meta("config")
    try:
        cfg = OmegaConf.create(text) if text else None
    except Exception:  # noqa: BLE001 - OmegaConf raises several kinds for a damaged text
        cfg = None
    if cfg is None or not OmegaConf.is_dict(cfg) or OmegaConf.select(cfg, "study.seed") is None:
        raise UsageError(f"study.dir: {study_dir}: the journal holds no readable study config")
    return cfg


def _build(cfg: Any, trial: Trial, device: str) -> tuple[Any, Any]:
    """The trial's model (without its weights) and the data module, each `_target_` checked by
    kind before it is built (build.check, then build's own checks)."""
    from tunetorch.training import build

    tcfg = build.trial_config(cfg, trial.params)
    build.check(tcfg, trial.params)
    data = build.data_module(tcfg)
    return build.model(tcfg, *build.model_inputs(data)).to(device), data


def _load(model: Any, weights_path: Path, device: str) -> None:
    import torch

    try:
        model.load_state_dict(torch.load(weights_path, map_location=device, weights_only=True))
    except (RuntimeError, KeyError, TypeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"study.dir: {weights_path} does not fit the study's model ({reason})") from None


def rewrite_reports_after_a_failed_look(study_dir: Path, journal: Journal, looks_before: int) -> None:
    """summary.json and the rest show a look that started here and failed (its test() raised);
    only when one did, so a refused call writes nothing. Best effort: the fault is reported."""
    from tunetorch.reports import write_reports

    try:
        if len(journal.evaluations()) > looks_before:
            write_reports(study_dir, journal, journal.get_meta("strategy") or "?")
    except Exception:  # noqa: BLE001 - the disk may be the fault being reported
        pass


def _cause(e: BaseException) -> str:
    if isinstance(e, EnvironmentFault):
        return str(e)
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


# A look whose test split could not be read or scored stays journaled as started and never
# completes. It counts (the data module ran, and what it printed or wrote may have been seen), so
# the next evaluate says "started and never completed" and needs force=true, and is flagged.
def spent(study_dir: Path) -> str:
    return (
        "the look stays journaled as started and counts as one: once that is fixed, "
        f"python -m tunetorch.evaluate study.dir={study_dir} force=true looks again (flagged as forced)"
    )


def _score_on_test(
    model: Any, data: Any, seed: int, device: str, study_dir: Path, target: Any
) -> dict[str, Any]:
    """Everything that touches the test data, in one place: called only after the look was
    journaled as started. -> {"metrics": what the validation step returned on the test split,
    "n_test", "test_hash"}

    A data module whose test() raises (a user's module: a missing file, a bug) or a test split
    the model cannot score is one line, EnvironmentFault (exit 1), naming the module and the
    exception: the look was journaled as started and stays so (`spent`)."""
    from tunetorch.training.datasets import n_examples, split_hash
    from tunetorch.training.trainer import validate

    module = f" (data module {target})"
    note = spent(study_dir)
    try:
        test = data.test(seed, device)
    except UsageError as e:  # a built-in's one line (the data set's files are missing)
        raise UsageError(f"{e}; {note}") from None
    except EnvironmentFault as e:
        raise EnvironmentFault(f"{e}; {note}") from None
    except Exception as e:  # noqa: BLE001 - a user's data module may raise anything
        raise EnvironmentFault(f"dataset.test() raised {_one_line(e)}{module}; {note}") from None
    try:
        metrics = {name: float(value) for name, value in validate(model, test, device).items()}
        n_test, test_hash = n_examples(test), split_hash(test)
    except Exception as e:  # noqa: BLE001 - a split of the wrong shape, type or labels
        raise EnvironmentFault(
            f"dataset.test(){module} returned a split the model cannot score: {_one_line(e)}; {note}"
        ) from None
    return {"metrics": metrics, "n_test": n_test, "test_hash": test_hash}


def _scores(metric: str, metrics: dict[str, float]) -> str:
    """'accuracy 0.9417': the study's metric as measured on the test split, or, where it has no
    test counterpart, every metric that was (words.test_parts)."""
    head, others = test_parts(metric, metrics)
    return ", ".join(f"{name} {value:.4f}" for name, value in ([head] if head else others))


def _one_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def evaluation_is_stale(journal: Journal) -> bool:
    """True when the last completed test result belongs to a trial that is no longer the best
    (a study resumed and extended after its evaluation)."""
    return stale_test(journal.evaluations(), journal.trials(), journal.get_meta("direction") or "maximize")


def best_weights(study_dir: Path, number: int, recorded: str | None) -> tuple[Path, str, str | None]:
    """best.pt, checked to be the weights trial `number` wrote (`recorded`: the sha256 the journal
    holds for them), restored from its checkpoint where it is not -> (path, sha256, a note when
    restored). UsageError, with nothing written, when neither file is those weights."""
    from tunetorch.checkpoints import BEST, best_marker, file_sha256, install_best, trial_path

    best_pt = study_dir / BEST
    checkpoint = trial_path(study_dir / "checkpoints", number)
    if recorded is None:
        raise UsageError(
            f"study.dir: {study_dir}: the journal records no sha256 of the best trial {number}'s weights "
            "(the tuner stopped before recording them), so no weights file can be trusted as that trial's"
        )
    marked = best_marker(study_dir)
    have = file_sha256(best_pt) if best_pt.is_file() else None
    if marked == number and have == recorded:
        _check_loadable(best_pt)
        return best_pt, recorded, None
    if checkpoint.is_file() and file_sha256(checkpoint) == recorded:
        _check_loadable(checkpoint)
        what = (
            "was missing"
            if have is None
            else f"held trial {marked}'s weights"
            if marked != number
            else "differed from the trial's checkpoint"
        )
        install_best(study_dir, number)  # the tuner's own copy: weights, then the marker
        return best_pt, recorded, f"best.pt {what}; restored the best trial {number}'s from {checkpoint}"
    other = (
        f"{checkpoint} is missing"
        if not checkpoint.is_file()
        else f"{checkpoint} is not them either (its sha256 is not the journal's record)"
    )
    if have is None:
        raise UsageError(
            f"study.dir: {best_pt} is missing and {other}; the best trial {number}'s weights are needed"
        )
    if marked != number:
        held = "an unknown trial" if marked is None else f"trial {marked}"
        raise UsageError(
            f"study.dir: {best_pt} holds the weights of {held}, not of the best trial {number}, and "
            f"{other}; resume the study with python -m tunetorch.tune to rewrite it"
        )
    _check_loadable(best_pt)
    raise UsageError(
        f"study.dir: {best_pt} is not the weights the best trial {number} wrote (its sha256 is not the "
        f"one the journal recorded, {recorded[:12]}...), and {other}; nothing was scored"
    )


def _check_loadable(path: Path) -> None:
    """A truncated or foreign weights file is refused before any look is recorded."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several kinds for a bad file
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(
            f"study.dir: {path} is unreadable (truncated or not a weights file: {reason})"
        ) from None
    if not isinstance(state, dict) or not state:
        raise UsageError(f"study.dir: {path} holds no model weights (a state dict was expected)")


def _already_looked(study_dir: Path, last: dict, best: Trial, stale: bool, metric: str) -> str:
    if last["status"] == "completed":
        seen = f"trial {last['trial']}, {_scores(metric, last['metrics'])}"
    else:
        seen = f"trial {last['trial']}: that look started and never completed, its result may have been seen"
    note = (
        f"; the best is now trial {best.number}, so that result belongs to a trial that is no longer the best"
        if stale
        else ""
    )
    return (
        f"force: {study_dir} was already evaluated on the test split ({seen}){note}; each look at the test "
        "set makes it less of one: pass force=true to evaluate again (it is flagged)"
    )


def check_device(device: str) -> str:
    """cpu, cuda or cuda:N that exists here; UsageError otherwise."""
    if device == "cpu":
        return device
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if not m:
        raise UsageError(f"device: {device!r} is not one of cpu, cuda, cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise UsageError(f"device: {device!r} but no CUDA GPU is visible here; use device=cpu")
    n = torch.cuda.device_count()
    if int(m.group(1) or 0) >= n:
        seen = count(n, "CUDA GPU")
        raise UsageError(
            f"device: {device!r} but {seen} {'is' if n == 1 else 'are'} visible (cuda:0 to cuda:{n - 1})"
        )
    return device


def parse_args(argv: list[str]) -> dict[str, str]:
    args: dict[str, str] = {}
    for a in argv:
        key, eq, value = a.partition("=")
        if not eq:
            raise UsageError(f"{a!r}: not an option; usage: {USAGE}")
        if key not in OPTIONS:
            raise UsageError(f"{key}: not an option; allowed: {', '.join(OPTIONS)}")
        args[key] = value
    if not args.get("study.dir"):
        raise UsageError("study.dir: missing or empty; give study.dir=PATH of a finished study")
    if args.setdefault("force", "false") not in ("true", "false"):
        raise UsageError(f"force: {args['force']!r} must be true or false")
    args.setdefault("device", "cpu")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(f"usage: {USAGE}")
        return 0
    args: dict[str, str] = {}
    try:
        args = parse_args(argv)
        device = check_device(args["device"])
        study_dir = Path(args["study.dir"])
        if not study_dir.is_dir():
            what = "is not a directory" if study_dir.exists() else "does not exist"
            raise UsageError(f"study.dir: {study_dir} {what}")
        # Checked before the lock: a directory that is not a study gets nothing written into it.
        if not (study_dir / "journal.sqlite").is_file():
            raise UsageError(f"study.dir: {study_dir} holds no journal.sqlite; is it a study directory?")
        with StudyLock(study_dir):
            result, summary = _evaluate_locked(study_dir, device, args["force"] == "true")
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except EnvironmentFault as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (sqlite3.Error, OSError) as e:
        print(f"error: study.dir: {args.get('study.dir')}: cannot be read or written ({e})", file=sys.stderr)
        return 1
    if result["restored"]:
        print(f"note: {result['restored']}")
    from tunetorch.reports.terminal import test_line

    print(test_line(summary["test"], summary.get("optimism"), n_test=result["n_test"]))
    return 0


def _evaluate_locked(study_dir: Path, device: str, force: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        journal = Journal(study_dir / "journal.sqlite")
    except sqlite3.Error as e:
        raise EnvironmentFault(
            f"study.dir: {study_dir}: the journal cannot be opened for writing ({e})"
        ) from None
    try:
        return look(study_dir, journal, device=device, force=force)
    finally:
        journal.close()


def look(
    study_dir: Path,
    journal: Journal,
    tb: Any = None,
    *,
    device: str = "cpu",
    force: bool = False,
    strategy: str | None = None,
    n_trials: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The look (`evaluate_best`) and what follows it, for tune and evaluate alike: the reports
    rewritten and the result on TensorBoard (`tb`, the running study's; without one the study's
    own, opened after the look and closed). A look that failed (its test() raised) is shown in the
    reports and raised. Returns (evaluate_best's result, summary.json's dict)."""
    from tunetorch.reports import write_reports

    looks = len(journal.evaluations())
    try:
        result = evaluate_best(study_dir, journal, device, force=force)
    except (EnvironmentFault, UsageError):
        rewrite_reports_after_a_failed_look(study_dir, journal, looks)
        raise
    summary = write_reports(study_dir, journal, strategy or journal.get_meta("strategy") or "?")
    # The running study's TensorBoard stays open for its caller; the study's own is closed here.
    with nullcontext(tb) if tb is not None else _study_tensorboard(study_dir, journal) as board:
        board.test_result(summary["test"], summary.get("optimism"), n_trials=n_trials)
        board.images(step=summary["n_trials"])
    return result, summary


def _study_tensorboard(study_dir: Path, journal: Journal) -> Any:
    from tunetorch.reports import TensorBoardLog, study_meta

    meta = study_meta(journal)  # a forced look reaches TensorBoard too
    return TensorBoardLog(study_dir, space=meta.space, metric=meta.metric, direction=meta.direction)


if __name__ == "__main__":
    sys.exit(main())
