"""tunetorch: tune PyTorch models with grid, random and Bayesian search.

The public API needs neither Hydra nor training:

    import tunetorch
    space = tunetorch.SearchSpace.from_dict({"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}})
    study = tunetorch.Study(space, strategy="bayes", seed=0)
    trial = study.ask(); study.tell(trial, score); study.best
"""

from tunetorch.errors import SpaceExhausted, UsageError
from tunetorch.journal import Journal
from tunetorch.schedulers import Scheduler, make_scheduler
from tunetorch.snapshot import Snapshot
from tunetorch.space import Categorical, Float, Int, SearchSpace
from tunetorch.strategies import Strategy, make_strategy
from tunetorch.study import Study
from tunetorch.trial import Trial, TrialState

__all__ = [
    "Categorical",
    "Float",
    "Int",
    "Journal",
    "Scheduler",
    "SearchSpace",
    "Snapshot",
    "SpaceExhausted",
    "Strategy",
    "Study",
    "Trial",
    "TrialState",
    "UsageError",
    "make_scheduler",
    "make_strategy",
]
