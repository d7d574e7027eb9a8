"""The contract every public call must meet, checked on any input, and how calls are run.

A call either

* **returns** values with no NaN anywhere (``±inf`` only where the function documents it), or
* **raises** ``ValueError``/``TypeError`` whose message names one of the function's arguments in
  backticks (```beta```, ```verifier.transition```, ...).

Anything else fails: another exception type, a NaN in the output, a message that names no
argument, a call that runs past its time limit (a hang), or a process that dies (an abort).

In-process calls run under a wall-clock alarm (``SIGALRM``); a call that may abort the interpreter
(a huge size reaching XLA) runs in a child process instead: :func:`run_isolated` starts one child
for a batch of such calls, which reports per call, and starts a new child after one that dies or
hangs, so one bad call costs one timeout and the rest of the batch still runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Wall-clock limit of one call, in seconds. A call on the small inputs of the fuzz suite takes
#: milliseconds, but the first call of a training loop or a search compiles it, which takes up
#: to ~20 s on a busy 2-core machine; a call past this limit hangs.
CALL_LIMIT = 60.0
#: The same limit for a call in the child process (huge sizes, which must be refused before any
#: work starts; a size that is legal gets the same time as in-process).
ISOLATED_LIMIT = 60.0

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` swallows it."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one call did: ``kind`` is ``ok``, ``error`` (a clear error) or a failure kind."""

    kind: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.kind in ("ok", "error")

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


