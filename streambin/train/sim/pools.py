"""Asset pools: every asset identity belongs to exactly one of a train pool and an OOD pool.

The out-of-domain (OOD) pool holds backgrounds, cut-outs (objects with their sounds), voices and
heads that training never sees, so a validation set drawn from it measures whether a model
learned *where the sounding thing is* rather than the pictures, sounds and head it was shown.

The rule, per asset kind, lives here and only here:

==============  ==============================================  ==================================
kind            identity                                        pool rule
==============  ==============================================  ==================================
background      package-relative image id (one per wallpaper,   hash rule (below), 20 % OOD
                whatever its resolutions)
procedural      ``"procedural"`` textures (drawn per clip)      train only (never a test picture)
cutout          tuxpaint stamp name (its picture AND its        hash rule, 20 % OOD
                sound: an object is one identity)
instrument      its cut-out's stamp name (the SoundFont         the pool of that cut-out
                samples go with the picture)
voice           espeak-ng voice+variant, or ``rec:<language>``  hash rule, 20 % OOD
                for recorded tuxpaint descriptions
head            see :mod:`streambin.train.sim.heads`            that module's ``head_ids(pool)``
clipart         openclipart-png path without the extension      hash rule, 20 % OOD
                (:mod:`streambin.train.sim.clipart`)
==============  ==============================================  ==================================

Hash rule: an identity is OOD when the first 8 hex digits of ``sha1("<kind>:<identity>")`` read
as a fraction of 2^32 fall below :data:`OOD_SHARE`. It depends on nothing but the identity, so
an asset never changes pool when packages add or drop other assets, and the split is the same
on every machine. Pool ``"all"`` (no split) exists only to reproduce the first SimBinaural-lite
sets, which predate the split.

Per-kind pools (:func:`check_kind_pools`) draw some kinds from the other pool than the rest, e.g.
the train pool's pictures and sounds heard through held-out heads. Such a set mixes held-out
assets into a scene and is for evaluation only: it says which held-out kind a model's shortfall on
held-out sets comes from.

Halves of the train pool (:data:`TRAIN_HALVES`): the train pool's pictures (backgrounds, cut-outs
with their sounds, clip art) split once more by the same hash, ``train-a`` below the middle of the
train pool's range and ``train-b`` above it (each about 40 % of all identities). A net trained on
one half's pictures meets the other half's as it would meet held-out pictures, while every
asset stays in the train pool: it is how a fit can see a model's mistakes on unseen pictures
without touching the held-out pool. Given per kind (``{"cutout": "train-b"}``) in a train-pool set.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Iterable, TypeVar

POOLS = ("train", "ood")
POOL_CHOICES = POOLS + ("all",)
OOD_SHARE = 0.2
# The asset kinds whose pool can be chosen apart from the scene's (an instrument goes with its
# cut-out, a talker's picture is a cut-out, procedural textures are train-only backgrounds).
KINDS_WITH_OWN_POOL = ("background", "cutout", "voice", "head")
TRAIN_HALVES = ("train-a", "train-b")
# The picture kinds a train-pool set can draw from one half of the train pool (clip art stays in
# the set's pool otherwise).
KINDS_WITH_HALVES = ("background", "cutout", "clipart")

T = TypeVar("T")


def check_pool(pool: str) -> str:
    if pool not in POOL_CHOICES:
        raise ValueError(f"pool must be one of {POOL_CHOICES}, got {pool!r}")
    return pool


def check_kind_pools(pool: str, kind_pools: "dict[str, str] | None") -> dict:
    """``kind_pools`` checked against the scene's ``pool``: ``{kind: "train" | "ood"}`` for kinds
    of :data:`KINDS_WITH_OWN_POOL`, or ``{kind: "train-a" | "train-b"}`` for kinds of
    :data:`KINDS_WITH_HALVES` in a train-pool scene (empty for None). Refused with pool "all" (the
    first sets had no split) and for a kind given the scene's own pool (it would change nothing)."""
    check_pool(pool)
    kind_pools = dict(kind_pools or {})
    if kind_pools and pool == "all":
        raise ValueError("per-kind pools need pool 'train' or 'ood', not 'all' (no split)")
    for kind, kp in kind_pools.items():
        if kp in TRAIN_HALVES:
            if kind not in KINDS_WITH_HALVES:
                raise ValueError(f"only the kinds {KINDS_WITH_HALVES} can be drawn from a half of the train pool, "
                                 f"got {kind!r}={kp!r}")
            if pool != "train":
                raise ValueError(f"a half of the train pool ({kind!r}={kp!r}) needs pool 'train', got {pool!r}")
            continue
        if kind not in KINDS_WITH_OWN_POOL:
            raise ValueError(f"a per-kind pool's kind must be one of {KINDS_WITH_OWN_POOL}, got {kind!r}")
        if kp not in POOLS:
            raise ValueError(f"the pool of kind {kind!r} must be one of {POOLS + TRAIN_HALVES}, got {kp!r}")
        if kp == pool:
            raise ValueError(f"kind {kind!r} is given pool {kp!r}, the scene's own: leave it out")
    return kind_pools


def parse_kind_pools(specs: "Iterable[str]") -> dict:
    """``["head=ood", "cutout=ood"]`` (the command line's form) as ``{"head": "ood", ...}``;
    ValueError for a malformed or repeated entry (its kind and pool are checked by
    :func:`check_kind_pools`)."""
    out: dict = {}
    for spec in specs:
        kind, sep, pool = str(spec).partition("=")
        if not sep or not kind or not pool:
            raise ValueError(f"a per-kind pool is KIND=POOL (e.g. head=ood), got {spec!r}")
        if kind in out:
            raise ValueError(f"kind {kind!r} is given a pool twice")
        out[kind] = pool
    return out


def _hash_fraction(kind: str, identity: str) -> float:
    if not kind or not identity:
        raise ValueError(f"kind and identity must be non-empty strings, got {kind!r}, {identity!r}")
    return int(hashlib.sha1(f"{kind}:{identity}".encode()).hexdigest()[:8], 16) / 2 ** 32


def pool_of(kind: str, identity: str) -> str:
    """``"train"`` or ``"ood"`` for the asset ``identity`` of ``kind`` (hash rule above)."""
    return "ood" if _hash_fraction(kind, identity) < OOD_SHARE else "train"


def train_half_of(kind: str, identity: str) -> "str | None":
    """``"train-a"`` or ``"train-b"`` for a train-pool asset (:data:`TRAIN_HALVES`), None for a
    held-out one."""
    f = _hash_fraction(kind, identity)
    if f < OOD_SHARE:
        return None
    return "train-a" if f < (1.0 + OOD_SHARE) / 2 else "train-b"


def in_pool(kind: str, identity: str, pool: str) -> bool:
    """Whether the asset ``identity`` of ``kind`` is in ``pool`` (one of :data:`POOL_CHOICES` or
    :data:`TRAIN_HALVES`; ``"all"`` holds every asset)."""
    if pool in TRAIN_HALVES:
        return train_half_of(kind, identity) == pool
    check_pool(pool)
    return pool == "all" or pool_of(kind, identity) == pool


def select(items: Iterable[T], kind: str, pool: str, identity: Callable[[T], str]) -> list[T]:
    """The items of ``pool`` (order kept; one of :data:`POOL_CHOICES` or :data:`TRAIN_HALVES`);
    ``pool="all"`` keeps every item."""
    if pool not in TRAIN_HALVES:
        check_pool(pool)
    return [x for x in items if in_pool(kind, identity(x), pool)]
