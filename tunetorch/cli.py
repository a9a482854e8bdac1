"""The command line of `python -m tunetorch.tune`, `.race` and `.evaluate`: argv -> a composed
config, and one line (never a traceback) for anything a user or the environment got wrong.

    main("tune", run)   # compose conf/tune.yaml with the command line's overrides, exit run(cfg)

Configs: tunetorch's own live in the top-level `conf/` of the source tree; an installed wheel
carries them as the package data `tunetorch/conf/` (pyproject maps one onto the other). A
user's `--config-dir DIR` (or `hydra.searchpath=[...]`) adds their own groups and options
beside ours: `--config-dir conf model=my_net`.

Exit status: 0 done; 2 bad input (one line naming the key, the value and what is allowed;
nothing written); 1 a fault of the environment (disk, permissions) or a study that stopped on
failures; 130 interrupted.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from tunetorch.errors import EnvironmentFault, UsageError, did_you_mean

USAGE = (
    "usage: python -m tunetorch.{name} [--config-dir DIR] [--cfg] [key=value | group=option | +key=value ...]"
)
# Groups chosen with `+group=NAME` because they are not in the defaults list; `group=NAME` works too.
OPTIONAL_GROUPS = ("strategy", "scheduler")


def conf_dir() -> Path:
    """tunetorch's configs: the source tree's top-level conf/ (a checkout or an editable install),
    else the copy an installed wheel carries inside the package."""
    package = Path(__file__).resolve().parent
    source = package.parent / "conf"
    if (source / "tune.yaml").is_file():
        return source
    return package / "conf"


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def main(config_name: str, run: Callable[[Any], int], argv: list[str] | None = None) -> NoReturn:
    """Compose `conf/<config_name>.yaml` with the command line and exit with `run(cfg)`."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        user_dir, overrides, show = parse_argv(config_name, argv)
        cfg = compose(config_name, overrides, user_dir)
        if show:
            from omegaconf import OmegaConf

            print(OmegaConf.to_yaml(cfg), end="")
            sys.exit(0)
        code = run(cfg)
    except UsageError as e:
        if os.environ.get("TUNETORCH_DEBUG") == "1":
            raise
        fail(str(e), 2)
    except EnvironmentFault as e:
        fail(str(e), 1)
    except OSError as e:  # the disk, the file system, permissions: the environment, not the input
        if os.environ.get("TUNETORCH_DEBUG") == "1":
            raise
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        fail(f"{type(e).__name__}: {e.strerror or e}{where}", 1)
    sys.exit(code)


def parse_argv(config_name: str, argv: list[str]) -> tuple[Path | None, list[str], bool]:
    """(the user's config dir, Hydra overrides, --cfg given). Flags Hydra would take are
    answered here: --multirun is refused (one study per command), --help prints usage."""
    user_dir, overrides, show = None, [], False
    it = iter(argv)
    for arg in it:
        if arg in ("--config-dir", "-cd") or arg.startswith("--config-dir="):
            value = arg.split("=", 1)[1] if "=" in arg else next(it, None)
            if not value:
                raise UsageError("--config-dir: missing; give --config-dir DIR (a folder of config groups)")
            user_dir = Path(value).expanduser().absolute()
            if not user_dir.is_dir():
                raise UsageError(f"--config-dir: {value} is not a folder")
        elif arg in ("--multirun", "-m"):
            raise UsageError(
                f"{arg}: not supported; run one study per command, each with its own study.dir "
                "(e.g. a shell loop over +strategy=grid, random, bayes)"
            )
        elif arg in ("--help", "-h"):
            groups = sorted(p.name for p in conf_dir().iterdir() if p.is_dir() and not p.name.startswith("_"))
            print(USAGE.format(name=config_name))
            print(f"config groups: {', '.join(groups)}; configs in {conf_dir()}")
            sys.exit(0)
        elif arg == "--cfg" or arg.startswith("--cfg="):
            if arg == "--cfg":
                nxt = next(it, None)
                if nxt is not None and nxt not in ("job", "all"):
                    overrides.append(nxt)
            show = True
        elif arg.startswith("-"):
            raise UsageError(f"{arg}: not an option; {USAGE.format(name=config_name)}")
        else:
            overrides.append(_plus_for_optional_group(arg))
    return user_dir, overrides, show


