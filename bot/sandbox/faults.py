"""Fault injection: make chosen Bot API calls fail, or answer late, on purpose.

    sandbox.faults.add("sendMessage", status=502, count=3)   # next 3 sendMessage -> 502
    sandbox.faults.add(status=500, count=None)                # every call -> 500 until cleared
    sandbox.faults.hang("getUpdates", seconds=30)             # next call answers after 30 s
    sandbox.faults.add("sendMessage", status=502, process=True)  # delivered, but reports 502
    sandbox.faults.add("sendMessage", status=400, description="Bad Request: BUTTON_DATA_INVALID",
                       count=None, when=lambda params: "reply_markup" in params)
    sandbox.faults.clear()

A fault is taken when the call arrives, before its parameters are checked (`when` sees them
as sent: strings, JSON still encoded).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, status_phrase


@dataclass(slots=True, eq=False)
class Fault:
    """One rule. `method=None` matches every method; `count=None` never runs out."""

    method: str | None = None
    status: int | None = 500
    count: int | None = 1
    #: Seconds to hold the request before answering (simulates a hung server).
    delay: float = 0.0
    #: Carry the call out anyway (e.g. the message is delivered but the answer is lost).
    process: bool = False
    description: str | None = None
    retry_after: int | None = None
    #: Only calls whose parameters satisfy this (all calls if None).
    when: Callable[[dict[str, Any]], bool] | None = None
    hits: int = field(default=0)

    def error(self) -> ApiError | None:
        """The error this fault answers with, if any."""
        if self.status is None:
            return None
        parameters: dict[str, Any] | None = None
        if self.retry_after is not None:
            parameters = {"retry_after": self.retry_after}
        description = self.description
        if description is None:
            description = status_phrase(self.status)
            if self.status == 429:
                description = f"Too Many Requests: retry after {self.retry_after or 1}"
                parameters = {"retry_after": self.retry_after or 1}
        return ApiError(self.status, description, parameters)


class FaultInjector:
    """The active fault rules, first match wins."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(
        self,
        method: str | None = None,
        *,
        status: int | None = 500,
        count: int | None = 1,
        delay: float = 0.0,
        process: bool = False,
        description: str | None = None,
        retry_after: int | None = None,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Fault:
        """Make the next `count` calls of `method` (all methods if None), of those whose
        parameters satisfy `when` if given, fail with `status`."""
        fault = Fault(
            method=method.lower() if method else None,
            status=status,
            count=count,
            delay=delay,
            process=process,
            description=description,
            retry_after=retry_after,
            when=when,
        )
        self._faults.append(fault)
        return fault

    def hang(
        self,
        method: str | None = None,
        *,
        seconds: float = 60.0,
        count: int | None = 1,
        process: bool = False,
    ) -> Fault:
        """Hold the next `count` calls for `seconds`; then answer normally if `process`,
        else with `504 Gateway Timeout` (usually the client has given up by then)."""
        return self.add(
            method, status=None if process else 504, count=count, delay=seconds, process=process
        )

    def remove(self, fault: Fault) -> None:
        if fault in self._faults:
            self._faults.remove(fault)

    def clear(self) -> None:
        self._faults.clear()

    def __len__(self) -> int:
        return len(self._faults)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self._faults))

    def take(self, method: str, params: dict[str, Any] | None = None) -> Fault | None:
        """The fault for a call of `method` (lower-case) with `params`, using up one of its
        `count`."""
        if not self._faults:
            return None
        name = method.lower()
        for fault in self._faults:
            if fault.when is not None and not fault.when(params or {}):
                continue
            if fault.method is None or fault.method == name:
                fault.hits += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                return fault
        return None
