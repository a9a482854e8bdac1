"""tunetorch's stratified split and digits reader give exactly what scikit-learn's do.

tunetorch.training.split re-implements `train_test_split(..., stratify=y, random_state=seed)`
and datasets._load_digits reads the file `load_digits` reads, so that a worker starts without
importing scikit-learn (about a second). Every study's validation and test images depend on
them: the same indices, index for index, for the data sets' labels and odd cases (ties among
the classes' remainders, unbalanced classes, fractions that round).
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from tunetorch.training.datasets import _load_digits
from tunetorch.training.split import stratified


def sklearn_split(y, fraction, seed):
    rest, held = train_test_split(np.arange(len(y)), test_size=fraction, stratify=y, random_state=seed)
    return np.sort(rest), np.sort(held)


LABELS = {
    "digits": load_digits().target,
    "balanced with ties": np.repeat(np.arange(7), 13),
    "unbalanced": np.concatenate([np.full(n, c) for c, n in enumerate([2, 3, 50, 17, 101, 9])]),
    "strings": np.array(list("aabbbccccddddd") * 5),
    "random": np.random.default_rng(0).integers(0, 10, size=1003),
}


@pytest.mark.parametrize("name", sorted(LABELS))
@pytest.mark.parametrize("fraction", [0.1, 0.12, 0.2, 1 / 3, 0.5, 0.77])
def test_the_split_is_scikit_learns_index_for_index(name, fraction):
    y = LABELS[name]
    for seed in (0, 1, 7, 123, 2**32 - 1):
        try:
            expected = sklearn_split(y, fraction, seed)
        except ValueError:
            with pytest.raises(ValueError):
                stratified(y, fraction, seed)
            continue
        rest, held = stratified(y, fraction, seed)
        assert np.array_equal(rest, expected[0]) and np.array_equal(held, expected[1]), (name, fraction, seed)


@pytest.mark.parametrize(
    "y, fraction",
    [
        (np.array([0, 0, 1, 1, 2]), 0.5),  # a class with one member
        (np.repeat(np.arange(10), 3), 0.1),  # fewer held than classes
        (np.repeat(np.arange(10), 3), 0.9),  # fewer kept than classes
        (np.arange(4) % 2, 0.0),
        (np.arange(4) % 2, 1.0),
    ],
)
def test_what_scikit_learn_refuses_is_refused(y, fraction):
    with pytest.raises(ValueError):
        sklearn_split(y, fraction, 0)
    with pytest.raises(ValueError):
        stratified(y, fraction, 0)


def test_the_digits_are_load_digits():
    images, target = _load_digits()
    digits = load_digits()
    assert images.shape == (1797, 8, 8)
    assert np.array_equal(images, digits.images) and np.array_equal(target, digits.target)
