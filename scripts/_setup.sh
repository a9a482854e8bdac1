# Sourced by scripts/tune and scripts/test: create .venv on first use and install the
# pinned dependencies and this package (editable) into it. Re-installs when pyproject.toml
# changes or when the caller needs extras not installed yet.
#
#   TUNETORCH_EXTRAS   extras the caller needs, comma separated, set before sourcing:
#                      scripts/tune none, scripts/test "dev,ray" (pytest, and Ray for tests/test_ray.py)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
# torch is pinned here and in pyproject.toml: an unpinned torch pulls several GB of CUDA packages.
TORCH_VERSION="2.13.0"
stamp="$VENV/.tunetorch-installed"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1) torch==$TORCH_VERSION"

# The stamp: line 1 what was installed from (pyproject's hash, torch), line 2 the extras installed.
have="$(sed -n 1p "$stamp" 2>/dev/null || true)"
have_extras="$(sed -n 2p "$stamp" 2>/dev/null || true)"
extras="$(printf '%s\n' ${TUNETORCH_EXTRAS:-} ${have_extras//,/ } | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)"

if [ ! -x "$VENV/bin/python" ] || [ "$have" != "$want" ] || [ "$extras" != "$have_extras" ]; then
  echo "setting up $VENV (first use: installs torch==$TORCH_VERSION and the pinned dependencies)..." >&2
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
  # Every editable install of a project with a package-dir mapping (conf/ -> tunetorch.conf) gets
  # setuptools' note "Editable installation ... folders in your working directory ... may take
  # precedence", an InformationOnly warning that new pips print; it says nothing about this
  # project, so it is the one warning filtered. Any other warning of the build still shows.
  PYTHONWARNINGS="ignore:Editable installation" \
    "$VENV/bin/python" -m pip install -q -e "$ROOT${extras:+[$extras]}" "torch==$TORCH_VERSION"
  printf '%s\n%s\n' "$want" "$extras" > "$stamp"
fi