FAILURES = ("nan", "inf", "raw", "unnamed", "hang", "abort", "wrong")


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` in the main thread if the block runs past ``seconds``."""

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _float_leaves(out: Any, path: str = "out", seen: set | None = None):
    """Every floating-point array in ``out`` (pytrees, NamedTuples, dataclasses), with a path."""
    seen = set() if seen is None else seen
    if id(out) in seen:
        return
    seen.add(id(out))
    if isinstance(out, (str, bytes, type(None), bool, int)) or callable(out):
        return
    if isinstance(out, float):
        yield path, np.asarray(out)
        return
    if isinstance(out, dict):
        for k, v in out.items():
            yield from _float_leaves(v, f"{path}[{k!r}]", seen)
        return
    if isinstance(out, (list, tuple)):
        names = getattr(out, "_fields", None)
        for i, v in enumerate(out):
            yield from _float_leaves(v, f"{path}.{names[i]}" if names else f"{path}[{i}]", seen)
        return
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        for f in dataclasses.fields(out):
            yield from _float_leaves(getattr(out, f.name), f"{path}.{f.name}", seen)
        return
    if hasattr(out, "__array__") or hasattr(out, "dtype"):
        try:
            arr = np.asarray(out)
        except Exception:  # a PRNG key array or another opaque leaf: nothing numeric to check
            return
        if np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.complexfloating):
            yield path, arr
        return
    # Any other object (an optimizer state, a NamedTuple-like pytree of JAX's): its pytree leaves.
    try:
        import jax

        leaves = jax.tree_util.tree_leaves(out)
    except Exception:
        return
    if len(leaves) == 1 and leaves[0] is out:
        return
    for i, leaf in enumerate(leaves):
        yield from _float_leaves(leaf, f"{path}<leaf {i}>", seen)


def check_output(out: Any, inf: str = "any") -> Outcome:
    """No NaN anywhere; ``inf`` says which infinities are documented: ``any``, ``-`` (only
    ``-inf``, e.g. log-probabilities), ``+`` (only ``+inf``) or ``none``."""
    for path, arr in _float_leaves(out):
        if np.iscomplexobj(arr):
            return Outcome("wrong", f"{path} is complex")
        if np.isnan(arr).any():
            return Outcome("nan", f"{path} holds NaN ({_short(arr)})")
        if inf != "any":
            if inf in ("+", "none") and (arr == -np.inf).any():
                return Outcome("inf", f"{path} holds -inf, which is not documented")
            if inf in ("-", "none") and (arr == np.inf).any():
                return Outcome("inf", f"{path} holds +inf, which is not documented")
    return Outcome("ok")


def _short(arr: np.ndarray) -> str:
    text = np.array2string(np.asarray(arr).ravel()[:8], precision=4)
    return text if arr.size <= 8 else text[:-1] + " ...]"


def parameter_names(fn: Callable) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def names_an_argument(message: str, names: list[str]) -> bool:
    """True when the message names one of ``names`` in backticks (```name```, ```name.field```,
    ```name[0]```, ```name = 3```)."""
    return any(re.search(r"`" + re.escape(n) + r"(`|\.|\[|\s*=|\(| )", message) for n in names)


def classify_error(err: BaseException, names: list[str]) -> Outcome:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")[:400]
    if isinstance(err, Hang):
        return Outcome("hang", str(err))
    if not isinstance(err, (ValueError, TypeError)):
        return Outcome("raw", text)
    if not names_an_argument(str(err), names):
        return Outcome("unnamed", text)
    return Outcome("error", text)


def call(
    fn: Callable,
    kwargs: dict,
    *,
    inf: str = "any",
    names: list[str] | None = None,
    limit: float = CALL_LIMIT,
    post: Callable[[Any], Any] | None = None,
) -> Outcome:
    """Call ``fn(**kwargs)`` in this process under the time limit and judge it by the contract.

    ``post`` turns the result into what is checked (e.g. the log-probabilities of a returned
    sequence model); ``names`` are the argument names a message may cite (default: ``fn``'s).
    """
    names = parameter_names(fn) if names is None else names
    try:
        with time_limit(limit):
            out = fn(**kwargs)
            if post is not None:
                out = post(out)
            outcome = check_output(out, inf)
    except (Hang, Exception) as err:
        return classify_error(err, names)
    return outcome


# ----------------------------------------------------------------------------- isolated batches
_CHILD = """
import json, sys, traceback
sys.path.insert(0, {tests!r})
import jax
jax.config.update("jax_enable_x64", True)
import fuzzing, fuzz_registry
for line in sys.stdin:
    case = line.strip()
    if not case:
        continue
    print("START " + case, flush=True)
    try:
        outcome = fuzz_registry.run_case(case)
    except BaseException as err:  # a bug in the case itself, reported, not hidden
        outcome = fuzzing.Outcome("raw", "case failed to run: " + repr(err))
    print("DONE " + json.dumps([case, outcome.kind, outcome.detail]), flush=True)
"""


def run_isolated(cases: list[str], *, limit: float = ISOLATED_LIMIT) -> dict[str, Outcome]:
    """Run named cases (see ``fuzz_registry.run_case``) in child processes, per-case timeouts.

    One child runs the whole batch; when a case kills it (``abort``) or runs past ``limit``
    (``hang``, the child is then killed), that case is recorded and a new child continues with
    the rest.
    """
    results: dict[str, Outcome] = {}
    pending = list(cases)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]))
    env.setdefault("XLA_FLAGS", "")
    env["JAX_PLATFORMS"] = "cpu"
    while pending:
        errors = tempfile.TemporaryFile()
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD.format(tests=str(TESTS))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
            cwd=str(REPO),
        )
        child.stdin.write("\n".join(pending) + "\n")
        child.stdin.close()
        current, started = None, time.monotonic()
        startup = 60.0  # importing JAX in a busy machine
        buffer = ""
        while True:
            wait = (startup if current is None else limit) - (time.monotonic() - started)
            ready, _, _ = select.select([child.stdout], [], [], max(wait, 0.0))
            if not ready:
                child.kill()
                child.wait()
                if current is None:
                    raise RuntimeError("the fuzz child process did not start a case in time")
                results[current] = Outcome("hang", f"no answer within {limit:g} s")
                break
            chunk = os.read(child.stdout.fileno(), 65536).decode()
            if not chunk:  # the child exited
                code = child.wait()
                if current is not None:
                    errors.seek(0)
                    err = errors.read().decode(errors="replace")[-600:].replace("\n", " | ")
                    results[current] = Outcome(
                        "abort",
                        f"process died (exit code {code}, signal "
                        f"{-code if code < 0 else 'none'}): {err}",
                    )
                break
            buffer += chunk
            while "\n" in buffer:
                line, buffer = buffer.split("\n", 1)
                if line.startswith("START "):
                    current, started = line[6:], time.monotonic()
                elif line.startswith("DONE "):
                    case, kind, detail = json.loads(line[5:])
                    results[case] = Outcome(kind, detail)
                    current, started = None, time.monotonic()
                    startup = limit
        pending = [c for c in pending if c not in results]
        if child.poll() is None:
            child.kill()
            child.wait()
        errors.close()
    return results


def describe(value: Any) -> str:
    """A short, stable label of a (bad) value, for test ids and notes."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"array{tuple(value.shape)}:{value.dtype}"
    r = repr(value)
    return r if len(r) <= 30 else r[:27] + "..."
