"""The command line of `python -m tunetorch.tune`, `.race` and `.evaluate`: argv -> a composed
config, and one line (never a traceback) for anything a user or the environment got wrong.

    main("tune", run)   # compose conf/tune.yaml with the command line's overrides, exit run(cfg)

Configs: tunetorch's own live in the top-level `conf/` of the source tree; an installed wheel
carries them as the package data `tunetorch/conf/` (pyproject maps one onto the other). A
user's `--config-dir DIR` (or `hydra.searchpath=[...]`) adds their own groups and options
beside ours: `--config-dir conf model=my_net`.

Group choices follow the defaults list (as_hydra): `strategy`, `scheduler` and the race's
`landscape` are entries of it, null until chosen, so `strategy=bayes` (or `+strategy=bayes`,
taken the same) chooses one and `landscape=null` none.

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

from tunetorch.errors import EnvironmentFault, UsageError, nearest

USAGE = (
    "usage: python -m tunetorch.{name} [--config-dir DIR] [--cfg] [key=value | group=option | +key=value ...]"
)


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
            overrides.append(arg)
    return user_dir, overrides, show


def compose(config_name: str, overrides: list[str], user_dir: Path | None = None) -> Any:
    """The composed, resolved config. Hydra's errors become one line naming the key."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    dirs = [d for d in (conf_dir(), user_dir) if d is not None]
    defaults = default_choices(config_name)
    overrides = as_hydra(overrides, dirs, defaults)
    try:
        cfg = _hydra_compose(config_name, overrides, user_dir)
    except MissingConfigException as e:
        raise UsageError(_missing_option(e, dirs, defaults)) from None
    except OverrideParseException as e:
        raise UsageError(f"override: cannot be read ({_first_line(e)}); write key=value") from None
    except HydraException as e:
        raise UsageError(_composition_error(e, config_name, overrides, user_dir)) from None
    except OmegaConfBaseException as e:
        raise UsageError(_omegaconf_error(e)) from None
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as e:
        raise UsageError(f"{_unresolvable(cfg) or 'config'}: cannot be resolved ({_first_line(e)})") from None
    return cfg


def _hydra_compose(config_name: str, overrides: list[str], user_dir: Path | None) -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    if user_dir is not None:
        overrides = [f"hydra.searchpath=[file://{user_dir}]", *overrides]
    with initialize_config_dir(str(conf_dir()), version_base="1.3", job_name=config_name):
        return hydra_compose(config_name, overrides=overrides)


def default_choices(config_name: str) -> dict[str, str | None]:
    """The groups of a primary config's defaults list (and of the configs it includes, as race.yaml
    includes tune.yaml) -> the option chosen when the command line chooses none (None: `null`)."""
    from omegaconf import OmegaConf

    out: dict[str, str | None] = {}
    for entry in OmegaConf.to_container(OmegaConf.load(conf_dir() / f"{config_name}.yaml")).get(
        "defaults", []
    ):
        if isinstance(entry, str):
            if entry != "_self_":
                out.update(default_choices(entry))
            continue
        for key, option in entry.items():
            out[key.split()[-1]] = option  # "optional landscape" -> landscape
    return out


