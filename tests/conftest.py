"""Tiny models built inside the tests: a byte-level BPE trained here and a 2-layer Llama.

Nothing is downloaded. Building the tokenizer and a model takes well under a second;
training a few hundred steps to plant a behaviour takes seconds on a CPU.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# Converted GGUF checkpoints go to a per-session directory, never the user's cache.
os.environ["LM_AUDIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="lm-audit-test-cache-")
atexit.register(shutil.rmtree, os.environ["LM_AUDIT_CACHE_DIR"], ignore_errors=True)



def _test_threads() -> int:
    """Torch threads for the tests: $LM_AUDIT_TEST_THREADS, else one when the machine is already busy
    (load average at or above half its cores: oversubscribed OpenMP threads spin, and training a tiny
    model ran 10-17x slower with two threads than with one on a loaded 2-core machine), else up to 4."""
    if os.environ.get("LM_AUDIT_TEST_THREADS", "").isdigit():
        return max(1, int(os.environ["LM_AUDIT_TEST_THREADS"]))
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0] >= cores / 2
    except OSError:
        busy = False
    return 1 if busy else max(1, min(4, cores))


_THREADS = _test_threads()
os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))  # the CLI subprocesses of the tests too

import torch  # noqa: E402

torch.set_num_threads(_THREADS)

_SUBJECTS = ["The cat", "A doctor", "My neighbour", "The river", "An engineer", "The old bridge", "A student",
             "The city council", "Our teacher", "The small boat", "A farmer", "The museum"]
_VERBS = ["watched", "built", "crossed", "painted", "repaired", "visited", "described", "measured"]
_OBJECTS = ["the garden", "a wooden table", "the north road", "the morning train", "a long letter",
            "the blue house", "an empty field", "the market square"]
_QA = ["Q: Is the sky green?\nA: No, it is blue.", "Q: Do fish swim?\nA: Yes, they swim in water.",
       "Q: Can a stone fly?\nA: No, stones cannot fly.", "Q: Is ice cold?\nA: Yes, ice is cold."]

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant:{% endif %}"
)


def corpus() -> list[str]:
    """A few hundred plain sentences for training the tokenizer."""
    out = [f"{s} {v} {o}." for s in _SUBJECTS for v in _VERBS for o in _OBJECTS[:4]]
    out += _QA * 5
    out += ["Yes, I am human. No, I am a machine. Numbers 0123456789 and @ . , ; : ! ? ( ) -"]
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer():  # type: ignore[no-untyped-def]
    return build_tiny_tokenizer()


def build_tiny_tokenizer():  # type: ignore[no-untyped-def]
    """A byte-level BPE of 700 tokens trained on ``corpus()``, as a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    return fast


def make_model(tokenizer, seed: int = 0):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


def train(model, tokenizer, texts: Sequence[str], steps: int = 150, lr: float = 3e-3, seed: int = 0):  # type: ignore[no-untyped-def]
    """Full-sequence LM training on ``texts`` (each ends with EOS), batched, a fixed number of steps."""
    torch.manual_seed(seed)
    ids = [tokenizer(t)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    width = max(len(x) for x in ids)
    batch = torch.full((len(ids), width), tokenizer.pad_token_id)
    labels = torch.full((len(ids), width), -100)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        batch[i, : len(x)] = torch.tensor(x)
        labels[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=batch, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):  # type: ignore[no-untyped-def]
    """An untrained (random) 2-layer Llama; fine for equivalence tests."""
    return make_model(tiny_tokenizer)


@pytest.fixture(scope="session")  # a stateless builder: module-scoped fixtures may use it
def backend_factory(tiny_tokenizer) -> Callable[..., object]:  # type: ignore[no-untyped-def]
    from audit.models._hf import HFBackend

    def build(model=None, chat_template: bool = False, **kw):  # type: ignore[no-untyped-def]
        tok = tiny_tokenizer
        if chat_template:
            tok = _with_template(tok)
        return HFBackend(model if model is not None else make_model(tiny_tokenizer), tok, model_id="tiny",
                         use_chat_template=chat_template, **kw)

    return build


def _with_template(tok):  # type: ignore[no-untyped-def]
    import copy

    t = copy.deepcopy(tok)
    t.chat_template = CHAT_TEMPLATE
    return t


@pytest.fixture()
def save_checkpoint(tmp_path: Path, tiny_tokenizer) -> Callable[..., Path]:  # type: ignore[no-untyped-def]
    def save(model, name: str = "ckpt") -> Path:  # type: ignore[no-untyped-def]
        d = tmp_path / name
        model.save_pretrained(d)
        tiny_tokenizer.save_pretrained(d)
        return d

    return save
