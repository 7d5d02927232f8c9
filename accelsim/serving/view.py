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

    def iter_sites(self) -> Iterator[tuple[Site, np.ndarray]]:
        keep = {s.index for s in self.sites}
        big_b = self._trace.n_sequences
        used = self._per_step * self.n_sequences
        for site, x in self._trace.iter_sites():
            if site.index in keep:
                steps = x.shape[0] // big_b
                yield site, x.reshape(steps, big_b, x.shape[1])[:, :used].reshape(-1, x.shape[1])


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

    def iter_sites(self) -> Iterator[tuple[Site, np.ndarray]]:
        keep = {s.index for s in self.sites}
        for site, x in self._trace.iter_sites():
            if site.index in keep:
                yield site, x[self._r0 : self._r1]
