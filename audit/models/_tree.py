"""Token trees: many scored sequences packed into one row, every shared prefix stored once.

A log-likelihood request feeds its context and all but the last token of its continuation;
requests that share leading tokens (a context shared by several answers, a chat template's
system turn shared by every question, the common opening of a CrowS-Pairs pair) share those
positions. A row is a tree of token positions in insertion order (a parent always comes
before its children): each position attends to itself and its ancestors, and its position
id is its depth — so a request's logits are those of one plain forward pass over it alone.
Pure functions of token ids; ``_score`` turns the rows into one forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class TokenTree:
    """One row: token positions with their parents; ``path`` adds a sequence and returns
    the positions it occupies (shared prefixes are walked, not copied)."""

    tokens: list[int] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)
    _children: list[dict[int, int]] = field(default_factory=list)
    _roots: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tokens)

    def new_positions(self, seq: list[int]) -> int:
        """How many positions ``path(seq)`` would add."""
        kids, node = self._roots, -1
        for k, tok in enumerate(seq):
            node = kids.get(tok, -1)
            if node < 0:
                return len(seq) - k
            kids = self._children[node]
        return 0

    def path(self, seq: list[int]) -> list[int]:
        """The positions of ``seq``'s tokens, adding those not already in the tree."""
        out: list[int] = []
        kids, parent = self._roots, -1
        for tok in seq:
            node = kids.get(tok)
            if node is None:
                node = len(self.tokens)
                self.tokens.append(tok)
                self.parent.append(parent)
                self.depth.append(self.depth[parent] + 1 if parent >= 0 else 0)
                self._children.append({})
                kids[tok] = node
            out.append(node)
            kids, parent = self._children[node], node
        return out

    def visibility(self, width: int) -> np.ndarray:
        """Boolean (width, width): row i may attend to column j (j is i or an ancestor of i).
        Positions past the tree (padding) attend to themselves only, so no row is empty."""
        see = np.zeros((width, width), dtype=bool)
        for i, p in enumerate(self.parent):
            if p >= 0:
                see[i, : p + 1] = see[p, : p + 1]
            see[i, i] = True
        for i in range(len(self.tokens), width):
            see[i, i] = True
        return see


@dataclass(frozen=True)
class Scored:
    """Where one request's continuation is predicted: tree ``row``, the ``positions`` whose
    logits predict ``targets`` (the continuation's tokens), for request ``req``."""

    req: int
    row: int
    positions: list[int]
    targets: list[int]


def plant(requests: list[tuple[int, list[int], list[int]]], row_tokens: int) -> tuple[list[TokenTree], list[Scored]]:
    """(trees, where each request is scored) for (request index, context, continuation)
    triples, in order. A request joins the current tree unless that would take it past
    ``row_tokens`` positions (a request longer than that gets a tree of its own)."""
    trees: list[TokenTree] = [TokenTree()]
    scored: list[Scored] = []
    for req, ctx, cont in requests:
        fed = ctx + cont[:-1]  # the last continuation token is predicted, never fed
        tree = trees[-1]
        if len(tree) and len(tree) + tree.new_positions(fed) > row_tokens:
            tree = TokenTree()
            trees.append(tree)
        nodes = tree.path(fed)
        first = len(ctx) - 1  # the last context token predicts the continuation's first
        scored.append(Scored(req, len(trees) - 1, nodes[first : first + len(cont)], cont))
    return trees, scored


__all__ = ["Scored", "TokenTree", "plant"]
