"""``nb2prod promote`` and ``nb2prod rollback``: move the ``champion`` alias, decided by figures.

A version becomes champion only when it passed its own gates (metric gates and the property
gate). With a champion in place, both bentos are scored on the challenger's evaluation data
(``monitoring/evaluation.parquet``, each bento in its own process: :mod:`nb2prod.bento.replay`),
and the challenger may be worse on the promotion metric by at most ``min_delta`` (notebook
setting ``promotion: {"metric": ..., "min_delta": ...}``). With ``--traffic`` the shadow replay
(:mod:`nb2prod.lifecycle.shadow`) must pass too. ``--force --reason`` overrides the checks,
and the reason is kept. Every move is an event in the registry's history
(:func:`nb2prod.lifecycle.history.record_event`): time, user, reason and the figures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nb2prod.builder.evaluation import lower_is_better
from nb2prod.errors import PromotionError

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"


@dataclass
class Decision:
    """What a promotion or rollback did, and the figures that decided it."""

    action: str  # "promote" or "rollback"
    name: str
    version: int
    previous: int | None
    forced: bool = False
    reason: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "name": self.name,
            "version": self.version,
            "previous": self.previous,
            "forced": self.forced,
            "reason": self.reason,
            "figures": self.figures,
        }


def promote(
    ref: str,
    *,
    traffic: Path | None = None,
    target: Path | None = None,
    force: bool = False,
    reason: str | None = None,
) -> Decision:
    """Make ``NAME:VERSION`` the champion; the champion it replaces becomes ``previous``.

    Raises:
        PromotionError: the version failed its own gates, is worse than the champion by more
            than the margin, failed the shadow check, or ``--force`` came without a reason.
        RegistryError: the name or version is unknown, or its bento is not in the store.
    """
    from nb2prod.lifecycle import registry

    name, number = registry.split_version(ref)
    if force and not (reason or "").strip():
        raise PromotionError(
            f'Promoting {ref} with --force needs --reason "...": the reason is recorded on the '
            "version.",
            version=ref,
        )
    version = registry.get_version(name, number)
    registry.resolve(f"{name}:{version.number}")  # its bento is in the store
    champion = registry.alias_version(name, CHAMPION)
    if champion is not None and champion.number == version.number:
        raise PromotionError(f"{name} version {version.number} is already the champion.")
    figures: dict[str, Any] = {"gates": version.gates, "property_gate": version.property_gate}
    if not force:
        _own_gates(name, version)
        if champion is not None:
            figures["comparison"] = compare(name, champion, version)
            if traffic is not None:
                figures["shadow"] = _shadow(name, champion, version, traffic, target)
    decision = Decision(
        action="promote",
        name=name,
        version=version.number,
        previous=champion.number if champion else None,
        forced=force,
        reason=reason,
        figures=figures,
    )
    if champion is not None:
        registry.set_alias(name, PREVIOUS, champion.number)
    registry.set_alias(name, CHAMPION, version.number)
    if CHALLENGER in version.aliases:
        registry.remove_alias(name, CHALLENGER)
    _record(decision)
    return decision


def rollback(name: str, *, reason: str | None = None) -> Decision:
    """Move ``champion`` back to ``previous`` in one step.

    ``previous`` then names the champion before that one, from the history, when it is known.

    Raises:
        PromotionError: there is no champion or no previous version to go back to.
    """
    from nb2prod.lifecycle import history, registry

    champion = registry.alias_version(name, CHAMPION)
    previous = registry.alias_version(name, PREVIOUS)
    if champion is None or previous is None:
        missing = CHAMPION if champion is None else PREVIOUS
        raise PromotionError(
            f"Cannot roll {name} back: it has no `{missing}` version (nb2prod versions {name}).",
            name=name,
        )
    registry.resolve(f"{name}:{previous.number}")  # its bento is still in the store
    before = _champion_before(history.history(name), previous.number)
    registry.set_alias(name, CHAMPION, previous.number)
    if before is not None and before != previous.number:
        registry.set_alias(name, PREVIOUS, before)
    else:
        registry.remove_alias(name, PREVIOUS)
    decision = Decision(
        action="rollback",
        name=name,
        version=previous.number,
        previous=champion.number,
        reason=reason,
        figures={"from": champion.number, "to": previous.number},
    )
    _record(decision)
    return decision


def _champion_before(events: list[dict[str, Any]], number: int) -> int | None:
    """The champion that ``number`` replaced when it was last promoted, from the history."""
    for event in reversed(events):
        if event.get("action") == "promote" and event.get("version") == number:
            return event.get("previous")
    return None


def _own_gates(name: str, version: Any) -> None:
    failed = [g for g in version.gates if g.get("passed") is False]  # None: a skipped slice
    if failed:
        gate = failed[0]
        raise PromotionError(
            f"{name} version {version.number} failed its own gate {gate.get('metric')} "
            f"({gate.get('value')}, not {gate.get('bound')}): it cannot be promoted without "
            '--force --reason "...".',
            version=version.number,
        )
    if version.property_gate != "passed":
        raise PromotionError(
            f"{name} version {version.number} was built without passing the property gate "
            f"({version.property_gate}): rebuild it without --no-gate, or promote with --force "
            '--reason "...".',
            version=version.number,
        )


def compare(name: str, champion: Any, challenger: Any) -> dict[str, Any]:
    """Score both bentos on the challenger's evaluation data; refuse a worse challenger.

    Raises:
        PromotionError: the challenger has no evaluation data, or it is worse than the
            champion on the promotion metric by more than ``min_delta``.
    """
    from nb2prod.bento.locate import open_bento
    from nb2prod.bento.replay import replay
    from nb2prod.builder.evaluation import metric_value, read_evaluation

    with open_bento(challenger.bento_tag) as bento:
        rows, outcomes = read_evaluation(bento)
        setting = bento.manifest.get("promotion") or {}
        metric = setting.get("metric") or _default_metric(bento.manifest)
        margin = float(setting.get("min_delta", 0.0))
    if rows is None:
        raise PromotionError(
            f"{name} version {challenger.number} has no evaluation data in its bento, so it "
            "cannot be compared with the champion: set the notebook's `evaluation` setting "
            '(e.g. {"X": "X_test", "y": "y_test"}) and rebuild.',
            version=challenger.number,
        )
    scored = {
        "champion": replay(champion.bento_tag, rows),
        "challenger": replay(challenger.bento_tag, rows),
    }
    both = scored["champion"].predictions.index.intersection(
        scored["challenger"].predictions.index
    )  # the rows both accept: a champion with a narrower schema rejects some
    if len(both) == 0:
        raise PromotionError(
            f"Champion version {champion.number} rejects every evaluation row of {name} version "
            f"{challenger.number}, so the two cannot be compared.",
            version=challenger.number,
        )
    values: dict[str, float] = {}
    for role, found in scored.items():
        answers = found.predictions.loc[both]
        proba = answers[found.proba_columns].to_numpy(dtype=float) if found.proba_columns else None
        values[role] = metric_value(
            metric,
            outcomes.loc[both].to_numpy(),
            answers["prediction"].to_numpy(),
            proba,
            found.classes,
        )
    sign = -1.0 if lower_is_better(metric) else 1.0
    delta = (values["challenger"] - values["champion"]) * sign
    figures = {
        "metric": metric,
        "champion": values["champion"],
        "challenger": values["challenger"],
        "min_delta": margin,
        "delta": delta,
        "rows": len(both),
        "champion_version": champion.number,
    }
    if delta < -margin:
        better = "lower" if sign < 0 else "higher"
        raise PromotionError(
            f"{name} version {challenger.number} is worse than champion version "
            f"{champion.number} on {metric} ({values['challenger']:.4g} against "
            f"{values['champion']:.4g}, {better} is better) by more than the margin "
            f"min_delta = {margin:g}, on {len(both)} evaluation rows.",
            version=challenger.number,
            figures=figures,
        )
    return figures


def _default_metric(manifest: dict[str, Any]) -> str:
    gates = [g["metric"] for g in manifest.get("gates", []) if "column" not in g]
    metrics = list(manifest.get("metrics", {}))
    if gates or metrics:
        return (gates or metrics)[0]
    raise PromotionError(
        f"{manifest.get('tag')}: no promotion metric: set the notebook's `promotion` setting "
        '(e.g. {"metric": "roc_auc", "min_delta": 0.01}).'
    )


def _shadow(
    name: str, champion: Any, challenger: Any, traffic: Path, target: Path | None
) -> dict[str, Any]:
    """The shadow check (``nb2prod shadow``'s default thresholds) on ``traffic``; its figures.

    Raises:
        PromotionError: a threshold did not hold; the sentence names each one.
    """
    from nb2prod.lifecycle.shadow import shadow

    report = shadow(champion.bento_tag, challenger.bento_tag, traffic, target=target)
    checks = [
        {"name": c.name, "value": c.value, "bound": c.bound, "passed": c.passed}
        for c in report.checks
    ]
    summary = {"traffic": str(traffic), "rows": report.rows, "compared": report.compared}
    summary["checks"] = checks
    if not report.passed:
        missed = "; ".join(
            f"{c['name']} is {_figure(c['value'])}, not {c['bound']}"
            for c in checks
            if not c["passed"]
        )
        raise PromotionError(
            f"{name} version {challenger.number} failed the shadow check against champion "
            f"version {champion.number} on {traffic}: {missed}.",
            version=challenger.number,
            figures=summary,
        )
    return summary


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _record(decision: Decision) -> None:
    """The move in the history; time and user are filled in there."""
    from nb2prod.lifecycle import history

    history.record_event(decision.name, decision.to_dict())
    log.info("%s %s version %s", decision.action, decision.name, decision.version)