def _plus_for_optional_group(arg: str) -> str:
    m = re.fullmatch(r"(\+{0,2})(\w+)=(.*)", arg)
    if not m:
        return arg
    prefix, group, value = m.groups()
    if group == "scheduler" and value in _options("lr_scheduler") and value not in _options("scheduler"):
        raise UsageError(
            f"scheduler: {value!r} is a learning-rate schedule; choose it with lr_scheduler={value} "
            f"(scheduler= chooses early stopping: {', '.join(_options('scheduler'))})"
        )
    if group in OPTIONAL_GROUPS and not prefix:
        return "+" + arg  # not in the defaults list, so Hydra needs the plus
    return arg


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def compose(config_name: str, overrides: list[str], user_dir: Path | None = None) -> Any:
    """The composed, resolved config. Hydra's errors become one line naming the key."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = [_option_as_name(o, [conf_dir(), user_dir]) for o in overrides]
    if user_dir is not None:
        overrides = [f"hydra.searchpath=[file://{user_dir}]", *overrides]
    try:
        with initialize_config_dir(str(conf_dir()), version_base="1.3", job_name=config_name):
            cfg = hydra_compose(config_name, overrides=overrides)
    except MissingConfigException as e:
        raise UsageError(_missing_option(e)) from None
    except OverrideParseException as e:
        raise UsageError(f"override: cannot be read ({_first_line(e)}); write key=value") from None
    except HydraException as e:
        raise UsageError(_composition_error(e)) from None
    except OmegaConfBaseException as e:
        raise UsageError(_omegaconf_error(e)) from None
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as e:
        raise UsageError(f"{_unresolvable(cfg) or 'config'}: cannot be resolved ({_first_line(e)})") from None
    return cfg


def _option_as_name(override: str, conf_dirs: list[Path | None]) -> str:
    """`model=1`, `dataset=nan`, `model=null`: a group's option names a file (1.yaml), so a value
    YAML would read as a number, a boolean or null is passed to Hydra quoted, as the name it is."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if "=" not in override:
        return override
    try:
        parsed = OverridesParser.create().parse_override(override)
    except HydraException as e:
        raise UsageError(f"{override}: cannot be read ({_first_line(e)}); write key=value") from None
    group = [d / parsed.key_or_group for d in conf_dirs if d is not None]
    is_group = any(g.is_dir() for g in group)
    if is_group and isinstance(parsed.value(), (list, dict)):
        options = sorted({f.stem for g in group if g.is_dir() for f in g.glob("*.yaml")})
        value = override.partition("=")[2]
        raise UsageError(f"{parsed.key_or_group}: {value} must be one option, one of {', '.join(options)}")
    if not is_group or not isinstance(parsed.value(), (bool, int, float, type(None))):
        return override
    left, _, option = override.partition("=")
    return f"{left}='{option.strip()}'"


def _unresolvable(node: Any, prefix: str = "") -> str | None:
    """The first key whose ${...} interpolation fails."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    keys = node.keys() if OmegaConf.is_dict(node) else range(len(node)) if OmegaConf.is_list(node) else []
    for k in keys:
        path = f"{prefix}{k}"
        try:
            child = node[k]
        except OmegaConfBaseException:
            return path
        if OmegaConf.is_config(child):
            found = _unresolvable(child, path + ".")
            if found:
                return found
    return None


def _missing_option(e: Any) -> str:
    missing = str(getattr(e, "missing_cfg_file", "") or "")
    options = sorted(getattr(e, "options", None) or [])
    if "/" in missing:
        group, option = missing.rsplit("/", 1)
        allowed = ", ".join(options) if options else "none found"
        return f"{group}: {option!r} is not one of {allowed}"
    return _first_line(e)


def _composition_error(e: Exception) -> str:
    text = str(e)
    m = re.search(r"Could not override '([^']+)'", text)
    if m:
        key = m.group(1)
        return f"{key}: no such key in the config{_suggest(key)}"
    m = re.search(r"Could not append to config. An item is already at '([^']+)'", text)
    if m:
        return f"{m.group(1)}: already in the config; set it without the +"
    return _first_line(e)


def _omegaconf_error(e: Any) -> str:
    key = getattr(e, "full_key", None) or ""
    msg = _first_line(e)
    return f"{key}: {msg}" if key else msg


def _suggest(key: str) -> str:
    """' (did you mean trainer.epochs?)' for a mistyped key of tunetorch's own config."""
    from omegaconf import OmegaConf

    known = _leaf_keys(OmegaConf.to_container(OmegaConf.load(conf_dir() / "tune.yaml")))
    return did_you_mean(key, known, cutoff=0.7)


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix.rstrip(".")]
    return [k for key, v in node.items() if key != "defaults" for k in _leaf_keys(v, f"{prefix}{key}.")]


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__
