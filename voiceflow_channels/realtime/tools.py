"""Plain Python functions offered to the Realtime model as tools, and running them for it.

A tool's schema comes from its type hints (through pydantic) and its docstring: the first
paragraph is the description, a Google-style `Args:` section (also `Arguments:`,
`Parameters:`) gives each parameter's. The same pydantic model validates the model's arguments.
Running a tool never raises: bad arguments, an unknown name, an exception or a timeout become a
`ToolResult` whose output tells the model what happened. Several calls run at once with
`asyncio.gather` over `Toolbox.run`: each one is bounded and never raises.

Framework-free: no Django, no OpenAI SDK.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, PydanticUserError, ValidationError, create_model
from pydantic_core import to_json

log = logging.getLogger("voiceflow_channels")

# What OpenAI accepts as a function name.
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}", re.ASCII)
# A docstring section header: "Args:", "Returns:", "See Also:".
_HEADER = re.compile(r"[A-Z][A-Za-z ]*:")
_ARGS_HEADERS = ("Args:", "Arguments:", "Parameters:")
# One entry of an `Args:` section: "name: text" or "name (type): text".
_ENTRY = re.compile(r"(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)")
# Arguments the function does not take are refused (the model is told); a number where a
# string is expected is taken as its digits (an order number said aloud often comes as one).
_ARGUMENTS_CONFIG = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


@dataclass(frozen=True)
class ToolResult:
    """What one call gave: `output` is the string for `function_call_output`; `error` is a short
    reason free of the arguments' content (for logs and counters), None when `ok`."""

    output: str
    ok: bool
    duration_s: float
    error: str | None


