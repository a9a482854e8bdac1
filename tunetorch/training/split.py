"""The stratified, seeded split of a data set's labels into two parts (train / validation, or the
digits' rest / test), without importing scikit-learn.

    rest, held = stratified(y, fraction=0.2, seed=0)    # sorted indices into y

The rule is scikit-learn's `train_test_split(idx, test_size=fraction, stratify=y,
random_state=seed)` (its StratifiedShuffleSplit), drawn from the same RandomState in the same
order, so the parts are the same images, index for index (tests/test_split.py compares the two).
Why not call it: importing sklearn.model_selection costs about 1.2 s of start-up in the driver and
in every worker, which a one-second trial on digits pays many times over.
"""

from __future__ import annotations

import math

import numpy as np


def stratified(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held) indices, each sorted: `held` is ceil(fraction * n) of them, every class in
    (about) its share of y. Raises ValueError where scikit-learn does (a class with one member,
    fewer held or kept examples than classes, an empty part)."""
    y = np.asarray(y)
    n = len(y)
    if not 0 < fraction < 1:
        raise ValueError(f"test_size={fraction} should be a float in the (0, 1) range")
    n_held = math.ceil(fraction * n)
    n_rest = n - n_held
    if n_rest == 0:
        raise ValueError(f"With n_samples={n}, test_size={fraction}, the resulting train set will be empty")
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        raise ValueError(
            "The least populated classes in y have only 1 member, which is too few. The minimum "
            f"number of groups for any class cannot be less than 2: {classes[class_counts < 2].tolist()}"
        )
    for size, what in ((n_rest, "train_size"), (n_held, "test_size")):
        if size < len(classes):
            raise ValueError(
                f"The {what} = {size} should be greater or equal to the number of classes = {len(classes)}"
            )
    # Each class's indices in order (np.unique sorted the classes).
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_rest, rng)
    t_i = _approximate_mode(class_counts - n_i, n_held, rng)
    rest: list[int] = []
    held: list[int] = []
    for i in range(len(classes)):
        shuffled = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        rest.extend(shuffled[: n_i[i]])
        held.extend(shuffled[n_i[i] : n_i[i] + t_i[i]])
    # scikit-learn then permutes both parts; sorted, that draw does not matter.
    return np.sort(np.asarray(rest, dtype=np.int64)), np.sort(np.asarray(held, dtype=np.int64))


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """How many of `n_draws` come from each class: its share, floored, plus one for the classes
    with the largest remainders until the total is reached, ties broken by `rng` (the mode of the
    multivariate hypergeometric, approximately; scikit-learn's rule and draws)."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    if need > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need -= add_now
            if need == 0:
                break
    return floored.astype(int)
