"""A data module whose test split cannot be read: the digits, with `test()` raising.

tests/_broken_conf/dataset/broken_test.yaml names it, so a study runs with
`--config-dir tests/_broken_conf dataset=broken_test`: its trials train as on the digits, and
its evaluation fails as a user's module might (a file gone, a bad path, a bug in their code).
"""

from __future__ import annotations

from typing import Any

from tunetorch.training.datasets import Digits


class BrokenTestDigits(Digits):
    """The digits, but reading the test split raises ValueError."""

    def test(self, seed: int, device: Any = "cpu") -> Any:
        raise ValueError("the test split's labels file is corrupt (a deliberate fault of this fixture)")
