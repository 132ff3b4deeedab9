"""The deployment's system prompt (``--system-prompt``): where a run applies it, and how the report
records it.

``MeteredModel`` applies it to every prompt before anything else sees the prompt — the backend
(which renders it and keys its batch cache on the rendered tokens or request), the run's request
log (keyed by ``generation_id``) and ``lm-audit rescore`` — so a result computed without a system
prompt is never served to a run with one, and results of two system prompts never mix.
"""

from __future__ import annotations

import hashlib

from probes.model import ChatMessage, LoglikRequest, Prompt
from reports import ModelInfo

# How the system message reached the model (ModelInfo.system_prompt_note).
THROUGH_TEMPLATE = "applied through the chat template"
AS_TEXT = "prepended as text: no chat template"


def with_system_prompt(prompt: Prompt, system_prompt: str | None) -> Prompt:
    """``prompt`` as the deployment sends it.

    A conversation gets ``system_prompt`` as its first message. A conversation that already has a
    system message keeps its own and gets nothing added: the probe that wrote it is testing that
    message (``mitigation.system_prompt`` sends its arms this way), and two system messages are a
    shape many chat templates refuse. Raw text (continuation and likelihood prompts) is not a
    conversation and is sent as it is."""
    if system_prompt is None or isinstance(prompt, str) or any(m.role == "system" for m in prompt):
        return prompt
    return (ChatMessage(role="system", content=system_prompt), *prompt)


def with_system_prompt_request(request: LoglikRequest, system_prompt: str | None) -> LoglikRequest:
    """A log-likelihood request whose context is a conversation, with the system prompt applied."""
    context = with_system_prompt(request.context, system_prompt)
    return request if context is request.context else LoglikRequest(context=context,
                                                                     continuation=request.continuation)


def system_prompt_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def system_prompt_info(info: ModelInfo, system_prompt: str | None, chat_template: bool) -> ModelInfo:
    """``info`` with the system prompt recorded: its text verbatim (the user's own; never printed to
    the console), its sha256, and how it reached the model. Without a chat template a conversation
    is sent in the plain 'System: ...' / 'User: ...' layout (``plain_layout``), so the system text is
    prepended as text, which a model never trained on that layout may not read as instructions."""
    if system_prompt is None:
        return info
    return info.model_copy(update={
        "system_prompt": system_prompt,
        "system_prompt_sha256": system_prompt_sha256(system_prompt),
        "system_prompt_note": THROUGH_TEMPLATE if chat_template else AS_TEXT,
    })


__all__ = ["AS_TEXT", "THROUGH_TEMPLATE", "system_prompt_info", "system_prompt_sha256", "with_system_prompt",
           "with_system_prompt_request"]
