"""Wave plans: when each questionnaire opens, reminds and closes, relative to graduation.

Pure rules over plain data, no database. A plan is configuration (`conversations/waves.yaml`,
or another file named by WAVES_FILE): a default plan, and optional plans for a school
(`alfa`) or for one programme of a school (`alfa/ICT4`), which replace the default.

    default:
      send_time: "10:00"              # local time of the school for invitations and reminders
      quiet_hours: {start: "21:00", end: "09:00"}
      waves:
        - name: m2
          questionnaire: tracking
          consent: survey             # survey or followup: which consent the wave needs
          opens: 2m                   # after the graduation date: Nd, Nw or Nm; negative before
          closes: 3m
          reminders: {count: 2, every: 1w}

Times in a plan are the school's local times (its IANA timezone); everything stored is UTC.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

DEFAULT_PLAN_FILE = Path(__file__).resolve().parent / "waves.yaml"

OFFSET_RE = re.compile(r"^(-?\d{1,3})([dwm])$")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
WAVE_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
CONSENTS = ("survey", "followup")


class WavePlanError(ValueError):
    """A wave plan that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Offset:
    amount: int
    unit: str  # d, w, m

    def apply(self, day: date) -> date:
        if self.unit == "d":
            return day + timedelta(days=self.amount)
        if self.unit == "w":
            return day + timedelta(weeks=self.amount)
        month_index = day.month - 1 + self.amount
        year, month = day.year + month_index // 12, month_index % 12 + 1
        return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


