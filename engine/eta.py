"""Remaining-time estimates for runs made of work segments (Qt-free, standard library only).

A DGP run is a latent search (candidates) followed by stages (iterations);
a restore *plan* is several such runs. Their step counts are exact; only the
time per unit of work is estimated:

* every segment has a ``kind`` ("search", "stage-0", ...), and each kind has
  its own price in seconds per unit, so the search and the iterations (and a
  costlier later stage) are priced separately; segments of the same kind in
  later runs of a plan use the price the first run learnt;
* a price is the median of the kind's recent per-unit times, so one slow
  step (a garbage collection, a frame written to disk) moves it little;
* the first ``warm_up`` units of every segment are not measured: the first
  step of a run allocates buffers and optimiser state, and a segment's first
  measurement would also carry the hand-over from the segment before;
* a kind not seen yet is priced from the seen ones through the segments'
  ``relative_cost`` (a prior ratio, e.g. a search candidate costs about a
  quarter of an iteration), so an estimate exists as soon as anything has
  been measured.

:func:`segments_for_run` turns a run's search size and stage plans into
segments; :func:`format_remaining` formats an estimate for people.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

SEARCH_KIND = "search"
# One latent-search candidate (G forward, D forward, no backward, batched) against one
# iteration (G and D forwards, backward, two Adam steps): a prior, replaced by
# measurements as soon as both kinds have been seen.
SEARCH_RELATIVE_COST = 0.25
RECENT_SAMPLES = 25


def stage_kind(index: int) -> str:
    """The pricing kind of stage ``index`` (0-based) of a DGP schedule."""
    return f"stage-{index}"


@dataclass(frozen=True)
class Segment:
    """A stretch of work of one kind.

    Attributes
    ----------
    kind : str
        Pricing key: segments of one kind share one price per unit.
    units : int
        Units of work (candidates, iterations), at least 0.
    relative_cost : float
        Prior cost of one unit relative to other kinds; used only to price a
        kind before it has been measured.
    warm_up : int
        Leading units of the segment whose times are not measured.
    """

    kind: str
    units: int
    relative_cost: float = 1.0
    warm_up: int = 1

    def __post_init__(self) -> None:
        if self.units < 0:
            raise ValueError(f"a segment needs 0 or more units, got {self.units}.")
        if not (self.relative_cost > 0 and math.isfinite(self.relative_cost)):
            raise ValueError(f"a segment's relative cost must be a positive number, got {self.relative_cost}.")


def segments_for_run(search_candidates: int, stages: Iterable[object]) -> list[Segment]:
    """The segments of one DGP run: the search (when it scores candidates), then each stage.

    ``stages`` are :class:`engine.events.StagePlan` objects (``index`` and
    ``iterations`` are read). A search of 0 or 1 candidates scores nothing
    and gets no segment, as :func:`engine.dgp.run_dgp` reports no progress for it.
    """
    segments = []
    if search_candidates > 1:
        segments.append(Segment(SEARCH_KIND, int(search_candidates), relative_cost=SEARCH_RELATIVE_COST))
    segments.extend(Segment(stage_kind(stage.index), int(stage.iterations)) for stage in stages)
    return segments


def _family(kind: str) -> str:
    """``"stage-3"`` -> ``"stage"``: kinds that differ only by a trailing number."""
    stem, _, number = kind.rpartition("-")
    return stem if stem and number.isdigit() else kind


class _Price:
    """Recent per-unit times of one kind; the price is their weighted median."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, int]] = deque(maxlen=RECENT_SAMPLES)  # (seconds per unit, units)

    def add(self, seconds_per_unit: float, units: int) -> None:
        self.samples.append((seconds_per_unit, units))

    def median(self) -> float:
        ordered = sorted(self.samples)
        half = sum(units for _, units in ordered) / 2
        cumulative = 0
        for value, units in ordered:
            cumulative += units
            if cumulative >= half:
                return value
        return ordered[-1][0]


