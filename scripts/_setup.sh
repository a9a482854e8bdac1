# Sourced by scripts/tune and scripts/test: create .venv on first use and install the
# pinned dependencies and this package into it. Re-installs when pyproject.toml changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# torch is pinned here and in pyproject.toml: an unpinned torch pulls several GB of CUDA packages.
TORCH_VERSION="2.13.0"
stamp="$VENV/.tunetorch-installed"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) torch==$TORCH_VERSION"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up $VENV (first use: installs torch==$TORCH_VERSION and the pinned dependencies)..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
  # the ray extra too, so that the two-node Ray cluster tests (tests/test_ray.py) run in CI
  "$VENV/bin/python" -m pip install -q -e "$ROOT[dev,ray]" "torch==$TORCH_VERSION"
  echo "$want" > "$stamp"
fi
