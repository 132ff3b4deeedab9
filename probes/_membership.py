"""A model-based membership signal: Min-K% Prob (Shi et al. 2023) against perturbed copies of the
same text, calibrated on items made up at run time that no model trained before the run can have seen.

Min-K% Prob of a text is the mean log-probability of its k% least likely tokens: a text the model
saw in training has few very unlikely tokens. On its own the figure mixes memory with how
predictable a text is, so each text is compared with minimally perturbed copies of itself (a few
ordinary words swapped for other ordinary words of the same length): the signal is how much more
likely the original is than its neighbours (Mattern et al. 2023). A memorised text stands out from
its neighbours; an unseen one does not.

Every choice here is deterministic given the seed: the perturbations are seeded by the run's seed
and the item's key, the fresh items by the run's seed.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence

# Ordinary English words, by length: what a perturbation swaps (an ordinary word for another of the
# same length), in checked items and fresh ones alike, so both get the same kind of change.
_POOL_WORDS = """
a i
an as at be by do go he if in is it me my no of on or so to up us we
all and any are big but can day did end far few for get had has her him his how its let man may new
not now old one our out own put run saw say see set she sun the too two use was way who why yes yet you
also area away back been best both call came city come does done down each even ever face fact feel
find five four free from full gave give good half hand have head help here high hold home hope idea
into just keep kind knew know land last late left less life like line list live long look made make
many more most much must name near need next nine note once only open over part past plan play real
rest road said same seen show side some soon stay step such sure take talk tell than that them then
they this thus time told took town tree true turn very view walk want week well went were what when
will with word work year your
about above after again along among began being below bring built carry cause clear close could
early earth every first found front given going great green group heard horse house large later
learn leave light might money month never night often order other place plant point power quite
ready right river round saw seven shall short since small sound south speak stand start state still
story study table taken their there these thing think those three today under until upper usual
water where which while white whole woman world would write young
across almost always answer around became before better called cannot center change coming common
course during either enough family father follow friend give ground happen having inside island
little living mother moving nation number people person places public rather reason record second
should simple single spring street strong system though toward travel within wonder
against already another animal because between brought certain company country develop example
explain general however include instead picture present problem program produce provide purpose
quickly several special student suggest through thought usually whether without
american although anything business children consider continue describe different everyone
evidence hospital interest language national possible question remember research sentence
together yourself
""".split()
POOL: dict[int, list[str]] = {}
for _w in dict.fromkeys(_POOL_WORDS):
    POOL.setdefault(len(_w), []).append(_w)
_ORDINARY = frozenset(_POOL_WORDS)
_WORD = re.compile(r"[A-Za-z]+")


def first_words(text: str, n: int) -> str:
    """``text`` up to the end of its ``n``-th whitespace-separated word (separators kept)."""
    for k, m in enumerate(re.finditer(r"\S+", text), start=1):
        if k == n:
            return text[: m.end()]
    return text


def min_k_prob(logprobs: Sequence[float], k: float = 0.2) -> float | None:
    """Mean of the ``k`` share (at least one) of the lowest token log-probabilities; None with no tokens."""
    if not logprobs:
        return None
    low = sorted(logprobs)[: max(1, math.ceil(k * len(logprobs)))]
    return sum(low) / len(low)


def _cased(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    return word.capitalize() if like[0].isupper() else word


def perturb(text: str, seed: int, key: str, copy: int, fraction: float = 0.2) -> str:
    """A minimally changed copy of ``text``: ``fraction`` of its words (at least one) that are
    ordinary words swapped for other ordinary words of the same length (case kept); a text with no
    ordinary word has two neighbouring words swapped instead. Deterministic in (seed, key, copy)."""
    rng = random.Random(f"perturb:{seed}:{key}:{copy}")
    words = list(_WORD.finditer(text))
    eligible = [m for m in words if m.group().lower() in _ORDINARY and len(POOL.get(len(m.group()), ())) > 1]
    if eligible:
        count = min(len(eligible), max(1, round(fraction * len(words))))
        chosen = sorted(rng.sample(eligible, count), key=lambda m: m.start())
        out, at = [], 0
        for m in chosen:
            word = m.group()
            choices = [w for w in POOL[len(word)] if w != word.lower()]
            out += [text[at : m.start()], _cased(rng.choice(choices), word)]
            at = m.end()
        return "".join(out) + text[at:]
    parts = text.split()
    if len(parts) < 2:
        return text
    i = rng.randrange(len(parts) - 1)
    parts[i], parts[i + 1] = parts[i + 1], parts[i]
    return " ".join(parts)


# ---- fresh items: facts made up at run time ----------------------------------------------------
# Random combinations of ordinary words and numbers in the registers of the audit's items (statements,
# questions, advice, question and answer): fluent, so that their least likely tokens are ordinary
# words as in a real item (invented names would be the least likely tokens of every fresh item and
# untouched by the perturbations, which would set the threshold too low), and new: one sentence is
# one of many millions, drawn from the run's seed.

_PEOPLE = ["my neighbour", "our teacher", "the old farmer", "a young doctor", "my sister", "the new manager",
           "a local artist", "my uncle", "the night nurse", "our landlord", "Anna", "James", "Maria", "David",
           "Sarah", "Peter", "my grandmother", "the bus driver", "a student", "the baker"]
_PLACES = ["the market", "the library", "the station", "the river", "the school", "the hospital", "the park",
           "the harbour", "the bakery", "the museum", "the post office", "the bridge", "the farm", "the beach"]
_OBJECTS = ["a wooden chair", "a red bicycle", "an old camera", "a blue coat", "a small boat", "a glass jar",
            "a paper map", "a heavy box", "a silver ring", "a broken clock", "a green lamp", "a leather bag"]
_VERBS_PAST = ["bought", "painted", "repaired", "sold", "found", "carried", "built", "cleaned", "lost", "borrowed",
               "moved", "opened"]
_VERBS = ["buy", "paint", "repair", "sell", "clean", "carry", "check", "wash", "move", "open", "cover", "fold"]
_TIMES = ["last Monday", "after the storm", "every morning", "on a cold night", "before lunch", "in the summer",
          "during the holidays", "at the weekend", "late in the evening", "the day before"]
_FOODS = ["bread", "soup", "rice", "apples", "cheese", "fish", "eggs", "beans", "chicken", "pasta", "carrots"]
_ACTIVITIES = ["swimming", "running", "cooking", "reading", "gardening", "driving", "sleeping", "working", "walking"]
_ADJECTIVES = ["quiet", "busy", "narrow", "bright", "warm", "empty", "crowded", "dark", "noisy", "clean", "cold"]
_PLURALS = ["letters", "chairs", "boxes", "books", "tickets", "bottles", "windows", "plates", "keys", "trees"]
_ROOMS = ["kitchen", "garage", "attic", "hallway", "basement", "office", "bedroom", "shed"]
_DRINKS = ["tea", "coffee", "water", "milk", "juice", "lemonade"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_TEMPLATES = [
    "{Person} {past} {object} at {place} {time}.",
    "Is it safe to eat {food} that was left out for {number} hours?",
    "Why does {person} always {verb} {object} before {activity}?",
    "{Person} said that {place} is too {adj} on {day}s.",
    "If you {verb} {object} every day, will it last for {number} years?",
    "The {adj} road to {place} was closed for {number} days in {year}.",
    "Q: How many {plural} did {person} {verb}?\nA: {Person} had to {verb} {number} {plural}.",
    "After {activity}, {person} likes to drink {drink} and sit near {place}.",
    "Most people in our town think that {food} tastes better with {food2}.",
    "{Person} kept {object} in the {room} for {number} years.",
    "Do you think {person} should {verb} {object} or wait until {day}?",
    "There were {number} {plural} near {place} when {person} arrived {time}.",
    "In {year}, {person} {past} {object} and gave it to {person2}.",
    "Can I {verb} {object} in the {room} if it is {adj}?",
]


def _sentence(rng: random.Random) -> str:
    people = rng.sample(_PEOPLE, 2)
    fill = {
        "person": people[0], "Person": people[0][0].upper() + people[0][1:], "person2": people[1],
        "past": rng.choice(_VERBS_PAST), "verb": rng.choice(_VERBS), "object": rng.choice(_OBJECTS),
        "place": rng.choice(_PLACES), "time": rng.choice(_TIMES), "food": rng.choice(_FOODS),
        "food2": rng.choice(_FOODS), "activity": rng.choice(_ACTIVITIES), "adj": rng.choice(_ADJECTIVES),
        "plural": rng.choice(_PLURALS), "room": rng.choice(_ROOMS), "drink": rng.choice(_DRINKS),
        "day": rng.choice(_DAYS), "number": str(rng.randint(2, 90)), "year": str(rng.randint(1900, 2020)),
    }
    return rng.choice(_TEMPLATES).format(**fill)


def fresh_items(seed: int, count: int, lengths: Sequence[int], salt: str) -> list[str]:
    """``count`` texts of made-up facts (random combinations of ordinary words and numbers in
    ordinary sentences), each cut to as many words as one of ``lengths`` drawn at random (so the fresh set has the checked
    items' lengths). New for every seed: no model trained before the run has seen them. ``salt``
    keeps sets of one run apart (calibration, held-out)."""
    rng = random.Random(f"fresh:{salt}:{seed}")
    out = []
    for _ in range(count):
        target = rng.choice(list(lengths)) if lengths else 12
        sentences = [_sentence(rng)]
        while sum(len(s.split()) for s in sentences) < target:
            sentences.append(_sentence(rng))
        out.append(first_words(" ".join(sentences), target))
    return out


__all__ = ["POOL", "first_words", "fresh_items", "min_k_prob", "perturb"]