class RemainingTime:
    """Estimates the time left in a sequence of segments from measured progress.

    Parameters
    ----------
    segments : sequence of Segment
        The work in order (one run, or every run of a plan).
    prices : mapping of str to float, optional, keyword-only
        Seconds per unit by kind known beforehand (e.g. :meth:`prices` of an
        earlier estimator); measurements replace them.

    Call :meth:`advance` whenever progress is known: ``advance(i, 0, now)``
    when segment ``i`` starts (optional, but it lets its first unit be timed
    and excluded as warm-up), then ``advance(i, done, now)`` with the units of
    segment ``i`` done so far. ``now`` is any monotonic clock in seconds.
    """

    def __init__(self, segments: Sequence[Segment], *, prices: Mapping[str, float] | None = None) -> None:
        self._segments = list(segments)
        self._units = [segment.units for segment in self._segments]
        self._measured: dict[str, _Price] = {}
        self._order: list[str] = list(prices or {})  # kinds by their latest measurement, oldest first
        self._prior = {kind: float(value) for kind, value in (prices or {}).items() if value > 0}
        self._index = 0
        self._done = 0
        self._last: tuple[int, int, float] | None = None  # (segment, units done, time) of the last advance

    @property
    def segments(self) -> list[Segment]:
        """The segments, with the units of any segment that ended early revised."""
        return [
            Segment(s.kind, units, relative_cost=s.relative_cost, warm_up=s.warm_up)
            for s, units in zip(self._segments, self._units)
        ]

    def advance(self, segment_index: int, units_done: int, now: float) -> None:
        """Progress: ``units_done`` units of segment ``segment_index`` are done at time ``now``."""
        if not 0 <= segment_index < len(self._segments):
            raise IndexError(f"segment {segment_index} does not exist ({len(self._segments)} segments).")
        segment = self._segments[segment_index]
        last = self._last
        # An interval is timed only when it starts after the segment's warm-up.
        if last is not None and last[0] == segment_index and units_done > last[1] >= segment.warm_up:
            units = units_done - last[1]
            seconds_per_unit = (now - last[2]) / units
            if seconds_per_unit >= 0 and math.isfinite(seconds_per_unit):
                self._measured.setdefault(segment.kind, _Price()).add(seconds_per_unit, units)
                if segment.kind in self._order:
                    self._order.remove(segment.kind)
                self._order.append(segment.kind)
        self._index, self._done = segment_index, units_done
        self._last = (segment_index, units_done, now)

    def end_segment(self, segment_index: int, units_done: int, now: float) -> None:
        """Segment ``segment_index`` ended after ``units_done`` units (an early stop): revise it."""
        self.advance(segment_index, units_done, now)
        self._units[segment_index] = units_done

    def revise(self, segment_index: int, units: int) -> None:
        """Segment ``segment_index`` (not started yet) will have ``units`` units."""
        self._units[segment_index] = int(units)

    @property
    def position(self) -> tuple[int, int]:
        """(segment, units done in it) of the last :meth:`advance`."""
        return self._index, self._done

    def prices(self) -> dict[str, float]:
        """Seconds per unit by kind: measured ones, else those given at construction."""
        known = dict(self._prior)
        known.update({kind: price.median() for kind, price in self._measured.items()})
        return known

    def price(self, kind: str, relative_cost: float = 1.0) -> float | None:
        """Seconds per unit of ``kind``; an unseen kind from the seen ones; None before any.

        An unseen kind takes the rate (seconds per unit of relative cost) of the
        latest measured kind of its family ("stage-1" from "stage-0"), else the
        median rate of every kind with a price.
        """
        known = self.prices()
        if kind in known:
            return known[kind]
        costs = {s.kind: s.relative_cost for s in self._segments}
        rates = {seen: value / costs.get(seen, 1.0) for seen, value in known.items()}
        if not rates:
            return None
        family = [seen for seen in self._order if _family(seen) == _family(kind) and seen in rates]
        if family:
            return rates[family[-1]] * relative_cost
        ordered = sorted(rates.values())
        middle = len(ordered) // 2
        rate = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
        return rate * relative_cost

    def remaining_units(self) -> list[int]:
        """Units left per segment (0 for segments already done)."""
        left = []
        for index, units in enumerate(self._units):
            if index < self._index:
                left.append(0)
            elif index == self._index:
                left.append(max(units - self._done, 0))
            else:
                left.append(units)
        return left

    def remaining_seconds(self) -> float | None:
        """Estimated seconds of work left after the last :meth:`advance`; None when nothing is priced yet."""
        total = 0.0
        for segment, left in zip(self._segments, self.remaining_units()):
            if left == 0:
                continue
            price = self.price(segment.kind, segment.relative_cost)
            if price is None:
                return None
            total += left * price
        return total


