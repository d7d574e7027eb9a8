r"""Expert iteration: search with a verifier, distill the successes by SFT, repeat.

Each round runs a search on the **current** policy's generator (default: tree search with the
verifier's process check, ``sample_tree_search``), keeps the strings the verifier accepts, and
takes ``sft_steps`` supervised steps on them (``freeenergy.train.sft``, sampled mode, with the
successes as the stored demonstration set). The search supplies the information reweighting
lacks: it reaches accepted strings whose base mass is far below ``1 / budget``, which on-policy RL
never samples — a GRPO group in which every sample fails has all advantages zero (probability
$(1-p)^G$ for success mass $p$), so from the base GRPO does not move at all until some sample
succeeds, and the chance of that within ``M`` samples is $1 - (1-p)^M$.

Each round is diagnosed against the reference (``freeenergy.diagnose``): the behaviors that
entered the accessible support (``gained``, creation when the base had them as barriers) and
those that left it (``lost``).

``sequence_policy`` makes the policy: a ``freeenergy.train.Policy`` over the
``vocab ** length`` strings whose parameters are the logits of a finite-state model's tables
(small spaces: the training losses and metrics enumerate), together with the map from parameters
to the :class:`~freeenergy.sequences.SequenceModel` the search runs on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks
from .. import sequences as sq
from ..support import Diagnosis, diagnose
from .sequence_search import SequenceCost, sample_tree_search, string_index

__all__ = ["sequence_policy", "ExpertIteration", "expert_iteration"]


def sequence_policy(model: Any) -> tuple[Any, Callable[[Any], sq.SequenceModel]]:
    r"""A trainable policy over the strings of a finite-state model: ``(policy, to_model)``.

    The parameters are logits ``θ`` of the shape of ``model.logp`` (``(length, states, vocab)``),
    starting at the model's own log-probabilities; ``to_model(θ)`` is
    ``sequences.from_logits(θ, model.transition, model.initial)`` and ``policy.logprobs(θ)`` its
    enumeration over ``sequences.strings(vocab, length)`` (``vocab ** length`` behaviors). Tokens
    the model never emits stay at zero probability for every ``θ`` (their logits are masked).
    The parameters are shared across strings: an SFT step on one string moves every string that
    uses the same table entries.

    >>> import jax, jax.numpy as jnp
    >>> from freeenergy import sequences as sq
    >>> policy, to_model = sequence_policy(sq.iid(jnp.log(jnp.array([0.5, 0.5])), 2))
    >>> theta = policy.init(jax.random.key(0))
    >>> theta.shape  # (length, states, vocab)
    (2, 1, 2)
    >>> [round(float(x), 4) for x in jnp.exp(policy.logprobs(theta))]  # 00, 01, 10, 11
    [0.25, 0.25, 0.25, 0.25]
    """
    from ..train import flat_policy  # imported on use: optax loads only when training

    model = sq.check_model(model)
    sq.space_size(model.vocab, model.length)
    support = model.logp > -jnp.inf
    start = jnp.where(support, model.logp, 0.0)
    transition, initial = model.transition, model.initial

    def to_model(params):
        return sq.from_logits(jnp.where(support, params, -jnp.inf), transition, initial)

    def init(key):
        del key  # deterministic: the policy starts at the model
        return start

    def logprobs(params):
        return sq.enumerate(to_model(params))

    return flat_policy(init, logprobs), to_model


class ExpertIteration(NamedTuple):
    """Per-round record of ``expert_iteration`` (leading axis: rounds).

    * ``successes`` — accepted strings the round's search found (distilled by SFT);
    * ``cost`` — the round's search compute (``SequenceCost`` totals);
    * ``logq`` — ``(rounds, vocab ** length)`` the policy after the round;
    * ``diagnosis`` — ``Diagnosis`` of the step reference → policy after the round.
    """

    successes: jax.Array
    cost: SequenceCost
    logq: jax.Array
    diagnosis: Diagnosis


def expert_iteration(
    key: Any,
    trainer: Any,
    to_model: Callable[[Any], sq.SequenceModel],
    verifier: Any,
    *,
    rounds: int,
    searches: int,
    sft_steps: int,
    budget: Any,
    confidence: float = 0.5,
    search: Callable | None = None,
):
    """Search → SFT on the successes → repeat, for ``rounds`` rounds: ``(state, record)``.

    * ``trainer`` — a ``freeenergy.train`` trainer with a sampled-mode ``sft`` objective over the
      ``vocab ** length`` strings (e.g. ``make_trainer(policy, sft(), optax.adam(0.1))`` with
      ``policy, to_model = sequence_policy(base)``); its initial parameters are the reference;
    * ``to_model(params)`` — the generator the search runs on;
    * ``search(key, model, verifier, num) -> (tokens, SequenceCost)`` — default
      ``sample_tree_search``; it is run ``searches`` times per round;
    * ``budget`` / ``confidence`` — of the per-round ``diagnose`` (the largest ``k`` you evaluate
      pass@k at).

    Returns the final ``TrainState`` and an ``ExpertIteration`` record. Rounds in which the search
    finds nothing skip the SFT (there is nothing to distill). Record shapes: ``successes``
    ``(rounds,)``, ``cost`` fields ``(rounds,)``, ``logq`` ``(rounds, vocab ** length)`` (nats).

    The call (one round compiles a search and a training run, a few seconds), and the check
    that the trainer distils stored samples:

    >>> import jax, jax.numpy as jnp, optax
    >>> from freeenergy import sequences as sq
    >>> from freeenergy.train import make_trainer, sft
    >>> policy, to_model = sequence_policy(sq.iid(jnp.log(jnp.array([0.5, 0.5])), 2))
    >>> trainer = make_trainer(policy, sft(num_samples=4), optax.adam(0.3))
    >>> state, record = expert_iteration(  # doctest: +SKIP
    ...     jax.random.key(0), trainer, to_model, sq.exact_match(2, [1, 1]),
    ...     rounds=1, searches=4, sft_steps=5, budget=8)
    >>> record.logq.shape  # doctest: +SKIP
    (1, 4)
    >>> expert_iteration(  # doctest: +ELLIPSIS
    ...     jax.random.key(0), make_trainer(policy, sft("exact"), optax.adam(0.3)),
    ...     to_model, sq.exact_match(2, [1, 1]), rounds=1, searches=4, sft_steps=5, budget=8)
    Traceback (most recent call last):
    ...
    ValueError: `trainer` must train a sampled-mode SFT objective ...
    """
    from ..train import Batch, Trainer, check_batch

    key = _checks.key(key)
    if not isinstance(trainer, Trainer):
        raise TypeError(
            f"`trainer` must be a freeenergy.train.Trainer, got {type(trainer).__name__}."
        )
    objective = trainer.objective
    if objective is None or objective.name != "sft" or objective.mode != "sampled":
        raise ValueError(
            "`trainer` must train a sampled-mode SFT objective (`freeenergy.train.sft()`): expert "
            "iteration distils the search's successes as a stored demonstration set."
        )
    if not callable(to_model):
        raise TypeError("`to_model` must be a callable params -> SequenceModel.")
    rounds = _checks.integer(
        rounds, "rounds", minimum=1, maximum=2**16, why="each round is a search and a training run"
    )
    searches = _checks.integer(
        searches,
        "searches",
        minimum=1,
        maximum=2**20,
        why="the successes of a round are held in memory, length tokens each",
    )
    sft_steps = _checks.integer(
        sft_steps, "sft_steps", minimum=1, maximum=2**24, why="one optimizer step each"
    )
    search = sample_tree_search if search is None else search
    if not callable(search):
        raise TypeError(
            "`search` must be a callable (key, model, verifier, num) -> (tokens, cost)."
        )

    key_init, key_rounds = jax.random.split(key)
    state = trainer.init(key_init)
    logp0 = trainer.policy.logprobs(state.reference)
    model0 = to_model(state.params)
    vocab, length = model0.vocab, model0.length
    if logp0.shape != (vocab**length,):
        raise ValueError(
            f"the policy has {logp0.shape[-1]} behaviors but `to_model` gives strings of vocab "
            f"{vocab} and length {length} ({vocab**length}); build both with sequence_policy."
        )
    if not np.allclose(np.asarray(sq.enumerate(model0)), np.asarray(logp0), atol=1e-6):
        raise ValueError(
            "`trainer.policy.logprobs(params)` differs from the enumeration of "
            "`to_model(params)`: the policy and the search must describe the same generator "
            "(build both with sequence_policy)."
        )
    accepted_flat = sq.accepts(verifier, sq.strings(vocab, length))
    reward = jnp.where(accepted_flat, 1.0, 0.0).astype(logp0.dtype)

    @jax.jit
    def distill(state, keys, batch):
        return jax.lax.scan(lambda s, k: trainer.step(k, s, batch), state, keys)

    records = []
    for key_round in jax.random.split(key_rounds, rounds):
        key_search, key_sft = jax.random.split(key_round)
        tokens, cost = search(key_search, to_model(state.params), verifier, searches)
        ok = np.asarray(sq.accepts(verifier, tokens))
        found = np.asarray(string_index(tokens, vocab))[ok]
        if found.size:
            # the demonstrations, and their empirical distribution as the SFT target
            counts = np.bincount(found, minlength=logp0.shape[-1]).astype(np.float64)
            with np.errstate(divide="ignore"):
                data = jnp.asarray(np.log(counts / counts.sum()), logp0.dtype)
            batch = check_batch(trainer, Batch(reward, 0.0, data, jnp.asarray(found)))
            state, _ = distill(state, jax.random.split(key_sft, sft_steps), batch)
        logq = trainer.policy.logprobs(state.params)
        records.append(
            ExpertIteration(
                successes=jnp.asarray(found.size),
                cost=SequenceCost(*(jnp.asarray(c) for c in cost)),
                logq=logq,
                diagnosis=diagnose(logp0, logq, budget, confidence),
            )
        )
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *records)
    return state, stacked
