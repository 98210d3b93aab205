"""The official Bot API method and type list, and checking call parameters against it.

`bot-api-10.1.json` (see `LICENSE-bot-api-spec`) lists every method and type with its
fields. A call's parameters arrive either as text (query string, form fields, multipart
fields: the way python-telegram-bot sends them, with every non-string value JSON-encoded)
or as a JSON object. `ApiSpec.parse_params` turns them into Python values of the declared
types and rejects missing, unknown and mistyped parameters the way the Bot API does, with
a `400 Bad Request` `ApiError`.

Leniency mirrors Telegram's server: a numeric string is a fine Integer, a number is a fine
String, and an object or array may itself be passed as JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import bad_request

SPEC_FILE = Path(__file__).with_name("bot-api-10.1.json")

_INT_RE = re.compile(r"-?\d+")
_FLOAT_RE = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_DISCRIMINATOR_RE = re.compile(r"(?:must be|always)\s+[“\"]?([A-Za-z_]+)")
_ARRAY_PREFIX = "Array of "

#: Telegram's wording when a required parameter is missing (default: `{name} is empty`).
_MISSING_MESSAGES = {
    "chat_id": "chat_id is empty",
    "text": "message text is empty",
    "message_id": "message identifier is not specified",
    "callback_query_id": "QUERY_ID_INVALID",
    "document": "there is no document in the request",
    "photo": "there is no photo in the request",
    "file_id": "file_id not specified",
    "commands": "commands is empty",
    "action": "action is empty",
    "url": "url is empty",
}

_OBJECT_PARSE_MESSAGES = {
    "reply_markup": "can't parse reply keyboard markup JSON object",
    "entities": "can't parse entities JSON object",
    "caption_entities": "can't parse entities JSON object",
}


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart request."""

    data: bytes
    filename: str | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    types: tuple[str, ...]
    required: bool


@dataclass(frozen=True, slots=True)
class TypeSpec:
    name: str
    fields: Mapping[str, FieldSpec]
    subtypes: tuple[str, ...]
    #: (field, value) that tells this subtype apart from its siblings, e.g. ("type", "chat").
    discriminator: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class MethodSpec:
    name: str
    fields: Mapping[str, FieldSpec]
    returns: tuple[str, ...]

    @property
    def returns_boolean(self) -> bool:
        return self.returns == ("Boolean",)


class _Mismatch(Exception):
    """A value does not fit its declared type; `path` locates it inside the parameter."""

    def __init__(self, path: str, message: str, depth: int) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.depth = depth


def _fields(raw: Sequence[Mapping[str, Any]] | None) -> dict[str, FieldSpec]:
    return {
        f["name"]: FieldSpec(f["name"], tuple(f["types"]), bool(f["required"])) for f in raw or ()
    }


def _discriminator(fields: Mapping[str, FieldSpec], raw: Sequence[Mapping[str, Any]]) -> Any:
    for f in raw:
        if f["name"] in ("type", "source", "status") and f["required"]:
            match = _DISCRIMINATOR_RE.search(f.get("description", ""))
            if match:
                return (f["name"], match.group(1))
    return None