@dataclass(frozen=True)
class Tool:
    """A function the model may call, with the schema it is offered under and the pydantic model
    that validates what the model sends."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: Callable[..., Any]
    is_async: bool
    arguments: type[BaseModel]

    @classmethod
    def from_function(cls, fn: Callable[..., Any]) -> Tool:
        """The tool for `fn`, sync or async; a TypeError names what OpenAI or the schema cannot
        take (the name, *args or **kwargs, positional-only or unannotated parameters)."""
        name = getattr(fn, "__name__", None)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise TypeError(
                f"{fn!r} cannot be a tool: its name {name!r} is not one OpenAI accepts "
                "(1 to 64 of a-z, A-Z, 0-9, _ and -); give the function such a name"
            )
        try:
            hints = get_type_hints(fn, include_extras=True)
        except (NameError, TypeError) as exc:
            raise TypeError(f"tool {name}: its type hints cannot be resolved: {exc}") from exc
        description, documented = _read_docstring(inspect.getdoc(fn) or "")
        fields: dict[str, Any] = {}
        for index, param in enumerate(inspect.signature(fn).parameters.values()):
            where = f"tool {name}: parameter {param.name!r}"
            if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                raise TypeError(
                    f"{where} is {param.kind.description}: the model passes named arguments "
                    "only; make it an ordinary named parameter"
                )
            if param.name not in hints:
                raise TypeError(
                    f"{where} has no type hint, and the model's schema is built from them: "
                    f"annotate it (e.g. {param.name}: str)"
                )
            info: dict[str, Any] = {"alias": param.name}
            if param.name in documented:
                info["description"] = documented[param.name]
            if param.default is not param.empty:
                info["default"] = param.default
            # Fields get neutral names and the parameter's as alias: a parameter called `json`
            # or `_id` would shadow BaseModel's attributes or be taken for a private one.
            fields[f"arg{index}"] = (hints[param.name], Field(**info))
        try:
            arguments = create_model(f"{name}_arguments", __config__=_ARGUMENTS_CONFIG, **fields)
            schema = arguments.model_json_schema()
        except PydanticUserError as exc:
            raise TypeError(f"tool {name}: no JSON schema for its parameters: {exc}") from exc
        parameters = _inline(schema, schema.get("$defs", {}), (), f"tool {name}")
        return cls(
            name=name,
            description=description,
            parameters=parameters,
            function=fn,
            is_async=inspect.iscoroutinefunction(fn),
            arguments=arguments,
        )

    def definition(self) -> dict[str, Any]:
        """The entry for session.update's `tools`."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }

    async def run(
        self,
        arguments_json: str,
        *,
        timeout_s: float,
        call_sid: str,
        executor: Executor | None = None,
    ) -> ToolResult:
        """Validate the model's arguments, then call the function within `timeout_s`: async
        ones awaited (and cancelled at the deadline), sync ones in `executor` (by default the
        process's shared thread pool). Python cannot stop a thread: a sync tool past its
        deadline (or whose run the caller cancelled) runs on in its thread, and whatever it
        returns or raises then is dropped.

        Logs carry the tool's name, the call and the exception, never the arguments (they can
        hold what a caller said about themselves)."""
        started = time.monotonic()
        try:
            validated = self.arguments.model_validate_json(arguments_json)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            log.warning(
                "voiceflow tool %s bad arguments callSid=%s: %s", self.name, call_sid, problems
            )
            return _result(
                started,
                f"The tool {self.name} was not run, its arguments were wrong: {problems}. "
                "Call it again with arguments that fit its parameters.",
                error="invalid arguments",
            )
        kwargs = {
            field.alias or key: getattr(validated, key)
            for key, field in type(validated).model_fields.items()
        }
        deadline = asyncio.timeout(timeout_s)
        try:
            async with deadline:
                value = await self._call(kwargs, executor)
            return _result(started, _as_output(value), error=None)
        except Exception as exc:
            if deadline.expired():
                reason = f"TimeoutError after {timeout_s:g} s"
                log.error("voiceflow tool %s timed out callSid=%s", self.name, call_sid)
            else:
                reason = type(exc).__name__
                log.exception("voiceflow tool %s failed callSid=%s", self.name, call_sid)
            return _result(
                started,
                f"The tool {self.name} failed: {reason}. Apologise and offer another way.",
                error=reason,
            )

    async def _call(self, kwargs: dict[str, Any], executor: Executor | None) -> Any:
        if self.is_async:
            return await self.function(**kwargs)
        # Like asyncio.to_thread: the caller's context variables go with the call.
        call = functools.partial(contextvars.copy_context().run, self.function, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(executor or _pool(), call)


class Toolbox:
    """The tools one assistant offers: their definitions for session.update, and running the one
    the model names."""

    __slots__ = ("_tools",)

    def __init__(self, *tools: Tool | Callable[..., Any]) -> None:
        self._tools: dict[str, Tool] = {}
        for each in tools:
            tool = each if isinstance(each, Tool) else Tool.from_function(each)
            if tool.name in self._tools:
                raise ValueError(f"two tools are named {tool.name}: give each a name of its own")
            self._tools[tool.name] = tool

    def definitions(self) -> list[dict[str, Any]]:
        """session.update's `tools`, in the order given."""
        return [tool.definition() for tool in self._tools.values()]

    async def run(
        self,
        name: str,
        arguments_json: str,
        *,
        timeout_s: float,
        call_sid: str,
        executor: Executor | None = None,
    ) -> ToolResult:
        """`Tool.run` for the tool called `name`; a name the model made up is an error result."""
        tool = self._tools.get(name)
        if tool is None:
            log.warning("voiceflow no tool named %r callSid=%s", name, call_sid)
            return _result(
                time.monotonic(),
                f"There is no tool named {name}. Use only the tools you were given.",
                error=f"no tool named {name}",
            )
        return await tool.run(
            arguments_json, timeout_s=timeout_s, call_sid=call_sid, executor=executor
        )


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The process's pool for sync tools, made on first use (after any fork). It grows to the
    standard library's default of min(32, CPUs + 4) threads, so up to that many calls (ORM
    queries, HTTP requests) run at once; beyond it they queue, their deadlines still running."""
    return ThreadPoolExecutor(thread_name_prefix="voiceflow-tool")


def _result(started: float, output: str, *, error: str | None) -> ToolResult:
    return ToolResult(
        output=output, ok=error is None, duration_s=time.monotonic() - started, error=error
    )


def _as_output(value: object) -> str:
    """A string as is; anything else as JSON (values JSON has no type for as their str()), or its
    str() when even that fails (a circular structure)."""
    if isinstance(value, str):
        return value
    try:
        return to_json(value, fallback=str).decode()
    except ValueError:
        return str(value)


def _read_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph, on one line, and each parameter's text from the `Args:` section."""
    lines = doc.splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip() or _HEADER.fullmatch(line):
            break
        summary.append(line.strip())
    documented: dict[str, str] = {}
    in_args, indent, current = False, 0, ""
    for line in lines:
        if not line.strip():
            continue
        if not line[0].isspace():
            in_args, indent, current = line.rstrip() in _ARGS_HEADERS, 0, ""
            continue
        depth = len(line) - len(line.lstrip())
        indent = indent or depth
        entry = _ENTRY.fullmatch(line.strip())
        if in_args and depth == indent and entry:
            current = entry[1]
            documented[current] = entry[2]
        elif in_args and current:
            documented[current] = f"{documented[current]} {line.strip()}".strip()
    return " ".join(summary), documented


def _inline(node: dict[str, Any], defs: dict[str, Any], seen: tuple[str, ...], where: str) -> Any:
    """The schema with every `$ref` replaced by its definition (its own keys kept over the
    definition's), titles dropped and every object closed to properties it does not list."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            raise TypeError(
                f"{where}: the type {name} contains itself; recursive types are refused"
            )
        node = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        seen = (*seen, name)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("title", "$defs"):
            continue
        if key == "properties":
            out[key] = {p: _inline(s, defs, seen, where) for p, s in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _inline(value, defs, seen, where)
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            out[key] = [_inline(s, defs, seen, where) for s in value]
        else:
            out[key] = value
    if out.get("type") == "object":
        out.setdefault("additionalProperties", False)
    return out
