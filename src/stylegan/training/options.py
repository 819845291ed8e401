"""Training options declared once: each is a dataclass field whose metadata says how it is typed,
shown and applied, and the command line, the Python API, `--dry-run` and the run record follow.

    seed: Optional[int] = option(None, "Random seed (default 0).", to="seed")

`RunOptions` (where and how to run) and `Overrides` (changes to a preset's `TrainingConfig`) in
`training.plan` are made of such fields. `cli/train.py` turns each into a click option (the flag
is the field name with dashes, unless `cli` says otherwise); `train(...)` takes them as keywords;
`apply_overrides` sets every override with a `to` path on the config (the few with a rule of their
own, like the augmentation group, say so in `rule`). The library never imports click: the metadata
is plain data.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union


@dataclass(frozen=True)
class Option:
    """How one field is offered to the user.

    help: the one-line help. cli: the flag name without dashes when it is not the field's name
    (None: the field name with '_' -> '-'; "" : Python only). to: the TrainingConfig fields it sets,
    dotted ("loss.r1_gamma"); empty for run options and for overrides applied by a rule. rule: where
    that rule lives, when there is one. choices / low / high / low_open: allowed values. parse: text
    -> value for the command line (e.g. a comma list). negatable: a boolean shown as --x/--no-x.
    aliases: further flag names for the same option (stylegan3's `--tick` for `--kimg-per-tick`).
    network_shape: it changes the networks' parameter shapes, so a resumed file (whose networks
    are what they are) refuses it.
    """

    help: str
    cli: Optional[str] = None
    to: tuple[str, ...] = ()
    rule: Optional[str] = None
    choices: tuple[str, ...] = ()
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    parse: Optional[Callable[[str], Any]] = None
    negatable: bool = False
    aliases: tuple[str, ...] = ()  # other flag names (without dashes), e.g. the official spelling
    network_shape: bool = False

    def flag(self, field_name: str) -> Optional[str]:
        """The command-line flag ('--nan-ticks'), None for Python-only options."""
        if self.cli == "":
            return None
        return "--" + (self.cli or field_name.replace("_", "-"))


def option(default: Any, help: str, *, to: Union[str, tuple[str, ...]] = (), **kw: Any) -> Any:
    """A dataclass field declaring an option (see `Option`); `to` may be one dotted path or several."""
    paths = (to,) if isinstance(to, str) else tuple(to)
    return dataclasses.field(default=default, metadata={"option": Option(help, to=paths, **kw)})


@dataclass(frozen=True)
class Declared:
    """One declared field: its name, value type (Optional removed), default and `Option`."""

    name: str
    type: Any
    default: Any
    option: Option
    optional: bool  # None is a value (meaning: keep / decide later)

    @property
    def flag(self) -> Optional[str]:
        return self.option.flag(self.name)


def declared(cls: type) -> tuple[Declared, ...]:
    """The declared options of a dataclass, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        opt = f.metadata.get("option")
        if opt is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with `option(...)`")
        tp, optional = hints[f.name], False
        if typing.get_origin(tp) is Union and type(None) in typing.get_args(tp):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp, optional = (args[0] if len(args) == 1 else Union[tuple(args)]), True
        out.append(Declared(f.name, tp, f.default, opt, optional))
    return tuple(out)


def replace_path(obj: Any, path: str, value: Any) -> Any:
    """`obj` with the dotted field `path` set to `value` (frozen dataclasses, rebuilt on the way up)."""
    head, _, rest = path.partition(".")
    if not rest:
        return dataclasses.replace(obj, **{head: value})
    return dataclasses.replace(obj, **{head: replace_path(getattr(obj, head), rest, value)})


def get_path(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


__all__ = ["Option", "option", "Declared", "declared", "replace_path", "get_path"]
