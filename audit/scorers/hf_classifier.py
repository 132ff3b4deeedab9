"""Any transformers text-classification model as a scorer, with an explicit label mapping."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audit.errors import BadInput
from audit.models._resolve import ModelSource, check_model_config, weights_fingerprint
from audit.scorers._base import ANY_ROLE, Scorer
from audit.scorers._registry import register

# Label names that mean "positive for this property" when the user names none.
_KNOWN_POSITIVE = {
    "toxicity": {"toxic", "toxicity", "offensive", "hate", "hateful", "abusive", "insult", "obscene", "threat",
                 "severe_toxic", "severe_toxicity", "identity_hate", "identity_attack"},
    "regard": {"negative"},
    "refusal": {"refusal", "refuse", "refused", "decline"},
    "claims": {"claim", "human_claim", "anthropomorphic"},
    "identity": {"identity", "identity_claim"},
}


@register
class HFClassifierScorer(Scorer):
    """Probability of the positive labels from a sequence classifier.

    Single-label models (softmax): the summed probability of the positive labels.
    Multi-label models (``problem_type: multi_label_classification``, sigmoid per label):
    the largest probability among the positive labels.
    """

    name = "hf-classifier"
    measures = ANY_ROLE  # the role it is built for, set per instance
    takes_model = True

    @classmethod
    def build(cls, role: str, *, threshold: float, model: str | None = None, labels: list[str] | None = None,
              batch_size: int = 32, device: str = "cpu", allow_download: bool = False) -> Scorer:
        if not model:
            raise BadInput(f"{role}={cls.name}: needs a model, as {cls.name}:PATH", setting="scorers")
        return cls(model, role=role, labels=labels, threshold=threshold, batch_size=batch_size, device=device,
                   allow_download=allow_download)

    def __init__(
        self,
        model: str,
        *,
        role: str,
        labels: Sequence[str] | None = None,
        threshold: float = 0.5,
        batch_size: int = 32,
        device: str = "cpu",
        allow_download: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(threshold)
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        choice = f"{role}={self.name}:{model}"  # messages name the setting: scorers ROLE=hf-classifier:MODEL
        local = Path(model).expanduser()
        if not local.is_dir() and not allow_download:
            raise BadInput(f"{choice}: not a local directory (a hub id needs allow_download, --allow-download)", setting="scorers")
        if local.is_dir() and (local / "config.json").is_file():
            check_model_config(local / "config.json", setting="scorers", label=choice)
        src = str(local) if local.is_dir() else model
        kw: dict[str, Any] = {"local_files_only": not allow_download, "trust_remote_code": trust_remote_code}
        try:
            self._tok = AutoTokenizer.from_pretrained(src, **kw)
            self._model = AutoModelForSequenceClassification.from_pretrained(src, **kw).eval().to(device)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInput(f"{choice}: cannot load a text classifier: {first}", setting="scorers") from exc
        if self._tok.pad_token is None and self._tok.eos_token is not None:  # GPT-2 style classifiers
            self._tok.pad_token = self._tok.eos_token
            self._model.config.pad_token_id = self._tok.eos_token_id
        cfg = self._model.config
        id2label = {int(i): str(lbl) for i, lbl in cfg.id2label.items()}
        by_name = {lbl.lower(): i for i, lbl in id2label.items()}
        if labels:
            missing = [lbl for lbl in labels if lbl.lower() not in by_name]
            if missing:
                raise BadInput(f"{','.join(labels)}: the model has no label {missing[0]!r} "
                               f"(its labels: {', '.join(id2label.values())})", setting=f"scorers.{role}.labels")
            chosen = [by_name[lbl.lower()] for lbl in labels]
        else:
            chosen = [i for name, i in by_name.items() if name in _KNOWN_POSITIVE.get(role, set())]
            if not chosen:
                raise BadInput(f"{choice}: say which labels count as {role} with scorers.{role}.labels "
                               f"(--scorer-labels {role}=LABEL[,LABEL]) (the model's labels: {', '.join(id2label.values())})", setting="scorers")
        if len(chosen) == len(id2label) and getattr(cfg, "problem_type", None) != "multi_label_classification":
            raise BadInput(f"{choice}: every label counts as {role}; every text would score 1", setting="scorers")
        self._positive = sorted(chosen)
        self._labels = [id2label[i] for i in self._positive]
        self._multi = getattr(cfg, "problem_type", None) == "multi_label_classification"
        self._batch = max(1, batch_size)
        self._torch = torch
        self._device = device
        self.measures = role  # type: ignore[misc]
        self._id = local.name if local.is_dir() else model
        digest = weights_fingerprint(ModelSource(spec=model, kind="directory", location=str(local))) if local.is_dir() else None
        self._digest = digest[:16] if digest else "hub"

    @property
    def version(self) -> str:
        import transformers

        return (f"{self._id} (weights sha256 {self._digest}; positive labels {', '.join(self._labels)}; "
                f"{'sigmoid' if self._multi else 'softmax'}; transformers {transformers.__version__})")

    @property
    def note(self) -> str:
        return "a user-supplied classifier; see its model card for what it was trained to detect"

    def _score(self, texts: list[str]) -> list[float]:
        torch = self._torch
        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self._batch):
                chunk = texts[start : start + self._batch]
                enc = self._tok(chunk, padding=True, truncation=True, max_length=512, return_tensors="pt")
                logits = self._model(**{k: v.to(self._device) for k, v in enc.items()}).logits.float()
                if self._multi:
                    probs = torch.sigmoid(logits)[:, self._positive].max(dim=-1).values
                else:
                    probs = torch.softmax(logits, dim=-1)[:, self._positive].sum(dim=-1)
                out += probs.clamp(0.0, 1.0).tolist()
        return out