def as_hydra(overrides: list[str], conf_dirs: list[Path], defaults: dict[str, str | None]) -> list[str]:
    """The command line's overrides as Hydra takes them; a group choice is read by Hydra's own
    parser and follows the defaults list, so no group is named here:

    - a group's option names a file (`model=1` is 1.yaml): a value YAML would read as a number or
      a boolean is passed quoted, as the name it is (`optimizer=1` is refused by name);
    - `group=null` for a group the defaults list fills (`optimizer=null`) leaves the group out, as
      Hydra's `~group` does: the model's own configure_optimizers() then builds its optimiser, and
      a group that cannot be left out (model, dataset, space) is refused by the config's checks;
    - `+group=NAME` for a group the defaults list has is `group=NAME`: Hydra refuses a `+` for an
      entry it already has ("Multiple values"), and `+strategy=bayes` is the spelling the project
      has always documented, beside `strategy=bayes`;
    - `group=null` for a group whose default is null (`strategy`, `scheduler`, the race's
      `landscape`) chooses none, as the default does: Hydra takes no null choice, so the group's
      choices up to it are left out (the last choice wins, as in Hydra).
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    out: list[tuple[str | None, str]] = []  # (the group chosen, or None; the override)
    for override in overrides:
        if "=" not in override:
            out.append((None, override))
            continue
        try:
            parsed = parser.parse_override(override)
        except HydraException as e:
            raise UsageError(f"{override}: cannot be read ({_first_line(e)}); write key=value") from None
        group = parsed.key_or_group
        if parsed.is_delete() or not any((d / group).is_dir() for d in conf_dirs):
            out.append((None, override))
            continue
        value = parsed.value()
        if isinstance(value, (list, dict)):
            options = _options(group, conf_dirs, defaults)
            raise UsageError(f"{group}: {override.partition('=')[2]} must be one option, one of {options}")
        chosen = group if parsed.package is None and group in defaults else None
        if value is None and chosen:
            out = [o for o in out if o[0] != group]
            if defaults[group] is not None:
                out.append((group, f"~{group}"))
            continue
        left, _, option = override.partition("=")
        if chosen and parsed.is_add():
            left = left[1:]
        if isinstance(value, (bool, int, float)):
            option = f"'{option.strip()}'"
        if chosen:  # the last choice wins, as in Hydra (and after a `group=null`, which is `~group`)
            out = [o for o in out if o[0] != group]
        out.append((chosen, f"{left}={option}"))
    return [o for _, o in out]


def _options(group: str, conf_dirs: list[Path], defaults: dict[str, str | None]) -> str:
    """A group's options for a message: its files, and null where the defaults list has it null."""
    names = sorted({f.stem for d in conf_dirs if (d / group).is_dir() for f in (d / group).glob("*.yaml")})
    return ", ".join([*names, *(["null"] if group in defaults and defaults[group] is None else [])])


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


def _missing_option(e: Any, conf_dirs: list[Path], defaults: dict[str, str | None]) -> str:
    """'scheduler: 'onecycle' is not one of asha, ..., null; did you mean lr_scheduler=onecycle?':
    an option of another group is named there (`scheduler` early stopping, `lr_scheduler` the
    learning-rate schedule, are easily taken for each other)."""
    missing = str(getattr(e, "missing_cfg_file", "") or "")
    if "/" not in missing:
        return _first_line(e)
    group, option = missing.rsplit("/", 1)
    allowed = _options(group, conf_dirs, defaults) or "none found"
    groups = {g for d in conf_dirs for g in d.iterdir() if g.is_dir()}
    elsewhere = sorted({g.name for g in groups if (g / f"{option}.yaml").is_file()} - {group})
    hint = f"; did you mean {elsewhere[0]}={option}?" if elsewhere else ""
    return f"{group}: {option!r} is not one of {allowed}{hint}"


def _composition_error(e: Exception, config_name: str, overrides: list[str], user_dir: Path | None) -> str:
    text = str(e)
    m = re.search(r"Could not override '([^']+)'", text)
    if m:
        key = m.group(1)
        return f"{key}: no such key in the config{_suggest(key, config_name, overrides, user_dir)}"
    m = re.search(r"Could not append to config. An item is already at '([^']+)'", text)
    if m:
        return f"{m.group(1)}: already in the config; set it without the +"
    return _first_line(e)


def _omegaconf_error(e: Any) -> str:
    key = getattr(e, "full_key", None) or ""
    msg = _first_line(e)
    return f"{key}: {msg}" if key else msg


def _suggest(key: str, config_name: str, overrides: list[str], user_dir: Path | None) -> str:
    """' (did you mean model.dropout?)' for a mistyped key, in whichever section: the config these
    overrides compose, less the ones that set keys (the typo among them), is walked one key at
    a time, a missing one replaced by the nearest of its siblings (the one rule, errors.nearest).
    A key under a group that is null until chosen says so (`strategy.resolution` before
    `strategy=grid`)."""
    from omegaconf import OmegaConf

    group = key.split(".")[0]
    if default_choices(config_name).get(group, "") is None and not any(
        o.lstrip("+").startswith(f"{group}=") for o in overrides
    ):
        return f" (no {group} is chosen; choose one first: {group}=NAME)"
    try:
        lefts = [o.partition("=")[0].lstrip("+") for o in overrides]
        choices = [o for o, left in zip(overrides, lefts, strict=True) if "." not in left and left != key]
        node = _hydra_compose(config_name, choices, user_dir)
    except Exception:  # noqa: BLE001 - a suggestion is a courtesy; the refusal stands without it
        return ""
    path = []
    for part in key.split("."):
        siblings = [str(k) for k in node.keys()] if OmegaConf.is_dict(node) else []
        close = part if part in siblings else nearest(part, siblings)
        if close is None:
            return ""
        path.append(close)
        node = node._get_node(close)
    return f" (did you mean {'.'.join(path)}?)" if path != key.split(".") else ""


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__