def format_remaining(seconds: float | None) -> str:
    """``"45 s left"``, ``"7 min 05 s left"``, ``"1 h 32 min left"``; ``"—"`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "\u2014"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s left"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s left"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min left"


class RunsRemainingTime:
    """One estimate over one or several DGP runs, fed with their progress or their events.

    Parameters
    ----------
    runs : sequence of (int, sequence of StagePlan)
        Per run, its search candidates and its stage plans (``RunPlan.search_candidates``
        and ``RunPlan.stages``), in the order the runs will go.
    prices : mapping of str to float, optional, keyword-only
        Seconds per unit by kind known beforehand.

    Segments of every run share kinds ("search", "stage-0", ...), so the prices
    run 1 measures price runs 2 … N before they start. :meth:`on_event` takes
    the events of :func:`engine.dgp.run_dgp` (read by duck typing).
    """

    def __init__(self, runs: Sequence[tuple[int, Sequence[object]]], *,
                 prices: Mapping[str, float] | None = None) -> None:
        segments: list[Segment] = []
        self._search: list[int | None] = []
        self._stages: list[list[int]] = []
        for candidates, stages in runs:
            own = segments_for_run(candidates, stages)
            first = len(segments)
            has_search = bool(own) and own[0].kind == SEARCH_KIND
            self._search.append(first if has_search else None)
            self._stages.append(list(range(first + int(has_search), first + len(own))))
            segments.extend(own)
        self.estimator = RemainingTime(segments, prices=prices)
        self._first_steps: dict[tuple[int, int], int] = {}

    def search_progress(self, run: int, done: int, now: float) -> None:
        index = self._search[run]
        if index is not None:
            self.estimator.advance(index, done, now)

    def stage_began(self, run: int, stage: int, now: float) -> None:
        self.estimator.advance(self._stages[run][stage], 0, now)

    def stage_progress(self, run: int, stage: int, done: int, now: float) -> None:
        """``done`` iterations of stage ``stage`` of run ``run`` are done."""
        self.estimator.advance(self._stages[run][stage], done, now)

    def stage_ended(self, run: int, stage: int, done: int, now: float) -> None:
        """Stage ``stage`` of run ``run`` ended after ``done`` iterations (fewer when it stopped early)."""
        self.estimator.end_segment(self._stages[run][stage], done, now)

    def run_ended(self, run: int, now: float) -> None:
        """Run ``run`` is over (finished or cancelled): nothing of it is left to do."""
        estimator = self.estimator
        current, done = estimator.position
        search = self._search[run]
        for index in ([search] if search is not None else []) + self._stages[run]:
            if index == current:
                estimator.end_segment(index, done, now)
            elif index > current:
                estimator.revise(index, 0)

    def on_event(self, run: int, event: object, now: float) -> None:
        """Feed one event of run ``run`` (``SearchProgress``, ``StageBegan``, ``Step``, ``StageEnded``)."""
        name = type(event).__name__
        if name == "SearchProgress":
            self.search_progress(run, event.done, now)
        elif name == "StageBegan":
            self._first_steps[(run, event.stage.index)] = event.first_step
            self.stage_began(run, event.stage.index, now)
        elif name == "Step":
            first = self._first_steps.get((run, event.stage), 1)
            self.stage_progress(run, event.stage, event.step - first + 1, now)
        elif name == "StageEnded":
            self.stage_ended(run, event.stage, event.steps_done, now)
        elif name in ("Finished", "Cancelled"):
            self.run_ended(run, now)

    def remaining_seconds(self) -> float | None:
        return self.estimator.remaining_seconds()

    def prices(self) -> dict[str, float]:
        return self.estimator.prices()


__all__ = [
    "SEARCH_KIND",
    "SEARCH_RELATIVE_COST",
    "RemainingTime",
    "RunsRemainingTime",
    "Segment",
    "format_remaining",
    "segments_for_run",
    "stage_kind",
]