@dataclass(frozen=True)
class Wave:
    name: str
    questionnaire: str
    consent: str
    opens: Offset
    closes: Offset
    reminder_count: int
    reminder_every: Offset


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    def contains(self, moment: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


@dataclass(frozen=True)
class Plan:
    send_time: time
    quiet_hours: QuietHours
    waves: tuple[Wave, ...]

    def wave(self, name: str) -> Wave | None:
        return next((w for w in self.waves if w.name == name), None)


@dataclass(frozen=True)
class Scheduled:
    """One message a wave owes a graduate."""

    wave: str
    questionnaire: str
    seq: int  # 0 invitation, 1.. reminders
    due_at: datetime
    closes_at: datetime


@dataclass(frozen=True)
class WavePlans:
    default: Plan
    overrides: dict[str, Plan]

    def for_graduate(self, school_code: str, programme_code: str | None) -> Plan:
        if programme_code and f"{school_code}/{programme_code}" in self.overrides:
            return self.overrides[f"{school_code}/{programme_code}"]
        return self.overrides.get(school_code, self.default)

    def questionnaires(self) -> set[str]:
        plans = [self.default, *self.overrides.values()]
        return {wave.questionnaire for plan in plans for wave in plan.waves}


def _offset(value: Any, where: str) -> Offset:
    match = OFFSET_RE.match(str(value).strip())
    if not match:
        raise WavePlanError(f"{where}: {value!r} is not an offset like 30d, 2w, 6m or -1m")
    return Offset(int(match.group(1)), match.group(2))


def _time(value: Any, where: str) -> time:
    match = TIME_RE.match(str(value).strip())
    if not match:
        raise WavePlanError(f"{where}: {value!r} is not a time like 09:30")
    return time(int(match.group(1)), int(match.group(2)))


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WavePlanError(f"{where}: expected a mapping")
    return value


def _plan(raw: Any, where: str, questionnaires: set[str] | None) -> Plan:
    data = _mapping(raw, where)
    unknown = set(data) - {"send_time", "quiet_hours", "waves"}
    if unknown:
        raise WavePlanError(f"{where}: unknown keys {sorted(unknown)}")
    quiet = _mapping(data.get("quiet_hours", {"start": "21:00", "end": "09:00"}), where)
    quiet_hours = QuietHours(
        _time(quiet.get("start"), f"{where}.quiet_hours.start"),
        _time(quiet.get("end"), f"{where}.quiet_hours.end"),
    )
    send_time = _time(data.get("send_time", "10:00"), f"{where}.send_time")
    if quiet_hours.contains(send_time):
        raise WavePlanError(f"{where}: send_time {send_time:%H:%M} is inside the quiet hours")
    raw_waves = data.get("waves")
    if not isinstance(raw_waves, list) or not raw_waves:
        raise WavePlanError(f"{where}.waves: give at least one wave")
    waves: list[Wave] = []
    for index, item in enumerate(raw_waves):
        here = f"{where}.waves[{index}]"
        wave_data = _mapping(item, here)
        unknown = set(wave_data) - {
            "name",
            "questionnaire",
            "consent",
            "opens",
            "closes",
            "reminders",
        }
        if unknown:
            raise WavePlanError(f"{here}: unknown keys {sorted(unknown)}")
        name = str(wave_data.get("name", ""))
        if not WAVE_NAME_RE.match(name):
            raise WavePlanError(f"{here}.name: {name!r} must be 1-32 of a-z, 0-9 and _")
        if any(w.name == name for w in waves):
            raise WavePlanError(f"{here}.name: {name!r} is used twice")
        questionnaire = str(wave_data.get("questionnaire", ""))
        if questionnaires is not None and questionnaire not in questionnaires:
            raise WavePlanError(
                f"{here}.questionnaire: {questionnaire!r} is not a deployed questionnaire "
                f"({', '.join(sorted(questionnaires))})"
            )
        consent = str(wave_data.get("consent", "followup"))
        if consent not in CONSENTS:
            raise WavePlanError(f"{here}.consent: must be one of {', '.join(CONSENTS)}")
        opens = _offset(wave_data.get("opens"), f"{here}.opens")
        closes = _offset(wave_data.get("closes"), f"{here}.closes")
        reference = date(2026, 6, 30)
        if closes.apply(reference) <= opens.apply(reference):
            raise WavePlanError(f"{here}: closes ({closes}) must come after opens ({opens})")
        reminders = _mapping(wave_data.get("reminders", {"count": 0, "every": "7d"}), here)
        count = reminders.get("count", 0)
        if not isinstance(count, int) or not 0 <= count <= 10:
            raise WavePlanError(f"{here}.reminders.count: a whole number from 0 to 10")
        every = _offset(reminders.get("every", "7d"), f"{here}.reminders.every")
        if every.amount <= 0:
            raise WavePlanError(f"{here}.reminders.every: must be positive")
        waves.append(Wave(name, questionnaire, consent, opens, closes, count, every))
    return Plan(send_time, quiet_hours, tuple(waves))


def parse_plans(
    text: str, source: str = "<string>", questionnaires: set[str] | None = None
) -> WavePlans:
    """Read and validate wave plans; `questionnaires` are the deployed form ids."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WavePlanError(f"{source}: {exc}") from exc
    data = _mapping(raw, source)
    unknown = set(data) - {"default", "schools"}
    if unknown:
        raise WavePlanError(f"{source}: unknown keys {sorted(unknown)}")
    default = _plan(data.get("default"), f"{source}: default", questionnaires)
    overrides = {
        str(key): _plan(value, f"{source}: schools.{key}", questionnaires)
        for key, value in _mapping(data.get("schools") or {}, f"{source}: schools").items()
    }
    return WavePlans(default, overrides)


def load_plans(path: Path = DEFAULT_PLAN_FILE, questionnaires: set[str] | None = None) -> WavePlans:
    return parse_plans(path.read_text(encoding="utf-8"), str(path), questionnaires)


def local_moment(day: date, at: time, timezone: str) -> datetime:
    """`day` at local time `at` in `timezone`, as a UTC datetime."""
    return datetime.combine(day, at, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def schedule(plan: Plan, graduation: date, timezone: str) -> list[Scheduled]:
    """Every invitation and reminder the plan owes a graduate, reminders only while open."""
    items: list[Scheduled] = []
    for wave in plan.waves:
        opens_day = wave.opens.apply(graduation)
        closes_at = local_moment(wave.closes.apply(graduation), time(0, 0), timezone)
        items.append(
            Scheduled(
                wave.name,
                wave.questionnaire,
                0,
                local_moment(opens_day, plan.send_time, timezone),
                closes_at,
            )
        )
        day = opens_day
        for seq in range(1, wave.reminder_count + 1):
            day = wave.reminder_every.apply(day)
            due = local_moment(day, plan.send_time, timezone)
            if due >= closes_at:
                break
            items.append(Scheduled(wave.name, wave.questionnaire, seq, due, closes_at))
    return items


def next_allowed(moment: datetime, quiet: QuietHours, timezone: str) -> datetime:
    """`moment` if it is outside the quiet hours of `timezone`, else when they end."""
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return moment
    end_day = local.date()
    if quiet.start > quiet.end and local.time().replace(tzinfo=None) >= quiet.start:
        end_day += timedelta(days=1)
    return datetime.combine(end_day, quiet.end, tzinfo=zone).astimezone(UTC)
