"""Read-only views of a trace for the scenario: a batch of its sequences, a chunk of its prefill tokens, a
subset of its sites. ``accelsim.sim.run.simulate`` takes a view wherever it takes a :class:`Trace`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from accelsim.trace.format import Site


class DecodeBatchView:
    """Decode steps of ``batch`` distinct sequences each: the trace's ``B`` sequences of a step are cut into
    ``B // batch`` disjoint groups (a remainder is left out), so every group is one simulated step.

    ``groups`` is the number of simulated steps (trace steps x groups per step).
    """

    phase = "decode"

    def __init__(self, trace: Any, batch: int, *, kinds: tuple[str, ...] | None = None):
        self._trace = trace
        self.n_sequences = batch
        self._per_step = trace.n_sequences // batch
        self.groups = (trace.n_tokens // trace.n_sequences) * self._per_step
        self.sites: list[Site] = [s for s in trace.sites if kinds is None or s.kind in kinds]
        self.meta = trace.meta
        self.synthetic = trace.synthetic

    def site_input(self, site: Site) -> np.ndarray:
        x = self._trace.site_input(site)
        big_b = self._trace.n_sequences
        used = self._per_step * self.n_sequences
        return x.reshape(x.shape[0] // big_b, big_b, x.shape[1])[:, :used].reshape(-1, x.shape[1])

    def iter_sites(self) -> Iterator[tuple[Site, np.ndarray]]:
        return _iter_sites(self)


class PrefillChunkView:
    """Tokens ``[start, start + tokens)`` of sequence ``sequence`` of a prefill trace (one pass); ``kinds`` limits
    the sites (``lm_head`` runs on the prompt's last token only)."""

    phase = "prefill"
    n_sequences = 1

    def __init__(self, trace: Any, tokens: int, *, start: int = 0, sequence: int = 0, kinds: tuple[str, ...]):
        self._trace = trace
        self._rows = trace.n_tokens // trace.n_sequences
        self._r0 = sequence * self._rows + start
        self._r1 = self._r0 + tokens
        assert start + tokens <= self._rows
        self.sites: list[Site] = [s for s in trace.sites if s.kind in kinds]
        self.meta = trace.meta
        self.synthetic = trace.synthetic

    def site_input(self, site: Site) -> np.ndarray:
        return self._trace.site_input(site)[self._r0 : self._r1]

    def iter_sites(self) -> Iterator[tuple[Site, np.ndarray]]:
        return _iter_sites(self)


def _iter_sites(view: DecodeBatchView | PrefillChunkView) -> Iterator[tuple[Site, np.ndarray]]:
    """The view's sites in trace order with their inputs; sites in a row that read one input share one read."""
    last: tuple[str, np.ndarray] | None = None
    for s in view.sites:
        if last is None or last[0] != s.input_id:
            last = (s.input_id, view.site_input(s))
        yield s, last[1]
