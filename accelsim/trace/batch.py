"""The B sequences of a batch trace: windows of one text, or prompts read from a file (no torch).

Every sequence has the same length ``L`` (no padding, so no masked rows enter a trace):

* **windows**: the text is tokenized once. If the tokenizer adds special tokens at the start (found by
  tokenizing the empty string) or the model asks for a BOS token that the tokenizer does not add (Gemma's
  the tracer's ``bos`` argument), every window starts with them, followed by
  ``L - len(specials)`` text tokens from body token ``offset + b * stride``. ``stride`` defaults to those
  ``L - len(specials)`` tokens: consecutive, disjoint windows. Sequence 0 at offset 0 is exactly the
  start of the tokenized text, as in a batch-1 trace.
* **prompts**: a UTF-8 file with one prompt per non-empty line, each tokenized on its own (specials and
  the model's BOS included); the first ``L`` tokens of each of the first ``B`` prompts are used, so each
  must have ``L``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class BatchInputError(ValueError):
    """Bad ``--batch``, ``--stride`` or ``--prompt-file``: one line naming the option."""


@dataclass(frozen=True)
class Sequences:
    """``ids[b]`` is sequence ``b``'s ``length`` token ids; ``offsets[b]`` its first body token (windows) or
    its line number in the prompt file (prompts, counted from 1)."""

    ids: list[list[int]]
    offsets: list[int]
    source: str  # "text windows" | "prompt file"
    stride: int | None
    specials: list[int]


def special_prefix(tokenize: Callable[[str], list[int]], bos: int | None = None) -> list[int]:
    """Token ids every sequence starts with: those the tokenizer adds to every text (found on the empty
    string), preceded by ``bos`` when the model asks for it and the tokenizer does not add it."""
    own = list(tokenize(""))
    return own if bos is None or own[:1] == [bos] else [bos, *own]


def text_windows(
    ids: Sequence[int],
    specials: Sequence[int],
    *,
    batch: int,
    length: int,
    offset: int,
    stride: int | None,
    text_label: str,
) -> Sequences:
    """``batch`` windows of ``length`` tokens from the tokenized text ``ids`` (which starts with ``specials``
    when the tokenizer adds them)."""
    if batch < 1:
        raise BatchInputError(f"--batch {batch}: must be >= 1")
    p = len(specials)
    body = list(ids[p:]) if list(ids[:p]) == list(specials) else list(ids)
    per = length - p
    if per < 1:
        raise BatchInputError(f"--tokens/--prompt-tokens {length}: must exceed the {p} special token(s) per sequence")
    step = per if stride is None else stride
    if step < 1:
        raise BatchInputError(f"--stride {step}: must be >= 1")
    need = offset + (batch - 1) * step + per
    if need > len(body):
        fits = (len(body) - offset - per) // step + 1 if len(body) >= offset + per else 0
        raise BatchInputError(
            f"--batch {batch}: text {text_label!r} has {len(body)} tokens; {batch} windows of {length} tokens from "
            f"offset {offset}, stride {step} need {need} (at most {max(fits, 0)} fit)"
        )
    offsets = [offset + b * step for b in range(batch)]
    return Sequences(
        ids=[list(specials) + body[o : o + per] for o in offsets],
        offsets=offsets,
        source="text windows",
        stride=step,
        specials=list(specials),
    )


def read_prompts(path: str | Path) -> list[str]:
    """The non-empty lines of a UTF-8 prompt file (a one-line error naming ``--prompt-file`` otherwise)."""
    p = Path(path)
    if not p.is_file():
        raise BatchInputError(f"--prompt-file {str(p)!r}: no such file")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise BatchInputError(f"--prompt-file {str(p)!r}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    prompts = [line for line in lines if line.strip()]
    if not prompts:
        raise BatchInputError(f"--prompt-file {str(p)!r}: holds no prompt (one prompt per non-empty line)")
    return prompts


def prompt_sequences(
    path: str | Path,
    tokenize: Callable[[str], list[int]],
    *,
    batch: int | None,
    length: int,
    bos: int | None = None,
) -> Sequences:
    """The first ``length`` tokens of each of the first ``batch`` prompts of ``path`` (all, if ``None``),
    each starting with ``special_prefix(tokenize, bos)``."""
    prompts = read_prompts(path)
    b = len(prompts) if batch is None else batch
    if b < 1:
        raise BatchInputError(f"--batch {b}: must be >= 1")
    if b > len(prompts):
        raise BatchInputError(f"--batch {b}: --prompt-file {str(path)!r} holds only {len(prompts)} prompt(s)")
    specials = special_prefix(tokenize, bos)
    extra = specials[: len(specials) - len(list(tokenize("")))]  # the BOS the tokenizer does not add
    ids, lines = [], []
    line_no = [i + 1 for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()) if line.strip()]
    for i in range(b):
        toks = extra + list(tokenize(prompts[i]))
        if len(toks) < length:
            raise BatchInputError(
                f"--prompt-file {str(path)!r}: prompt on line {line_no[i]} has {len(toks)} tokens; "
                f"every sequence needs {length} (--tokens for prefill, --prompt-tokens for decode)"
            )
        ids.append(toks[:length])
        lines.append(line_no[i])
    return Sequences(ids=ids, offsets=lines, source="prompt file", stride=None, specials=specials)
