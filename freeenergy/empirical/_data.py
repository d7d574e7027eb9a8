"""Evaluation data: per-prompt sample counts (``Counts``), per-sample records (``Samples``), and
``load`` for CSV / JSONL files.

Everything here is host data (read-only NumPy arrays and tuples): it is what a user's evaluation
produced, validated once at the boundary; the estimators turn it into JAX arrays.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_PROMPTS",
    "MAX_RECORDS",
    "MAX_SAMPLES_PER_PROMPT",
    "Counts",
    "Samples",
    "load",
]

#: Largest number of prompts a ``Counts`` may hold.
MAX_PROMPTS = 10**7
#: Largest number of samples per prompt (``n``); pass@k stays accurate far beyond it.
MAX_SAMPLES_PER_PROMPT = 10**9
#: Largest file ``load`` reads (1 GiB).
MAX_FILE_BYTES = 1 << 30
#: Largest number of data lines (CSV rows or JSONL samples) ``load`` reads.
MAX_RECORDS = 10**7

#: Field names of a JSONL sample record.
JSONL_FIELDS = ("prompt", "correct", "answer", "logprob_base", "logprob_trained")


def _describe(x: Any) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    r = repr(x)
    return r if len(r) <= 60 else r[:57] + "..."


def _int_vector(x: Any, name: str) -> np.ndarray:
    """A 1-D array of whole numbers as read-only int64, or a TypeError/ValueError naming it."""
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be a 1-D array of integers, got {_describe(x)}.")
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a 1-D array of integers ({err}).") from None
    if arr.dtype == np.bool_:
        raise TypeError(f"`{name}` must hold integer counts, got booleans; count them first.")
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise TypeError(f"`{name}` must hold integer counts, got dtype {arr.dtype}.")
    if arr.ndim != 1:
        raise ValueError(
            f"`{name}` must be 1-D (one entry per prompt), got shape {arr.shape}; "
            f"flatten it or pass one prompt per entry."
        )
    if arr.size == 0:
        raise ValueError(f"`{name}` is empty; give at least one prompt.")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"`{name}` must hold whole numbers (sample counts), got {arr[i].item()!r} "
                f"at prompt {i}."
            )
        if np.abs(arr).max() > MAX_SAMPLES_PER_PROMPT:
            i = int(np.argmax(np.abs(arr)))
            raise ValueError(
                f"`{name}` = {arr[i].item()!r} at prompt {i} exceeds the limit of "
                f"{MAX_SAMPLES_PER_PROMPT} samples per prompt."
            )
    out = arr.astype(np.int64)
    out.flags.writeable = False
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class Samples:
    """Per-sample records behind a ``Counts`` (what a JSONL file carries), flat over samples.

    Fields (``S`` = total number of samples):

    * ``prompt_index`` — ``(S,)`` int64, the index of the sample's prompt in ``Counts``;
    * ``correct`` — ``(S,)`` bool, the verifier's judgement;
    * ``answer`` — a tuple of ``S`` strings (the extracted final answer), or ``None``;
    * ``logprob_base`` / ``logprob_trained`` — ``(S,)`` float64 log-probabilities (nats) of the
      whole sample under the base and the trained model, or ``None``. ``-inf`` is legal.

    >>> s = Samples([0, 0, 1], [True, False, False], answer=["12", "13", "12"])
    >>> s.size, s.correct.tolist()
    (3, [True, False, False])
    """

    prompt_index: np.ndarray
    correct: np.ndarray
    answer: tuple[str, ...] | None = None
    logprob_base: np.ndarray | None = None
    logprob_trained: np.ndarray | None = None

    def __post_init__(self) -> None:
        idx = _int_vector(self.prompt_index, "prompt_index")
        if idx.min() < 0:
            raise ValueError(f"`prompt_index` must be >= 0, got {int(idx.min())}.")
        s = idx.size
        correct = np.asarray(self.correct)
        if correct.shape != (s,):
            raise ValueError(
                f"`correct` has shape {correct.shape} but `prompt_index` has {s} samples."
            )
        if correct.dtype != np.bool_:
            if not np.all((correct == 0) | (correct == 1)):
                raise TypeError("`correct` must be booleans (True = the verifier accepted).")
            correct = correct.astype(bool)
        correct = np.array(correct, dtype=bool)
        correct.flags.writeable = False
        object.__setattr__(self, "prompt_index", idx)
        object.__setattr__(self, "correct", correct)
        if self.answer is not None:
            answer = tuple(self.answer)
            if len(answer) != s:
                raise ValueError(f"`answer` has {len(answer)} entries but there are {s} samples.")
            for i, a in enumerate(answer):
                if not isinstance(a, str):
                    raise TypeError(f"`answer` must hold strings, got {_describe(a)} at {i}.")
            object.__setattr__(self, "answer", answer)
        for name in ("logprob_base", "logprob_trained"):
            v = getattr(self, name)
            if v is None:
                continue
            arr = np.array(v, dtype=np.float64)
            if arr.shape != (s,):
                raise ValueError(f"`{name}` has shape {arr.shape} but there are {s} samples.")
            bad = np.isnan(arr) | (arr > 0)
            if bad.any():
                i = int(np.argmax(bad))
                raise ValueError(
                    f"`{name}` must hold log-probabilities (real numbers <= 0, or -inf), "
                    f"got {arr[i].item()!r} at sample {i}."
                )
            arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    @property
    def size(self) -> int:
        """The number of samples ``S``."""
        return int(self.prompt_index.size)


@dataclasses.dataclass(frozen=True, eq=False)
class Counts:
    """Per-prompt sample counts of one model: ``n[i]`` samples of prompt ``i``, ``correct[i]`` of
    them accepted by the verifier.

    Fields:

    * ``n`` — ``(P,)`` int64, ``1 <= n <= MAX_SAMPLES_PER_PROMPT``;
    * ``correct`` — ``(P,)`` int64, ``0 <= correct <= n``;
    * ``prompts`` — a tuple of ``P`` distinct prompt ids (strings or ints), or ``None`` (then two
      ``Counts`` are aligned by position);
    * ``samples`` — the per-sample records (``Samples``) when known (``load`` of a JSONL file),
      else ``None``; its counts must agree with ``n`` and ``correct``.

    Arrays are stored read-only. Integral floats are accepted and converted.

    >>> c = Counts([4, 4], [1, 0], prompts=["a", "b"])
    >>> c.n.tolist(), c.correct.tolist(), c.num_prompts
    ([4, 4], [1, 0], 2)
    >>> c.rate.tolist()
    [0.25, 0.0]
    """

    n: np.ndarray
    correct: np.ndarray
    prompts: tuple[str | int, ...] | None = None
    samples: Samples | None = None

    def __post_init__(self) -> None:
        n = _int_vector(self.n, "n")
        correct = _int_vector(self.correct, "correct")
        if n.size > MAX_PROMPTS:
            raise ValueError(f"`n` has {n.size} prompts, above the limit of {MAX_PROMPTS}.")
        if correct.shape != n.shape:
            raise ValueError(
                f"`correct` has {correct.size} prompts but `n` has {n.size}; give one count "
                "per prompt in each."
            )
        if n.min() < 1 or n.max() > MAX_SAMPLES_PER_PROMPT:
            i = int(np.argmax((n < 1) | (n > MAX_SAMPLES_PER_PROMPT)))
            raise ValueError(
                f"`n` must be between 1 and {MAX_SAMPLES_PER_PROMPT} samples per prompt, "
                f"got {int(n[i])} at prompt {i}."
            )
        bad = (correct < 0) | (correct > n)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"`correct` must satisfy 0 <= correct <= n, got correct = {int(correct[i])} "
                f"with n = {int(n[i])} at prompt {i}."
            )
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "correct", correct)
        if self.prompts is not None:
            if isinstance(self.prompts, (str, bytes)):
                raise TypeError(
                    "`prompts` must be a sequence of prompt ids, got a single string; "
                    "wrap it in a list."
                )
            prompts = tuple(self.prompts)
            if len(prompts) != n.size:
                raise ValueError(f"`prompts` has {len(prompts)} ids but `n` has {n.size} prompts.")
            seen: dict[Any, int] = {}
            for i, p in enumerate(prompts):
                if isinstance(p, bool) or not isinstance(p, (str, numbers.Integral)):
                    raise TypeError(
                        f"`prompts` must hold strings or ints, got {_describe(p)} at {i}."
                    )
                p = p if isinstance(p, str) else int(p)
                if p in seen:
                    raise ValueError(
                        f"`prompts` has the id {p!r} twice (at {seen[p]} and {i}); ids must be "
                        "unique (aggregate the samples of one prompt into one entry)."
                    )
                seen[p] = i
            object.__setattr__(self, "prompts", tuple(seen))
        if self.samples is not None:
            if not isinstance(self.samples, Samples):
                got = _describe(self.samples)
                raise TypeError(f"`samples` must be a Samples record, got {got}.")
            s = self.samples
            if s.prompt_index.max() >= n.size:
                raise ValueError(
                    f"`samples.prompt_index` refers to prompt {int(s.prompt_index.max())} "
                    f"but there are {n.size} prompts."
                )
            sn = np.bincount(s.prompt_index, minlength=n.size)
            sc = np.bincount(s.prompt_index, weights=s.correct, minlength=n.size)
            if not (np.array_equal(sn, n) and np.array_equal(sc.astype(np.int64), correct)):
                raise ValueError(
                    "`samples` do not agree with `n` and `correct` (per-prompt sample and "
                    "correct counts differ); build Counts from the samples with "
                    "`Counts.from_samples`."
                )

    @property
    def num_prompts(self) -> int:
        """The number of prompts ``P``."""
        return int(self.n.size)

    @property
    def rate(self) -> np.ndarray:
        """``(P,)`` float64 estimated success probabilities ``correct / n``."""
        return self.correct / self.n

    @classmethod
    def from_samples(cls, prompts: Sequence[str | int], samples: Samples) -> Counts:
        """The counts of per-sample records: ``prompts[i]`` is the id of ``prompt_index == i``.

        >>> s = Samples(prompt_index=[0, 0, 1], correct=[True, False, False])
        >>> Counts.from_samples(["a", "b"], s).correct.tolist()
        [1, 0]
        """
        if not isinstance(samples, Samples):
            raise TypeError(f"`samples` must be a Samples record, got {_describe(samples)}.")
        p = len(prompts)
        n = np.bincount(samples.prompt_index, minlength=p)
        if n.size > p:
            raise ValueError(
                f"`samples.prompt_index` refers to prompt {n.size - 1} but `prompts` has {p} ids."
            )
        c = np.bincount(samples.prompt_index, weights=samples.correct, minlength=p)
        if (n == 0).any():
            i = int(np.argmax(n == 0))
            raise ValueError(f"prompt {prompts[i]!r} has no samples; every prompt needs n >= 1.")
        return cls(n, c.astype(np.int64), prompts=tuple(prompts), samples=samples)


# ----------------------------------------------------------------------------- files
class _FileError(ValueError):
    pass


def _err(path: Path, line: int, msg: str) -> ValueError:
    return ValueError(f"{path}, line {line}: {msg}")


def _shown(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, float) or math.isfinite(v) else repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _parse_int(path: Path, line: int, field: str, text: str) -> int:
    t = text.strip()
    try:
        v = int(t)
    except ValueError:
        raise _err(path, line, f'field "{field}" must be a whole number, got "{t}"') from None
    return v


def _load_csv(path: Path, lines: list[str]) -> Counts:
    rows = list(csv.reader(lines))
    header_at = next((i for i, r in enumerate(rows) if any(c.strip() for c in r)), None)
    if header_at is None:
        raise ValueError(f"{path}: the file is empty; a CSV needs the header `prompt,n,correct`.")
    header = [c.strip() for c in rows[header_at]]
    if sorted(header) != ["correct", "n", "prompt"]:
        raise _err(
            path,
            header_at + 1,
            f"the header must name the columns prompt, n, correct (in any order), got "
            f"{','.join(header)}",
        )
    col = {name: header.index(name) for name in header}
    prompts: list[str] = []
    ns: list[int] = []
    cs: list[int] = []
    first_line: dict[str, int] = {}
    for i, row in enumerate(rows[header_at + 1 :], start=header_at + 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != 3:
            raise _err(path, i, f"expected 3 fields (prompt, n, correct), got {len(row)}")
        prompt = row[col["prompt"]].strip()
        if not prompt:
            raise _err(path, i, 'field "prompt" is empty; give each prompt an id')
        n = _parse_int(path, i, "n", row[col["n"]])
        c = _parse_int(path, i, "correct", row[col["correct"]])
        if not 1 <= n <= MAX_SAMPLES_PER_PROMPT:
            limit = MAX_SAMPLES_PER_PROMPT
            raise _err(path, i, f'field "n" must be between 1 and {limit}, got {n}')
        if not 0 <= c <= n:
            raise _err(path, i, f'field "correct" must be between 0 and n = {n}, got {c}')
        if prompt in first_line:
            raise _err(
                path,
                i,
                f'prompt "{prompt}" appears again (first on line {first_line[prompt]}); '
                "a CSV has one row per prompt with its total counts",
            )
        first_line[prompt] = i
        prompts.append(prompt)
        ns.append(n)
        cs.append(c)
    if not prompts:
        raise ValueError(f"{path}: no data rows after the header; nothing to estimate from.")
    return Counts(np.array(ns), np.array(cs), prompts=tuple(prompts))


def _load_jsonl(path: Path, lines: list[str]) -> Counts:
    index: dict[Any, int] = {}
    prompt_index: list[int] = []
    correct: list[bool] = []
    optional: dict[str, list] = {"answer": [], "logprob_base": [], "logprob_trained": []}
    present: dict[str, int | None] = dict.fromkeys(optional)  # line where first seen / absent
    first_line: int | None = None
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as err:
            raise _err(path, i, f"not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(rec, dict):
            raise _err(path, i, f"expected a JSON object (one sample), got {_shown(rec)}")
        for field in ("prompt", "correct"):
            if field not in rec:
                raise _err(path, i, f'missing field "{field}"')
        prompt = rec["prompt"]
        if isinstance(prompt, bool) or not isinstance(prompt, (str, int)):
            got = _shown(prompt)
            raise _err(path, i, f'field "prompt" must be a string or an integer, got {got}')
        if isinstance(prompt, str) and not prompt:
            raise _err(path, i, 'field "prompt" is empty; give each prompt an id')
        ok = rec["correct"]
        if not isinstance(ok, bool):
            raise _err(path, i, f'field "correct" must be true or false, got {_shown(ok)}')
        is_first = first_line is None
        if is_first:
            first_line = i
        for field, values in optional.items():
            has = field in rec and rec[field] is not None
            if is_first:
                present[field] = i if has else None
            elif has != (present[field] is not None):
                where = f"line {first_line}"
                raise _err(
                    path,
                    i,
                    f'field "{field}" is {"present" if has else "missing"} here but '
                    f"{'missing' if has else 'present'} on {where}; give it on every sample "
                    "or on none",
                )
            if not has:
                continue
            v = rec[field]
            if field == "answer":
                if not isinstance(v, str):
                    raise _err(path, i, f'field "answer" must be a string, got {_shown(v)}')
            else:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise _err(path, i, f'field "{field}" must be a number, got {_shown(v)}')
                v = float(v)
                if math.isnan(v) or v > 0:
                    raise _err(
                        path,
                        i,
                        f'field "{field}" must be a log-probability (<= 0, or -Infinity), '
                        f"got {_shown(v)}",
                    )
            values.append(v)
        if len(prompt_index) >= MAX_RECORDS:
            raise _err(path, i, f"more than {MAX_RECORDS} samples; split the file")
        prompt_index.append(index.setdefault(prompt, len(index)))
        correct.append(ok)
    if not prompt_index:
        raise ValueError(f"{path}: the file has no samples (no JSON lines); nothing to estimate.")
    samples = Samples(
        prompt_index=np.array(prompt_index, dtype=np.int64),
        correct=np.array(correct, dtype=bool),
        answer=tuple(optional["answer"]) if present["answer"] is not None else None,
        logprob_base=(
            np.array(optional["logprob_base"]) if present["logprob_base"] is not None else None
        ),
        logprob_trained=(
            np.array(optional["logprob_trained"])
            if present["logprob_trained"] is not None
            else None
        ),
    )
    return Counts.from_samples(tuple(index), samples)


def load(path: str | os.PathLike, *, format: str | None = None) -> Counts:
    """Read evaluation results into ``Counts``.

    Two formats, chosen by ``format`` (``"csv"`` or ``"jsonl"``) or else by the file suffix
    (``.csv``; ``.jsonl`` / ``.ndjson``):

    * **CSV**, one row per prompt with the header ``prompt,n,correct`` (columns in any order):
      ``n`` samples, ``correct`` of them accepted. Each prompt appears once.
    * **JSONL**, one JSON object per *sample*: ``{"prompt": str|int, "correct": true|false}``
      with the optional fields ``"answer"`` (the extracted final answer, a string),
      ``"logprob_base"`` and ``"logprob_trained"`` (the sample's total log-probability in nats
      under the base and the trained model; ``-Infinity`` is legal). An optional field is given
      on every sample or on none; other fields are ignored. Samples are aggregated per prompt in
      first-seen order and kept in ``Counts.samples``.

    A UTF-8 byte-order mark and CRLF line ends are accepted; blank lines are skipped. Files above
    ``MAX_FILE_BYTES`` or with more than ``MAX_RECORDS`` lines are refused. Every error names
    the file, the line and the field, e.g.
    ``runs/base.jsonl, line 17: field "correct" must be true or false, got "yes"``.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "base.csv"
    >>> _ = p.write_text("prompt,n,correct\\nq1,8,3\\nq2,8,0\\n")
    >>> c = load(p)
    >>> c.prompts, c.n.tolist(), c.correct.tolist()
    (('q1', 'q2'), [8, 8], [3, 0])
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a file path (str or Path), got {_describe(path)}.")
    path = Path(path)
    if format is None:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            format = "csv"
        elif suffix in (".jsonl", ".ndjson"):
            format = "jsonl"
        else:
            raise ValueError(
                f"{path}: cannot tell the format from the suffix {suffix!r}; name the file "
                '.csv or .jsonl, or pass format="csv" or format="jsonl".'
            )
    if format not in ("csv", "jsonl"):
        raise ValueError(f'`format` must be "csv" or "jsonl", got {format!r}.')
    if not path.is_file():
        raise ValueError(f"{path}: no such file.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(
            f"{path}: the file has {size} bytes, above the limit of {MAX_FILE_BYTES}; "
            "split it or aggregate the samples into a CSV of per-prompt counts."
        )
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise _err(path, line, "the file is not valid UTF-8") from None
    lines = text.splitlines()
    if len(lines) > MAX_RECORDS + 1:
        raise ValueError(
            f"{path}: {len(lines)} lines, above the limit of {MAX_RECORDS} records; split it."
        )
    if format == "csv":
        return _load_csv(path, lines)
    return _load_jsonl(path, lines)
