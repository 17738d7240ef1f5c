"""One evaluation: a checked request with its resolved prefetch in, a CDS Hooks response body out.

``Assessor`` holds what every evaluation shares (knowledge, rules, engine, codes) and is built once per worker
process; ``assess`` is the same for the live service and batch evaluation.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from cds_service.cards.render import CardContext, could_not_assess_card, render_cards
from cds_service.cards.taper import slow_reasons
from cds_service.clinical.facts import ClinicalCodes, RequestFacts, build_facts
from cds_service.clinical.knowledge.codelists import load_codelist
from cds_service.clinical.knowledge.model import Knowledge
from cds_service.clinical.ome import OmeResult, record_ome
from cds_service.clinical.record import PatientRecord
from cds_service.clinical.shape import apply_to_ome, check_record
from cds_service.clinical.taper import Regimen, TaperError, TaperPlan, plan_taper, regimens_from_ome
from cds_service.clinical.validation import validate_orders
from cds_service.resources import default_rules_dir
from cds_service.ruleset.engine import Engine, EngineError
from cds_service.ruleset.loader import load_rules
from cds_service.ruleset.model import RuleSet

log = logging.getLogger(__name__)
RELEVANT_CLASSES = frozenset({"opioid", "gabapentinoid", "benzodiazepine", "z-drug"})


def clinical_codes() -> ClinicalCodes:
    def codes(name: str) -> frozenset[str]:
        return frozenset(c.code for c in load_codelist(name))

    return ClinicalCodes(
        medication_review=codes("medication_review_codes"),
        cancer=codes("cancer_codes"),
        palliative=codes("palliative_codes"),
        pregnancy=codes("pregnancy_codes"),
        opioid_dependence=codes("opioid_dependence_codes"),
        copd=codes("copd_codes"),
        substance_misuse=codes("substance_misuse_codes"),
    )


@dataclass
class Evaluation:
    body: dict[str, Any]
    record: PatientRecord
    ome: OmeResult
    facts: RequestFacts | None
    fired: list[str]
    error: str | None = None


class Assessor:
    """Knowledge, rules, engine and codes for one process; ``assess`` evaluates one patient's record."""

    def __init__(self, knowledge: Knowledge, rule_set: RuleSet, profile: str = "uk") -> None:
        self.knowledge = knowledge
        self.rule_set = rule_set
        self.profile = profile
        self.engine = Engine(rule_set)
        self.codes = clinical_codes()
        review = next(c for c in load_codelist("medication_review_codes") if c.code == "182836005")
        self.review_code = (review.code, review.term)
        self.settings = {name: s.value for name, s in rule_set.settings.items()}

    @classmethod
    def from_paths(
        cls, knowledge: Knowledge, rules_dir: Path | None = None, settings_file: Path | None = None, profile: str = "uk"
    ) -> Assessor:
        return cls(knowledge, load_rules(rules_dir or default_rules_dir(), settings_file), profile)

    def taper(self, ome: OmeResult, facts: RequestFacts, today: date) -> tuple[TaperPlan, list[Regimen]] | None:
        """The suggested taper (mr-first; slow when the facts say so), or None when no plan can be made."""
        regimens, _problems = regimens_from_ome(ome, self.knowledge)
        reasons = slow_reasons(facts.summary, facts.risk_factors)
        try:
            plan = plan_taper(regimens, today, "mr-first", "slow" if reasons else "standard")
        except TaperError:
            return None
        plan.slow_reasons = reasons
        return plan, regimens

    def ome(self, record: PatientRecord, drafts: bool = True) -> OmeResult:
        return record_ome(record, self.knowledge, self.profile, drafts)

    def assess(
        self,
        hook: str,
        record: PatientRecord,
        today: date,
        source_url: str | None = None,
        base_url: str | None = None,
        patient: str = "-",
    ) -> Evaluation:
        """One evaluation; never raises for its input: an unexpected error is a "could not assess" card.

        ``patient`` is the pseudonym the log may name (protocol/privacy.py), never the patient's id.
        """
        try:
            return self._assess(hook, record, today, source_url, base_url)
        except Exception as exc:
            return unexpected_failure(exc, record, patient, self.profile)

    def _assess(
        self, hook: str, record: PatientRecord, today: date, source_url: str | None, base_url: str | None
    ) -> Evaluation:
        shape = check_record(record)
        ome = self.ome(record)
        apply_to_ome(ome, shape)
        relevant = {i for i, o in enumerate(ome.orders) if o.product is None or o.product.classes & RELEVANT_CLASSES}
        validate_orders(record, relevant)
        before = self.ome(record, drafts=False) if any(o.origin == "draft" for o in record.orders) else None
        if before is not None:
            apply_to_ome(before, shape)
        try:
            facts = build_facts(hook, record, ome, before, self.codes, self.settings, today)
            firings = self.engine.evaluate([facts.summary, *facts.orders])
            context = CardContext(
                record.patient_id,
                self.review_code,
                self.profile,
                source_url,
                lambda: self.taper(ome, facts, today),
                base_url,
                tuple(record.unreadable),
            )
            cards = render_cards(firings, facts, ome, self.rule_set, context)
        except EngineError as exc:
            log.error("could not assess: %s", exc)
            return Evaluation({"cards": [could_not_assess_card(str(exc))]}, record, ome, None, [], str(exc))
        fired = sorted({c["source"]["topic"]["code"] for c in cards})
        return Evaluation({"cards": cards}, record, ome, facts, fired)


def unexpected_failure(exc: BaseException, record: PatientRecord, patient: str, profile: str = "uk") -> Evaluation:
    """The "could not assess" answer to an unexpected error, with a short reference the log line carries too.

    The log line names the pseudonymised patient, the error's type and where it was raised (file:line function of
    each frame, innermost first), never its message or source lines: a message may quote the input.
    """
    reference = secrets.token_hex(4)
    frames = " < ".join(
        f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in traceback.extract_tb(exc.__traceback__)[::-1]
    )
    log.error(
        "could not assess: reference=%s patient=%s error=%s at %s", reference, patient, type(exc).__name__, frames
    )
    reason = f"unexpected error; support reference {reference}"
    return Evaluation({"cards": [could_not_assess_card(reason)]}, record, OmeResult(profile, []), None, [], reason)
