"""Load preset YAML files: ``extends``, overrides, validation and defaults.

The flow of :func:`load_preset_config`:

1. :func:`resolve_preset_path` turns a built-in name, a ``.yaml`` path or a
   preset directory into one YAML file.
2. The file is read; its ``extends:`` parent (recursively) is deep-merged under it.
3. Overrides (:func:`parse_overrides`) are deep-merged on top.
4. :func:`validate_config` checks every key against
   :data:`chroma_keras.config.schema.SCHEMA`, fills defaults, applies the
   cross-field rules and raises one :class:`PresetError` listing every problem.

Every value remembers where it came from (a file or an override), so each error
line names the input to fix.
"""

from __future__ import annotations

import copy
import difflib
import os
import pathlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import yaml

from chroma_keras.config.schema import (
    SCHEMA,
    Field,
    Invalid,
    ListField,
    Section,
    format_number,
    iter_fields,
)
from chroma_keras.errors import PresetError

PRESETS_DIR = pathlib.Path(__file__).resolve().parent.parent / "presets"
PRESET_FILENAME = "preset.yaml"
_YAML_SUFFIXES = (".yaml", ".yml")

KeyPath = tuple  # a key path: ("model", "vae", "encoder_filters", 2)
Origins = dict  # KeyPath -> label of the file or override that set that value


# ---------------------------------------------------------------------------
# YAML flavour
# ---------------------------------------------------------------------------

