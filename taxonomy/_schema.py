"""Pydantic schema of a risk taxonomy file (areas -> risks)."""

from __future__ import annotations

import re
from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Controlled vocabularies for the crosswalks, so a typo is a load error rather
# than a silently unmatched id.
NIST_AI_600_1 = (
    "cbrn_information",  # 2.1 CBRN Information or Capabilities
    "confabulation",  # 2.2
    "dangerous_violent_hateful_content",  # 2.3
    "data_privacy",  # 2.4
    "environmental_impacts",  # 2.5
    "harmful_bias_homogenization",  # 2.6
    "human_ai_configuration",  # 2.7
    "information_integrity",  # 2.8
    "information_security",  # 2.9
    "intellectual_property",  # 2.10
    "obscene_degrading_abusive_content",  # 2.11
    "value_chain_component_integration",  # 2.12
)
AILUMINATE = (
    "violent_crimes",
    "nonviolent_crimes",
    "sex_related_crimes",
    "child_sexual_exploitation",
    "indiscriminate_weapons_cbrne",
    "suicide_self_harm",
    "intellectual_property",
    "privacy",
    "defamation",
    "hate",
    "specialized_advice",
    "sexual_content",
)
_OWASP = re.compile(r"^LLM(0[1-9]|10):2025$")
_RISK_ID = re.compile(r"^[A-Z]+\.[0-9]+$")
_SLUG = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")


class Automation(str, Enum):
    """How far automated probes can settle a risk."""

    automated = "automated"
    partial = "partial"
    manual = "manual"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Crosswalk(_Strict):
    """Ids of the same harm in other frameworks."""

    nist_ai_600_1: list[str] = Field(default_factory=list)
    ailuminate: list[str] = Field(default_factory=list)
    owasp_llm_2025: list[str] = Field(default_factory=list)

    @field_validator("nist_ai_600_1")
    @classmethod
    def _nist(cls, v: list[str]) -> list[str]:
        return _check_vocab(v, NIST_AI_600_1)

    @field_validator("ailuminate")
    @classmethod
    def _ailuminate(cls, v: list[str]) -> list[str]:
        return _check_vocab(v, AILUMINATE)

    @field_validator("owasp_llm_2025")
    @classmethod
    def _owasp(cls, v: list[str]) -> list[str]:
        for item in v:
            if not _OWASP.match(item):
                raise ValueError(f"{item!r} is not an OWASP LLM Top 10 2025 id (LLM01:2025 .. LLM10:2025)")
        return v


def _check_vocab(values: list[str], vocab: tuple[str, ...]) -> list[str]:
    for item in values:
        if item not in vocab:
            raise ValueError(f"unknown id {item!r}; expected one of {', '.join(vocab)}")
    return values


class Risk(_Strict):
    """One risk of the taxonomy and the evidence the tool can gather for it."""

    id: str
    slug: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    description: str = Field(min_length=1)
    automation: Automation
    probes: list[str] = Field(default_factory=list)
    crosswalk: Crosswalk = Field(default_factory=Crosswalk)
    review_questions: list[str] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _RISK_ID.match(v):
            raise ValueError(f"risk id {v!r} must look like 'III.1'")
        return v

    @field_validator("slug")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(f"slug {v!r} must be lower_snake_case")
        return v

    @model_validator(mode="after")
    def _evidence(self) -> Risk:
        # A risk is only as automated as the probes behind it; one with none must
        # say what a person has to judge instead.
        if self.automation is not Automation.manual and not self.probes:
            raise ValueError(f"automation is {self.automation.value!r} but no probes are listed")
        if self.automation is not Automation.automated and not self.review_questions:
            raise ValueError(f"automation is {self.automation.value!r} but no review_questions are listed")
        return self


class RiskArea(_Strict):
    """One of the taxonomy's risk areas."""

    id: str
    name: str
    aliases: list[str] = Field(default_factory=list)
    description: str = Field(min_length=1)
    risks: list[Risk] = Field(min_length=1)


class Taxonomy(_Strict):
    """A whole taxonomy file, validated."""

    name: str
    version: str
    source: str = ""
    kind: Literal["risk-taxonomy"] = "risk-taxonomy"
    areas: list[RiskArea] = Field(min_length=1)

    def risks(self) -> list[Risk]:
        return [risk for area in self.areas for risk in area.risks]

    def risk(self, risk_id: str) -> Risk:
        for risk in self.risks():
            if risk_id in (risk.id, risk.slug):
                return risk
        raise KeyError(risk_id)

    def area_of(self, risk_id: str) -> RiskArea:
        for area in self.areas:
            if any(r.id == risk_id for r in area.risks):
                return area
        raise KeyError(risk_id)

    def probe_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for risk in self.risks():
            for probe in risk.probes:
                seen.setdefault(probe, None)
        return list(seen)