class ApiSpec:
    """Methods and types of one Bot API version, with parameter parsing."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.version: str = data.get("version", "")
        self.methods: dict[str, MethodSpec] = {}
        for name, m in data["methods"].items():
            self.methods[name.lower()] = MethodSpec(
                name, _fields(m.get("fields")), tuple(m.get("returns", ()))
            )
        self.types: dict[str, TypeSpec] = {}
        for name, t in data["types"].items():
            fields = _fields(t.get("fields"))
            self.types[name] = TypeSpec(
                name,
                fields,
                tuple(t.get("subtypes", ())),
                _discriminator(fields, t.get("fields") or ()),
            )

    def method(self, name: str) -> MethodSpec | None:
        """The method called `name`, compared case-insensitively like Telegram does."""
        return self.methods.get(name.lower())

    # -- parameters ---------------------------------------------------------------------

    def parse_params(
        self,
        method: MethodSpec,
        text_params: Mapping[str, str],
        json_params: Mapping[str, Any],
        files: Mapping[str, UploadedFile],
    ) -> dict[str, Any]:
        """Checked and converted parameters of one call, or `ApiError` 400.

        `text_params` are string values (query, form, multipart fields); `json_params`
        come from a JSON body; `files` are multipart file parts, addressed either by the
        parameter's own name or through an `attach://<name>` value.
        """
        result: dict[str, Any] = {}
        raw_items: list[tuple[str, Any, bool]] = [(k, v, True) for k, v in text_params.items()]
        raw_items += [(k, v, False) for k, v in json_params.items()]
        for name, raw, is_text in raw_items:
            field = method.fields.get(name)
            if field is None:
                raise bad_request(f'unknown parameter "{name}"')
            if raw is None:
                continue
            result[name] = self._parse_param(field, raw, is_text, files)
        for name, upload in files.items():
            field = method.fields.get(name)
            if field is not None and name not in result and "InputFile" in field.types:
                result[name] = upload
        for field in method.fields.values():
            if field.required and field.name not in result:
                raise bad_request(_MISSING_MESSAGES.get(field.name, f"{field.name} is empty"))
        return result

    def _parse_param(
        self, field: FieldSpec, raw: Any, is_text: bool, files: Mapping[str, UploadedFile]
    ) -> Any:
        types = field.types
        if "InputFile" in types and isinstance(raw, str) and raw.startswith("attach://"):
            upload = files.get(raw[len("attach://") :])
            if upload is None:
                raise bad_request(f'file "{raw}" not found in the request')
            return upload
        value = raw
        if is_text and isinstance(raw, str) and not _is_plain_string(types):
            value = _json_or(raw, raw)
        try:
            checked = self.check(value, types, field.name)
        except _Mismatch as exc:
            if field.name in _OBJECT_PARSE_MESSAGES and exc.depth == 0:
                raise bad_request(_OBJECT_PARSE_MESSAGES[field.name]) from None
            raise bad_request(exc.message) from None
        if files and isinstance(checked, dict | list):
            checked = _attach(checked, files)
        return checked

    # -- values ---------------------------------------------------------------------------

    def check(self, value: Any, types: Sequence[str], path: str, depth: int = 0) -> Any:
        """`value` converted to the first of `types` it fits; raises `_Mismatch` otherwise."""
        if len(types) == 1:
            return self._check_one(value, types[0], path, depth)
        candidates = list(types)
        if isinstance(value, dict) and len(candidates) > 1:
            candidates.sort(key=lambda t: -self._fit_score(value, t))
        failures: list[_Mismatch] = []
        for t in candidates:
            try:
                return self._check_one(value, t, path, depth)
            except _Mismatch as exc:
                failures.append(exc)
        deepest = max(failures, key=lambda f: f.depth)
        if deepest.depth > depth:
            raise deepest
        raise _Mismatch(path, f'field "{path}" must be of type {" or ".join(types)}', depth)

    def _fit_score(self, value: Mapping[str, Any], type_name: str) -> int:
        spec = self.types.get(type_name)
        if spec is None:
            return -1000
        if spec.discriminator is not None:
            key, expected = spec.discriminator
            if value.get(key) == expected:
                return 1000
        score = sum(1 for k in value if k in spec.fields)
        score -= 10 * sum(1 for f in spec.fields.values() if f.required and f.name not in value)
        return score

    def _check_one(self, value: Any, type_name: str, path: str, depth: int) -> Any:
        def mismatch() -> _Mismatch:
            return _Mismatch(path, f'field "{path}" must be of type {type_name}', depth)

        if type_name == "String":
            if isinstance(value, str):
                return value
            if isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)
            raise mismatch()
        if type_name == "Integer":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
                return int(value)
            raise mismatch()
        if type_name == "Float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
                return float(value)
            raise mismatch()
        if type_name == "Boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise mismatch()
        if type_name == "InputFile":
            if isinstance(value, UploadedFile):
                return value
            raise mismatch()
        if type_name.startswith(_ARRAY_PREFIX):
            inner = type_name[len(_ARRAY_PREFIX) :]
            if isinstance(value, str):
                value = _json_or(value, value)
            if not isinstance(value, list):
                raise mismatch()
            return [
                self.check(item, (inner,), f"{path}[{i}]", depth + 1)
                for i, item in enumerate(value)
            ]
        spec = self.types.get(type_name)
        if spec is None:
            raise _Mismatch(path, f'field "{path}" has unknown type {type_name}', depth)
        if spec.subtypes:
            return self._check_union(value, spec, path, depth)
        if isinstance(value, str):
            value = _json_or(value, value)
        if not isinstance(value, dict):
            raise mismatch()
        if not spec.fields:  # placeholder types such as CallbackGame
            return value
        result: dict[str, Any] = {}
        for key, item in value.items():
            field = spec.fields.get(key)
            if field is None:
                raise _Mismatch(
                    path, f'unknown field "{key}" in "{path}" of type {type_name}', depth + 1
                )
            if item is None:
                continue
            result[key] = self.check(item, field.types, f"{path}.{key}", depth + 1)
        for field in spec.fields.values():
            if field.required and field.name not in result:
                raise _Mismatch(path, f'field "{path}.{field.name}" is required', depth + 1)
        return result

    def _check_union(self, value: Any, spec: TypeSpec, path: str, depth: int) -> Any:
        subtypes = list(spec.subtypes)
        if isinstance(value, str) and not any(s == "String" for s in subtypes):
            value = _json_or(value, value)
        if isinstance(value, dict):
            keyed = [s for s in subtypes if (t := self.types.get(s)) and t.discriminator]
            if keyed:
                matching = [
                    s
                    for s in keyed
                    if value.get(self.types[s].discriminator[0])  # type: ignore[index]
                    == self.types[s].discriminator[1]  # type: ignore[index]
                ]
                if not matching:
                    key = self.types[keyed[0]].discriminator[0]  # type: ignore[index]
                    raise _Mismatch(
                        path,
                        f'field "{path}.{key}" has an unsupported value for type {spec.name}',
                        depth + 1,
                    )
                subtypes = matching
        return self.check(value, subtypes, path, depth)


def _attach(value: Any, files: Mapping[str, UploadedFile]) -> Any:
    """`value` with nested "attach://<name>" strings replaced by the uploaded files."""
    if isinstance(value, str):
        if value.startswith("attach://"):
            upload = files.get(value[len("attach://") :])
            if upload is None:
                raise bad_request(f'file "{value}" not found in the request')
            return upload
        return value
    if isinstance(value, dict):
        return {k: _attach(v, files) for k, v in value.items()}
    if isinstance(value, list):
        return [_attach(v, files) for v in value]
    return value


def _is_plain_string(types: Sequence[str]) -> bool:
    return all(t in ("String", "InputFile") for t in types)


def _json_or(text: str, default: Any) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return default


@cache
def load_spec(path: Path = SPEC_FILE) -> ApiSpec:
    """The bundled Bot API spec, parsed once per process."""
    with path.open(encoding="utf-8") as fh:
        return ApiSpec(json.load(fh))


__all__ = [
    "SPEC_FILE",
    "ApiSpec",
    "FieldSpec",
    "MethodSpec",
    "TypeSpec",
    "UploadedFile",
    "load_spec",
]