# PyYAML follows YAML 1.1, where `1e-3` (no dot) is a *string*. Read it as a float,
# as YAML 1.2 and every user does.
_EXP_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` as a float and rejects duplicate keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # unhashable: SafeConstructor reports it
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r} (first at line {seen[key].line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """SafeDumper writing lists of scalars inline and quoting strings that _Loader reads as numbers."""


for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789"))


def _represent_list(dumper, data):
    flat = all(x is None or isinstance(x, (str, int, float, bool)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", list(data), flow_style=flat)


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(tuple, _represent_list)


def _yaml_load(text: str):
    return yaml.load(text, Loader=_Loader)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _dotted(path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<top level>"


def _inline(value, limit: int = 80, nested: bool = False) -> str:
    """A value as compact YAML-like text (strings inside lists and mappings quoted)."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value) if nested else value
    elif isinstance(value, Mapping):
        text = "{" + ", ".join(f"{k}: {_inline(v, limit, True)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_inline(v, limit, True) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string", list: "list", dict: "mapping"}


def _show(value) -> str:
    """``Received:`` text: the value and its YAML type, e.g. ``'abc' (string)``."""
    if value is None:
        return "null"
    kind = next((n for t, n in _TYPE_NAMES.items() if type(value) is t), None)
    if kind is None:
        kind = "mapping" if isinstance(value, Mapping) else "list" if isinstance(value, (list, tuple)) else type(value).__name__
    text = repr(value) if isinstance(value, str) else _inline(value)
    if isinstance(value, str) and len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({kind})"


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def _raise(lines: list[str], header: str):
    if len(lines) == 1:
        error = PresetError(lines[0])
    else:
        error = PresetError("\n".join([f"{header} ({len(lines)} errors):", *(f"  - {line}" for line in lines)]))
    error.errors = list(lines)
    raise error


# ---------------------------------------------------------------------------
# Deep merge with provenance
# ---------------------------------------------------------------------------


def _drop_under(origins: Origins, path: KeyPath) -> None:
    for key in [k for k in origins if k[: len(path)] == path]:
        del origins[key]


def _record(origins: Origins, value, path: KeyPath, label: str) -> None:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _record(origins, item, path + (key,), label)
    else:
        origins[path] = label


def _merge(base: Mapping, top: Mapping, origins: Origins | None = None, label: str = "", prefix: KeyPath = ()) -> dict:
    """``top`` deep-merged over ``base``: mappings merge, lists and scalars replace."""
    out = dict(base)
    for key, value in top.items():
        path = prefix + (key,)
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value, origins, label, path)
            continue
        out[key] = copy.deepcopy(value)
        if origins is not None:
            _drop_under(origins, path)
            _record(origins, value, path, label)
    return out


def _source_of(path: KeyPath, origins: Origins | None, default: str) -> str:
    if origins:
        for i in range(len(path), 0, -1):
            if path[:i] in origins:
                return origins[path[:i]]
    return default


# ---------------------------------------------------------------------------
# Finding preset files
# ---------------------------------------------------------------------------


def _builtin_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _looks_like_path(text: str) -> bool:
    seps = [s for s in ("/", os.sep, os.altsep) if s]
    return any(s in text for s in seps) or text.lower().endswith(_YAML_SUFFIXES) or text.startswith(("~", "."))


def _file_of(path: pathlib.Path, asked: str) -> pathlib.Path:
    """The YAML file a user path stands for (the path itself, or ``<dir>/preset.yaml``)."""
    if path.is_dir():
        candidate = path / PRESET_FILENAME
        if candidate.is_file():
            return candidate
        raise PresetError(
            f"{asked}: directory has no {PRESET_FILENAME}. A preset directory (as written by "
            f"save_to_preset) holds {PRESET_FILENAME}; or pass a .yaml file or a built-in name "
            f"({', '.join(_builtin_names())})."
        )
    if path.is_file():
        if path.suffix.lower() not in _YAML_SUFFIXES:
            raise PresetError(f"{asked}: not a preset file; expected a .yaml or .yml file or a preset directory.")
        return path
    hint = _suggest(path.stem, _builtin_names())
    if hint:
        hint += " (a built-in preset: pass its name without a path or suffix)"
    raise PresetError(f"{asked}: no such preset file or directory.{hint}")


def resolve_preset_path(name_or_path) -> pathlib.Path:
    """The YAML file behind a built-in name, a ``.yaml``/``.yml`` path or a preset directory.

    A bare name (no path separator, no ``.yaml`` suffix) is looked up among the
    built-in presets first, then as a path relative to the working directory;
    write ``./name`` to force a local directory that shadows a built-in name.

    Raises:
        PresetError: unknown name (listing the built-ins, with a suggestion),
            missing file, directory without ``preset.yaml``, wrong suffix.
    """
    if isinstance(name_or_path, os.PathLike):
        text, is_path = os.fspath(name_or_path), True
    elif isinstance(name_or_path, str):
        text = name_or_path
        is_path = _looks_like_path(text)
    else:
        raise PresetError(
            f"Expected a preset name or path (str or pathlib.Path). Received: {_show(name_or_path)}. "
            f"Built-in presets: {', '.join(_builtin_names())}."
        )
    if not str(text).strip():
        raise PresetError(f"Empty preset name. Built-in presets: {', '.join(_builtin_names())}.")
    if not is_path:
        builtin = PRESETS_DIR / f"{text}.yaml"
        if builtin.is_file():
            return builtin
        if pathlib.Path(text).exists():
            return _file_of(pathlib.Path(text), text)
        names = _builtin_names()
        raise PresetError(
            f"Unknown preset {text!r}.{_suggest(text, names)} Built-in presets: {', '.join(names) or '(none)'}. "
            f"To load your own preset pass a path to a .yaml/.yml file or to a directory holding {PRESET_FILENAME}."
        )
    return _file_of(pathlib.Path(text).expanduser(), text)


def list_builtin_presets() -> list[tuple[str, str]]:
    """``(name, description)`` of every built-in preset, sorted by name."""
    out = []
    for name in _builtin_names():
        data, _ = _read_with_extends(PRESETS_DIR / f"{name}.yaml", ())
        description = data.get("description", "")
        out.append((name, description if isinstance(description, str) else str(description)))
    return out


# ---------------------------------------------------------------------------
# Reading files and `extends`
# ---------------------------------------------------------------------------


def _read_yaml(path: pathlib.Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PresetError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start}).") from None
    except OSError as exc:
        raise PresetError(f"{path}: cannot read preset file: {exc.strerror or exc}.") from None
    try:
        data = _yaml_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        if mark is None:
            raise PresetError(f"{path}: invalid YAML: {problem}.") from None
        line, column = mark.line + 1, mark.column + 1
        lines = text.splitlines()
        snippet = ""
        if 0 < line <= len(lines):
            snippet = f"\n    {lines[line - 1]}\n    {' ' * (column - 1)}^"
        context = ""
        if exc.context and exc.problem:
            context = f" ({exc.context}"
            start = exc.context_mark
            if start is not None and (start.line, start.column) != (mark.line, mark.column):
                context += f" started at line {start.line + 1}, column {start.column + 1}"
            context += ")"
        raise PresetError(
            f"{path}:{line}:{column}: invalid YAML at line {line}, column {column}: {problem}{context}.{snippet}"
        ) from None
    except yaml.YAMLError as exc:
        raise PresetError(f"{path}: invalid YAML: {exc}.") from None
    if data is None:
        raise PresetError(f"{path}: preset file is empty; expected a mapping with at least `name: ...`.")
    if not isinstance(data, dict):
        raise PresetError(
            f"{path}: the top level of a preset must be a mapping of keys (name, model, training, ...) "
            f"to values. Received: {_show(data)}."
        )
    return data


def _resolve_extends(ref, child: pathlib.Path) -> pathlib.Path:
    if not isinstance(ref, str) or not ref.strip():
        raise PresetError(
            f"{child}: extends: expected a built-in preset name or a path relative to this file. "
            f"Received: {_show(ref)}."
        )
    if not _looks_like_path(ref) and (PRESETS_DIR / f"{ref}.yaml").is_file():
        return PRESETS_DIR / f"{ref}.yaml"
    candidate = pathlib.Path(os.path.normpath(child.parent / pathlib.Path(ref).expanduser()))
    if candidate.exists():
        try:
            return _file_of(candidate, str(candidate))
        except PresetError as exc:
            raise PresetError(f"{child}: extends: {ref!r}: {exc}") from None
    names = _builtin_names()
    raise PresetError(
        f"{child}: extends: parent preset {ref!r} not found: it is neither a built-in preset "
        f"({', '.join(names) or 'none'}) nor a file at {candidate}.{_suggest(ref, names)}"
    )


def _read_with_extends(path: pathlib.Path, chain: tuple[pathlib.Path, ...]) -> tuple[dict, Origins]:
    """The file's mapping with its ``extends`` parents merged under it, and value origins."""
    resolved = path.resolve()
    if resolved in [p.resolve() for p in chain]:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise PresetError(f"extends cycle: {cycle}. Remove one of these `extends:` keys.")
    data = _read_yaml(path)
    label = str(path)
    origins: Origins = {}
    if "extends" not in data or data["extends"] is None:
        data.pop("extends", None)
        _record(origins, data, (), label)
        return data, origins
    data = dict(data)
    ref = data.pop("extends")
    parent_path = _resolve_extends(ref, path)
    parent, origins = _read_with_extends(parent_path, (*chain, path))
    return _merge(parent, data, origins, label), origins


# ---------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------

_SCHEMA_PATHS = [path for path, _ in iter_fields(SCHEMA)]


def _resolve_key(key, label: str) -> tuple:
    """An override key (dotted, ``__``-separated, section name or bare leaf) -> a full key path."""
    if not isinstance(key, str):
        raise PresetError(f"{label}: override keys must be strings. Received: {_show(key)}.")
    text = key.strip()
    parts = tuple(text.replace("__", ".").split("."))
    if not text or any(not p for p in parts):
        raise PresetError(
            f"{label}: malformed key {key!r}; expected dotted names like 'model.vae.latent_dim' "
            f"or 'model__vae__latent_dim'."
        )
    if parts[0] == "extends":
        raise PresetError(f"{label}: 'extends' cannot be overridden; load the parent preset directly instead.")
    if parts[0] in SCHEMA.fields:
        return parts
    matches = [p for p in _SCHEMA_PATHS if p[-len(parts) :] == parts]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise PresetError(
            f"{label}: {text!r} is ambiguous; it matches "
            f"{', '.join(_dotted(m) for m in matches)}. Use the full dotted path."
        )
    leaves = {path[-1] for path in _SCHEMA_PATHS}
    close = difflib.get_close_matches(parts[-1], sorted(leaves), n=1)
    hint = ""
    if close:
        full = [_dotted(p) for p in _SCHEMA_PATHS if p[-1] == close[0]]
        hint = f" Did you mean {close[0]!r} ({', '.join(full)})?"
    raise PresetError(
        f"{label}: unknown key {text!r}: no preset key is named so.{hint} "
        f"Top-level keys: {', '.join(SCHEMA.fields)}."
    )


def _nest(path: tuple, value) -> dict:
    for key in reversed(path):
        value = {key: value}
    return value


def _override_items(overrides) -> list[tuple[tuple, Any, str]]:
    """``(key path, value, label)`` for each override, in order; one PresetError for all bad ones."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        overrides = [overrides]
    items, errors = [], []
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            label = f"override '{key}={_inline(value)}'"
            try:
                items.append((_resolve_key(key, label), value, label))
            except PresetError as exc:
                errors.append(str(exc))
    elif isinstance(overrides, (list, tuple)):
        for entry in overrides:
            if not isinstance(entry, str):
                errors.append(
                    f"override {_inline(entry)!r}: expected a string of the form 'dotted.key=value' "
                    f"(e.g. 'model.vae.latent_dim=32'). Received: {_show(entry)}."
                )
                continue
            label = f"override {entry!r}"
            key, sep, text = entry.partition("=")
            if not sep or not key.strip():
                errors.append(
                    f"{label}: expected the form 'dotted.key=value', e.g. 'model.vae.latent_dim=32' "
                    f"or 'latent_dim=32'. Received: {entry!r}."
                )
                continue
            try:
                value = _yaml_load(text)
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                errors.append(f"{label}: the value {text!r} is not valid YAML ({problem}); quote it or fix it.")
                continue
            try:
                items.append((_resolve_key(key, label), value, label))
            except PresetError as exc:
                errors.append(str(exc))
    else:
        raise PresetError(
            "Overrides must be a list of 'dotted.key=value' strings or a dict of keys to values. "
            f"Received: {_show(overrides)}."
        )
    if errors:
        _raise(errors, "Invalid overrides")
    return items


def parse_overrides(overrides) -> dict:
    """Overrides in any accepted form -> one nested dict (later overrides win).

    Accepted forms:
        * a list/tuple of ``"dotted.key=value"`` strings; the value is parsed as
          YAML (``128``, ``0.5``, ``true``, ``[1, 2]``, ``null``, ``adamw``);
        * a dict whose keys are dotted (``"model.vae.latent_dim"``), use ``__``
          (``"model__vae__latent_dim"``), are a section (``{"model": {...}}``) or a
          bare leaf (``"latent_dim"``) or the tail of a path (``"vae.latent_dim"``),
          resolved against the schema when unique.
        * ``None`` (no overrides) or a single string.

    Raises:
        PresetError: malformed strings, unknown or ambiguous keys (all at once).
    """
    out: dict = {}
    for path, value, _ in _override_items(overrides):
        out = _merge(out, _nest(path, value))
    return out


def apply_overrides(config: Mapping, overrides, source: str = "overrides") -> dict:
    """``config`` with ``overrides`` (any form :func:`parse_overrides` takes) deep-merged on top.

    The result is not validated; :func:`load_preset_config` validates after merging.
    ``source`` names the caller in the header of a multi-error message.
    """
    if not isinstance(config, Mapping):
        raise PresetError(f"{source}: expected a config mapping to apply overrides to. Received: {_show(config)}.")
    try:
        items = _override_items(overrides)
    except PresetError as exc:
        if len(getattr(exc, "errors", ())) > 1:
            _raise(exc.errors, f"Invalid overrides for {source}")
        raise
    out = copy.deepcopy(dict(config))
    for path, value, _ in items:
        out = _merge(out, _nest(path, value))
    return out


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


@dataclass
class _Issue:
    paths: tuple  # key paths the issue is about; the first decides the source
    text: str


class _Validator:
    def __init__(self):
        self.issues: list[_Issue] = []
        self.bad: list[tuple] = []

    def report(self, path, text, *more_paths):
        self.issues.append(_Issue((tuple(path), *map(tuple, more_paths)), text))
        self.bad.append(tuple(path))

    def invalid(self, field, path, value, reason, hint=""):
        self.report(
            path,
            f"{_dotted(path)}: {reason}. Allowed: {field.describe()}. Received: {_show(value)}.{hint} "
            f"({field.doc})",
        )

    def section(self, section: Section, raw, path: tuple):
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            self.invalid(section, path, raw, "wrong type")
            return None
        for key in raw:
            if not isinstance(key, str):
                self.report(
                    path + (key,),
                    f"{_dotted(path + (str(key),))}: keys must be strings. Received: {_show(key)}. "
                    f"(YAML reads unquoted yes/no/on/off/true/false and numbers as non-strings; quote the key.)",
                )
            elif key not in section.fields:
                where = _dotted(path) if path else "the top level"
                self.report(
                    path + (key,),
                    f"{_dotted(path + (key,))}: unknown key.{_suggest(key, section.fields)} "
                    f"Allowed keys in {where}: {', '.join(section.fields)}. Received: {_show(raw[key])}.",
                )
        out = {}
        for name, field in section.fields.items():
            sub = path + (name,)
            if isinstance(field, Section):
                if name in raw and not (field.optional and raw[name] is None):
                    value = self.section(field, raw[name], sub)
                    if value is not None:
                        out[name] = value
                elif not field.optional:
                    out[name] = self.section(field, {}, sub)
                continue
            if name in raw:
                value = self.value(field, raw[name], sub)
            elif field.required:
                self.report(
                    sub, f"{_dotted(sub)}: required key is missing. Allowed: {field.describe()}. ({field.doc})"
                )
                continue
            else:
                value = field.default_value()
            if field.keep and value is not _BAD:
                out[name] = value
        return out

    def value(self, field: Field, value, path: tuple):
        if value is None:
            if field.nullable:
                return None
            self.invalid(field, path, value, "null is not allowed")
            return _BAD
        try:
            checked = field.check(value)
        except Invalid as exc:
            self.invalid(field, path, value, exc.reason, exc.hint)
            return _BAD
        if isinstance(field, ListField):
            problem = field.length_problem(checked)
            if problem:
                self.invalid(field, path, value, problem)
            items = [self.value(field.item, item, path + (i,)) for i, item in enumerate(checked)]
            return _BAD if problem or any(item is _BAD for item in items) else items
        return checked


_BAD = object()


def _get(config, path: tuple, default=None):
    node = config
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return node


def _fill_conditional_sections(section: Section, out: dict, root: dict) -> None:
    """Fill optional sections whose ``include_when`` holds, keeping schema key order."""
    added = False
    for name, field in section.fields.items():
        if not isinstance(field, Section):
            continue
        if name not in out and field.optional and field.include_when:
            when_path, when_value = field.include_when
            if _get(root, tuple(when_path.split(".")), _BAD) == when_value:
                out[name] = field.default_value()
                added = True
        if isinstance(out.get(name), dict):
            _fill_conditional_sections(field, out[name], root)
    if added:
        ordered = {k: out[k] for k in section.fields if k in out}
        out.clear()
        out.update(ordered)


# --- Cross-field rules -------------------------------------------------------
#
# A rule reads the values at ``paths`` (in the validated config, defaults filled)
# and returns a list of problems: ``(message, paths_it_is_about)``. It is skipped
# when one of its paths is absent or already has an error. Add rules here.

_PIANO_ROLL = "preprocessing.midi.piano_roll"


@dataclass(frozen=True)
class CrossFieldRule:
    paths: tuple[str, ...]
    check: Callable[..., list[tuple[str, tuple[str, ...]]]]


def _pitch_range(lowest, num):
    if lowest + num <= 128:
        return []
    return [
        (
            f"{_PIANO_ROLL}.lowest_pitch + {_PIANO_ROLL}.num_pitches must be <= 128 (the highest MIDI pitch is 127). "
            f"Received: lowest_pitch={lowest} + num_pitches={num} = {lowest + num}. "
            f"With lowest_pitch={lowest}, num_pitches can be at most {128 - lowest}.",
            (f"{_PIANO_ROLL}.lowest_pitch", f"{_PIANO_ROLL}.num_pitches"),
        )
    ]


def _split_fractions(validation, test):
    if validation + test < 1:
        return []
    return [
        (
            "training.validation_fraction + training.test_fraction must be < 1 (the rest is the training "
            f"set). Received: validation_fraction={format_number(validation)} + "
            f"test_fraction={format_number(test)} = {format_number(round(validation + test, 12))}.",
            ("training.validation_fraction", "training.test_fraction"),
        )
    ]


def _vae_roll_divisible(kind, filters, num_pitches, num_frames):
    if kind != "vae":
        return []
    factor = 2 ** len(filters)
    problems = []
    for key, value in (("num_pitches", num_pitches), ("num_frames", num_frames)):
        if value % factor == 0:
            continue
        lower = value // factor * factor
        options = " or ".join(str(v) for v in (lower, lower + factor) if v > 0)
        problems.append(
            (
                f"{_PIANO_ROLL}.{key} must be divisible by {factor} = 2 ** len(model.vae.encoder_filters) "
                f"when model.generative.type is 'vae' (each of the {len(filters)} encoder blocks halves the "
                f"piano roll). Received: {key}={value}, encoder_filters={_inline(filters)}. "
                f"Use a multiple of {factor} such as {options}, or fewer encoder_filters.",
                (f"{_PIANO_ROLL}.{key}", "model.vae.encoder_filters"),
            )
        )
    return problems


def _vae_needs_pianoroll(kind, tokenization):
    if kind != "vae" or tokenization == "pianoroll":
        return []
    return [
        (
            f"preprocessing.midi.tokenization must be 'pianoroll' when model.generative.type is 'vae' "
            f"(the VAE reads piano rolls). Received: tokenization={tokenization!r}.",
            ("preprocessing.midi.tokenization", "model.generative.type"),
        )
    ]


def _gpt_text_needs_tokens(text_max_bytes, text_tokens):
    if not text_max_bytes or text_tokens:
        return []
    return [
        (
            f"model.gpt.text_max_bytes={text_max_bytes} puts a text section in every row, which needs the byte tokens: "
            "set model.gpt.text_tokens to true, or text_max_bytes to 0.",
            ("model.gpt.text_max_bytes", "model.gpt.text_tokens"),
        )
    ]


CROSS_FIELD_RULES: list[CrossFieldRule] = [
    CrossFieldRule(("model.gpt.text_max_bytes", "model.gpt.text_tokens"), _gpt_text_needs_tokens),
    CrossFieldRule((f"{_PIANO_ROLL}.lowest_pitch", f"{_PIANO_ROLL}.num_pitches"), _pitch_range),
    CrossFieldRule(("training.validation_fraction", "training.test_fraction"), _split_fractions),
    CrossFieldRule(
        (
            "model.generative.type",
            "model.vae.encoder_filters",
            f"{_PIANO_ROLL}.num_pitches",
            f"{_PIANO_ROLL}.num_frames",
        ),
        _vae_roll_divisible,
    ),
    CrossFieldRule(("model.generative.type", "preprocessing.midi.tokenization"), _vae_needs_pianoroll),
]


def _overlaps(a: tuple, b: tuple) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _apply_rules(config: dict, validator: _Validator) -> None:
    for rule in CROSS_FIELD_RULES:
        paths = [tuple(p.split(".")) for p in rule.paths]
        if any(_overlaps(p, bad) for p in paths for bad in validator.bad):
            continue
        values = [_get(config, p, _BAD) for p in paths]
        if any(v is _BAD for v in values):
            continue
        for message, about in rule.check(*values):
            validator.issues.append(_Issue(tuple(tuple(p.split(".")) for p in about), message))


def validate_config(config: Mapping, source: str = "config", *, origins: Origins | None = None) -> dict:
    """A new config with defaults filled, checked against the schema and the cross-field rules.

    Args:
        config: the preset mapping (``extends`` is accepted but dropped: resolve it
            with :func:`load_preset_config`).
        source: what to name in error messages (a file path, ``"overrides"``, ...).
        origins: internal: key path -> the file/override that set it, to name the
            right source per error.

    Raises:
        PresetError: listing every problem, one per line.
    """
    if not isinstance(config, Mapping):
        raise PresetError(
            f"{source}: the top level of a preset must be a mapping of keys (name, model, training, ...) "
            f"to values. Received: {_show(config)}."
        )
    validator = _Validator()
    out = validator.section(SCHEMA, config, ())
    _fill_conditional_sections(SCHEMA, out, out)
    _apply_rules(out, validator)
    if validator.issues:
        lines = []
        for issue in validator.issues:
            sources = []
            for path in issue.paths:
                src = _source_of(path, origins, source)
                if src not in sources:
                    sources.append(src)
            lines.append(f"{' and '.join(sources)}: {issue.text}")
        _raise(lines, f"Invalid preset {source}")
    return out


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------


def load_preset_config(name_or_path, overrides=None) -> dict:
    """Read a preset, resolve ``extends``, apply ``overrides``, validate and fill defaults.

    Args:
        name_or_path: a built-in name (``"cvae_chromatic"``), a ``.yaml``/``.yml``
            file, or a directory holding ``preset.yaml``.
        overrides: anything :func:`parse_overrides` accepts, e.g.
            ``["model.vae.latent_dim=16"]`` or ``{"latent_dim": 16}``.

    Returns:
        Plain nested dicts and lists, every key of the schema filled, no ``extends``.

    Raises:
        PresetError: naming the file or override and the dotted key of each problem.
    """
    path = resolve_preset_path(name_or_path)
    config, origins = _read_with_extends(path, ())
    for key_path, value, label in _override_items(overrides):
        config = _merge(config, _nest(key_path, value), origins, label)
    return validate_config(config, str(path), origins=origins)


def plain_copy(value):
    """A copy of nested mappings and sequences as plain dicts and lists.

    Keras wraps containers assigned to a layer's attributes (a model's
    ``preset_config``) in tracking objects that YAML cannot write and that refer
    back to the layer.
    """
    if isinstance(value, Mapping) or hasattr(value, "items"):
        return {key: plain_copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_copy(item) for item in value]
    return value


def dump_config(config: Mapping) -> str:
    """``config`` as readable YAML (key order kept, lists of scalars inline) that loads back equal."""
    config = plain_copy(config)
    plain = yaml.dump(config, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)
    # A blank line before each top-level section, when that provably changes nothing.
    sections = {f"{k}:" for k, v in config.items() if isinstance(k, str) and isinstance(v, Mapping) and v}
    lines = plain.splitlines()
    pretty = "\n".join(("\n" + line) if line in sections and i else line for i, line in enumerate(lines)) + "\n"
    return pretty if _yaml_load(pretty) == _yaml_load(plain) else plain


_RAISE = object()


def get_path(config: Mapping, path, default=_RAISE):
    """The value at a dotted ``path`` (``"model.vae.latent_dim"``; list indices as numbers).

    Returns ``default`` when the path is absent and a default is given, else raises
    :class:`PresetError` naming the missing key and its siblings.
    """
    parts = path.split(".") if isinstance(path, str) else list(path)
    node = config
    for i, part in enumerate(parts):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
            continue
        if isinstance(node, (list, tuple)) and str(part).lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
            continue
        if default is not _RAISE:
            return default
        where = ".".join(map(str, parts[:i])) or "the top level"
        if isinstance(node, Mapping):
            detail = f"{where} has no key {part!r}.{_suggest(part, node)} Keys there: {', '.join(map(str, node))}."
        else:
            detail = f"{where} is {_show(node)}, not a mapping."
        raise PresetError(f"Config has no key {'.'.join(map(str, parts))!r}: {detail}")
    return node
