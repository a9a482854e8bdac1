"""The final evaluation: the one code path that loads the test split.

After the search, the best trial's weights (best.pt) are evaluated on the test split
once; the result, the test split's sha256 and whether it was forced go to the journal.
A second evaluation is refused unless forced, and a forced one is flagged in summary.json:
a test score that can be looked at again and again turns into a validation score.

    python -m tunetorch.evaluate study.dir=runs/my-study [force=true]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tunetorch.errors import UsageError
from tunetorch.history import best_trial
from tunetorch.journal import Journal


def evaluate_best(
    study_dir: Path, journal: Journal, device: str = "cpu", force: bool = False
) -> dict[str, Any]:
    import torch
    from omegaconf import OmegaConf

    from tunetorch.training.datasets import load_test_split, split_hash
    from tunetorch.training.models import build_model
    from tunetorch.training.trainer import evaluate

    done = journal.evaluations()
    if done and not force:
        raise UsageError(
            f"force: {study_dir} was already evaluated on the test split "
            f"(accuracy {done[-1]['accuracy']:.4f}); each look at the test set makes it less of one: "
            "pass force=true to evaluate again (it is flagged)"
        )
    best = best_trial(journal.trials(), journal.get_meta("direction") or "maximize")
    if best is None:
        raise UsageError(f"study.dir: {study_dir} has no completed trial to evaluate")
    weights = study_dir / "best.pt"
    if not weights.is_file():
        raise UsageError(f"study.dir: {weights} is missing; the best trial's weights are needed")

    cfg = OmegaConf.create(journal.get_meta("config"))
    test = load_test_split(cfg.dataset, int(cfg.study.seed), device)
    model = build_model(cfg.model, best.params, tuple(test.x.shape[1:]), int(cfg.dataset.n_classes)).to(
        device
    )
    model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    loss, accuracy = evaluate(model, test)
    journal.add_evaluation(best.number, accuracy, loss, split_hash(test), forced=bool(done))
    return {
        "accuracy": accuracy,
        "loss": loss,
        "trial": best.number,
        "forced": bool(done),
        "n_test": len(test),
    }


def main(argv: list[str] | None = None) -> int:
    from tunetorch.report import write_reports

    args = dict(a.split("=", 1) for a in (sys.argv[1:] if argv is None else argv) if "=" in a)
    unknown = sorted(set(args) - {"study.dir", "force", "device"})
    try:
        if unknown:
            raise UsageError(f"{unknown[0]}: not an option; allowed: study.dir, force, device")
        if "study.dir" not in args:
            raise UsageError("study.dir: missing; give study.dir=PATH of a finished study")
        if args.get("force", "false") not in ("true", "false"):
            raise UsageError(f"force: {args['force']!r} must be true or false")
        study_dir = Path(args["study.dir"])
        if not (study_dir / "journal.sqlite").is_file():
            raise UsageError(f"study.dir: {study_dir} holds no journal.sqlite; is it a study directory?")
        journal = Journal(study_dir / "journal.sqlite")
        result = evaluate_best(
            study_dir, journal, args.get("device", "cpu"), force=args.get("force") == "true"
        )
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_reports(study_dir, journal, journal.get_meta("strategy") or "?")
    flag = " (FORCED re-evaluation, flagged in summary.json)" if result["forced"] else ""
    print(
        f"test accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f} (trial {result['trial']}){flag}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
