"""The preset a command runs: ``--preset``, then each ``--set FIELD=VALUE`` applied.

Overrides are read here, before any work, and refused in one line naming the fields
there are, so that a misspelled field never runs a study with the preset unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import typing

from steerlib.errors import ConfigError


def preset_of(args):
    """The preset of ``--preset``, with each ``--set FIELD=VALUE`` applied
    (validated)."""
    from steerlib.presets import presets

    preset = presets.get(args.preset)
    for item in args.set or []:
        preset = override(preset, item)
    return preset


def override(config, item: str):
    """``config`` (a dataclass) with one dotted field set from
    ``"stage1.batch_size=4"``.

    The value is read as JSON (numbers, true/false, null, quoted strings, objects), else
    taken as a string; the config's own checks then refuse values it does not allow. A
    sub-config (``stage1``, ``stage1.validation``) is set field by field, or whole from
    a JSON object (how a sub-config that is off, None, is turned on); a mapping
    (``steps``, ``sources``) is set whole. Anything else names the fields there are.
    """
    path, sep, raw = item.partition("=")
    if not sep or not path:
        raise ConfigError(
            f"--set {item!r}: expected FIELD=VALUE, e.g. stage1.batch_size=4"
        )
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw

    def refuse(what: str):
        return ConfigError(f"--set {item!r}: {what}")

    def build(cls, where: str, data):
        """A ``cls`` config from a JSON object (nested sub-configs from nested
        objects)."""
        if not isinstance(data, dict):
            raise refuse(
                f"{where} is a {cls.__name__}, not a value; set one of its fields ("
                f"{', '.join(f'{where}.{n}' for n in _fields(cls))}) or all of it as a "
                "JSON object"
            )
        unknown = sorted(set(data) - set(_fields(cls)))
        if unknown:
            raise refuse(
                f"{cls.__name__} has no field {unknown[0]!r}; its fields: "
                f"{', '.join(_fields(cls))}"
            )
        return cls(
            **{
                k: v
                if v is None or _sub_config(cls, k)[0] is None
                else build(_sub_config(cls, k)[0], f"{where}.{k}", v)
                for k, v in data.items()
            }
        )

    def put(obj, parts: list[str], where: str):
        names = _fields(type(obj))
        if parts[0] not in names:
            raise refuse(
                f"{type(obj).__name__} has no field {parts[0]!r}; its fields: "
                f"{', '.join(names)}"
            )
        here = f"{where}.{parts[0]}" if where else parts[0]
        current, (kind, optional) = (
            getattr(obj, parts[0]),
            _sub_config(type(obj), parts[0]),
        )
        if len(parts) == 1:
            if value is None and kind is not None and not optional:
                raise refuse(
                    f"{here} is a {kind.__name__} and cannot be null; set one of its "
                    "fields"
                )
            new = value if kind is None or value is None else build(kind, here, value)
        elif isinstance(current, dict):
            raise refuse(
                f"{here} is a mapping, not a config: set it whole as a JSON object, "
                "e.g. "
                f"{here}='{{\"{parts[1]}\": ...}}' (now {json.dumps(current)})"
            )
        elif current is None and kind is not None:
            raise refuse(
                f"{here} is off (None) in this preset, so it has no fields to set; "
                "turn it on with "
                f"{here}='{{...}}', a JSON object of {kind.__name__}'s fields: "
                f"{', '.join(_fields(kind))}"
            )
        elif kind is None:
            raise refuse(
                f"{here} is a value ({current!r}), it has no field {parts[1]!r}"
            )
        else:
            new = put(current, parts[1:], here)
        return dataclasses.replace(obj, **{parts[0]: new})

    return put(config, path.split("."), "")


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _sub_config(cls, name: str) -> tuple[type | None, bool]:
    """The config dataclass field ``name`` of ``cls`` holds (``X`` or ``X | None``;
    else None), and whether the field may be None."""
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    return next((t for t in (hint, *args) if dataclasses.is_dataclass(t)), None), type(
        None
    ) in args
