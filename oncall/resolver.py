"""Who is on call, computed in Python from structured rotation data (no iCal parsing, no query per shift).

`RotationPlan` is an in-memory snapshot of one rotation: its handoff rule, its ordered members per slot and the
overrides of a time window. Selectors build plans with a fixed number of queries (`selectors.rotation_plans`);
everything here is pure and safe to call millions of times.

Public API (stable names, used by oncall.escalation, the paging engine and the on-call API):
- `Shift` — one continuous stretch of one slot held by one person (or nobody: a gap).
- `RotationPlan.who_is_on_call(slot, at)` -> Person | None
- `RotationPlan.shift_at(slot, at)` -> Shift
- `RotationPlan.shifts_between(start, end, slots=None)` -> list[Shift]
- `RotationPlan.gaps_between(start, end, slots=None)` -> list[Shift]
- `RotationPlan.next_handoff(at)` -> datetime
- `shifts_between(plans, start, end)` over several plans.

Rules kept:
- Shift k of a rotation starts at the handoff wall time (rotation timezone) on first_handoff_date + k*length days and
  ends where shift k+1 starts, so a weekly Monday 09:00 America/New_York handoff stays 09:00 local on both sides of
  a DST change and consecutive shifts never gap or overlap. A handoff time that does not exist locally (inside a
  spring-forward gap) resolves the way zoneinfo does for fold=0: the same instant on both shifts' sides.
- Slot S in shift k is held by member k mod len(members of S); a slot without members is a gap, and so is the
  turn of a member whose Person is no longer active.
- Times before the rotation's first handoff are gaps (the rotation has not started).
- Overrides win over the rotation; where overrides overlap, the most recently created one wins.
- All returned datetimes are in UTC.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .models import Slot

SLOTS: tuple[str, ...] = tuple(Slot.values)


@dataclass(frozen=True, slots=True)
class Shift:
    """One continuous stretch of `slot` of a rotation. `person` is None for a gap (nobody to page).

    `index` is the rotation's shift number (0 = Week 1) or None before the rotation starts; `override` is the
    Override that put `person` here, if any.
    """

    rotation: object
    slot: str
    person: object | None
    start: datetime
    end: datetime
    index: int | None
    override: object | None = None

    @property
    def is_gap(self) -> bool:
        return self.person is None

    @property
    def is_override(self) -> bool:
        return self.override is not None

    @property
    def slot_label(self) -> str:
        return Slot(self.slot).label

    @property
    def uid(self) -> str:
        """Stable identity for calendar feeds: the same shift keeps its UID across feed refreshes."""
        key = f"o{self.override.pk}" if self.override is not None else f"k{self.index}"
        return f"oncall-r{self.rotation.pk}-{self.slot}-{key}-{int(self.start.timestamp())}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("on-call times must be timezone-aware")
    return moment.astimezone(UTC)


class _OverrideTimeline:
    """The overrides of one slot flattened into sorted, non-overlapping segments with precedence applied."""

    __slots__ = ("starts", "ends", "overrides")

    def __init__(self, overrides: list):
        points = sorted({_utc(o.start) for o in overrides} | {_utc(o.end) for o in overrides})
        # Most recent wins: rank by (created_at, pk).
        ranked = sorted(overrides, key=lambda o: (o.created_at, o.pk or 0), reverse=True)
        starts, ends, chosen = [], [], []
        for a, b in zip(points, points[1:], strict=False):
            winner = next((o for o in ranked if _utc(o.start) <= a and _utc(o.end) >= b), None)
            if winner is None:
                continue
            if chosen and chosen[-1] is winner and ends[-1] == a:
                ends[-1] = b
            else:
                starts.append(a)
                ends.append(b)
                chosen.append(winner)
        self.starts, self.ends, self.overrides = starts, ends, chosen

    def at(self, moment: datetime):
        i = bisect_right(self.starts, moment) - 1
        if i >= 0 and moment < self.ends[i]:
            return self.overrides[i]
        return None


class RotationPlan:
    """An in-memory snapshot of a rotation, its ordered members and the overrides loaded with it.

    Build it with `selectors.rotation_plans(...)` (fixed query count) or directly from objects in tests:
    `RotationPlan(rotation, members=[RotationMember, ...], overrides=[Override, ...])`. Only overrides passed in are
    considered, so load those of the window you will ask about.
    """

    def __init__(self, rotation, members: Iterable = (), overrides: Iterable = ()):
        self.rotation = rotation
        self.zone = ZoneInfo(rotation.timezone)
        self.length_days = int(rotation.shift_length_days)
        self.first_date: date = rotation.first_handoff_date
        self.handoff_time: time = rotation.handoff_time
        self._naive_anchor = datetime.combine(self.first_date, self.handoff_time)
        self._length = timedelta(days=self.length_days)
        by_slot: dict[str, list] = {slot: [] for slot in SLOTS}
        for member in sorted(members, key=lambda m: (m.slot, m.position, m.pk or 0)):
            by_slot.setdefault(member.slot, []).append(member.person)
        self.members: dict[str, list] = by_slot
        grouped: dict[str, list] = {}
        for override in overrides:
            grouped.setdefault(override.slot, []).append(override)
        self._overrides = {slot: _OverrideTimeline(items) for slot, items in grouped.items()}
        self._boundaries: dict[int, datetime] = {}
        # The last base shift looked up: most questions ("every hour of a year") fall in the same shift.
        self._cur_k = -1
        self._cur_start = self._cur_end = None

    # --- base rotation -----------------------------------------------------------------------------------------
    def handoff(self, k: int) -> datetime:
        """Start of shift k in UTC: the handoff wall time on its local date, whatever the offset that day."""
        found = self._boundaries.get(k)
        if found is None:
            local_day = self.first_date + timedelta(days=k * self.length_days)
            found = datetime.combine(local_day, self.handoff_time, tzinfo=self.zone).astimezone(UTC)
            self._boundaries[k] = found
        return found

    def shift_index(self, at: datetime) -> int:
        """The shift number containing `at` (negative before the rotation starts)."""
        at = _utc(at)
        if self._cur_start is not None and self._cur_start <= at < self._cur_end:
            return self._cur_k
        # Wall-clock estimate, then correct by at most a step around DST changes and ambiguous hours.
        local = at.astimezone(self.zone).replace(tzinfo=None)
        k = (local - self._naive_anchor) // self._length
        while self.handoff(k) > at:
            k -= 1
        while self.handoff(k + 1) <= at:
            k += 1
        self._cur_k, self._cur_start, self._cur_end = k, self.handoff(k), self.handoff(k + 1)
        return k

    def next_handoff(self, at: datetime) -> datetime:
        """The next base handoff strictly after `at`."""
        k = self.shift_index(at)
        return self.handoff(max(k, -1) + 1) if k >= 0 else self.handoff(0)

    def scheduled(self, slot: str, k: int):
        """Who the rotation (without overrides) puts in `slot` for shift k; None for a gap."""
        if k < 0:
            return None
        people = self.members.get(slot)
        if not people:
            return None
        person = people[k % len(people)]
        # A deactivated contact cannot be paged: their turn shows as a gap (someone must cover it), and the
        # order of everyone else's turns is unchanged.
        return person if person.is_active else None

    # --- resolution --------------------------------------------------------------------------------------------
    def who_is_on_call(self, slot: str, at: datetime):
        """The Person holding `slot` at `at` (overrides first), or None when nobody does (a gap)."""
        at = _utc(at)
        timeline = self._overrides.get(slot)
        if timeline is not None:
            override = timeline.at(at)
            if override is not None:
                return override.person
        return self.scheduled(slot, self.shift_index(at))

    def shift_at(self, slot: str, at: datetime) -> Shift:
        """The Shift (a clipped segment, as in shifts_between) that contains `at`."""
        at = _utc(at)
        k = self.shift_index(at)
        end = self.handoff(k + 1) if k >= 0 else self.handoff(0)
        segments = self._slot_segments(slot, at, end)
        return segments[0]

    def shifts_between(self, start: datetime, end: datetime, slots: Iterable[str] | None = None) -> list[Shift]:
        """Every segment of every slot overlapping [start, end), clipped to it, ordered by slot then time.

        Segments split at base handoffs and at override edges; consecutive segments never gap or overlap, so
        together they tile [start, end) exactly for each slot. Gaps are segments whose person is None.
        """
        start, end = _utc(start), _utc(end)
        if end <= start:
            return []
        result: list[Shift] = []
        for slot in slots or SLOTS:
            result.extend(self._slot_segments(slot, start, end))
        return result

    def gaps_between(self, start: datetime, end: datetime, slots: Iterable[str] | None = None) -> list[Shift]:
        """The stretches of [start, end) when a slot has nobody on call."""
        return [shift for shift in self.shifts_between(start, end, slots) if shift.is_gap]

    def _slot_segments(self, slot: str, start: datetime, end: datetime) -> list[Shift]:
        points = {start, end}
        k = self.shift_index(start)
        first = max(k + 1, 0)
        j = first
        while True:
            boundary = self.handoff(j)
            if boundary >= end:
                break
            if boundary > start:
                points.add(boundary)
            j += 1
        timeline = self._overrides.get(slot)
        if timeline is not None:
            for edge in (*timeline.starts, *timeline.ends):
                if start < edge < end:
                    points.add(edge)
        ordered = sorted(points)
        segments: list[Shift] = []
        for a, b in zip(ordered, ordered[1:], strict=False):
            k = self.shift_index(a)
            index = k if k >= 0 else None
            override = timeline.at(a) if timeline is not None else None
            person = override.person if override is not None else self.scheduled(slot, k)
            last = segments[-1] if segments else None
            if last is not None and last.index == index and last.override is override and last.person is person:
                segments[-1] = Shift(self.rotation, slot, person, last.start, b, index, override)
            else:
                segments.append(Shift(self.rotation, slot, person, a, b, index, override))
        return segments


def shifts_between(plans: Iterable[RotationPlan], start: datetime, end: datetime, slots=None) -> list[Shift]:
    """shifts_between over several rotations, ordered by start time."""
    shifts = [shift for plan in plans for shift in plan.shifts_between(start, end, slots)]
    shifts.sort(key=lambda s: (s.start, s.rotation.pk, SLOTS.index(s.slot)))
    return shifts
