"""The assignment hashing spec, in code (the prose version is ``docs/assignment-spec.md``).

Everything here is exact integer arithmetic on MurmurHash3 x86 32-bit values, so another
language reproduces every assignment bit for bit:

* hashed key: ``utf8(prefix) || 0x1F || utf8(unit_id)`` (no Unicode normalisation);
* hash: ``mmh3_x86_32(key, seed)`` read as an unsigned integer ``h`` in ``[0, 2**32)``;
* a fraction ``p`` in ``[0, 1]`` becomes the integer threshold ``floor(p * 2**32)`` computed
  on the IEEE-754 binary64 value of ``p`` (scaling by a power of two is exact);
* ``h < threshold`` means "inside"; variant ``k`` owns ``[B[k-1], B[k])`` with
  ``B[k] = min(B[k-1] + floor(w[k] * 2**32), 2**32)`` and the last boundary forced to
  ``2**32``.

Four seeds give four independent hashes per unit (traffic, variant, namespace, holdout):
reusing one hash for two decisions couples them (for instance a 30% rollout that reuses
the variant hash would put every enrolled unit in the first variant's range).

Reference: Austin Appleby, MurmurHash3 (public domain), ``MurmurHash3_x86_32``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from mmh3 import hash as _mmh3_32
from mmh3 import hash_bytes as _mmh3_bytes

SPEC_VERSION = 1

#: Unit separator between the prefix and the unit id (cannot occur in salts or names).
SEPARATOR = "\x1f"
SCALE = 1 << 32  # size of the 32-bit hash space

# Seeds are the ASCII of a mnemonic word read as a big-endian uint32.
SEED_TRAFFIC = 0x74726166  # b"traf": is the unit inside the experiment's traffic?
SEED_VARIANT = 0x76617269  # b"vari": which variant?
SEED_NAMESPACE = 0x6E616D65  # b"name": where does the unit fall in a namespace?
SEED_HOLDOUT = 0x686F6C64  # b"hold": is the unit in the global holdout?


def unit_key(prefix: str, unit_id: str) -> bytes:
    """The exact bytes hashed for ``unit_id`` under ``prefix`` (a salt or a name)."""
    return (prefix + SEPARATOR + unit_id).encode("utf-8")


def hash32(data: bytes, seed: int) -> int:
    """Unsigned MurmurHash3 x86 32-bit of ``data`` with ``seed``."""
    return _mmh3_32(data, seed, False)


def threshold(fraction: float) -> int:
    """Integer threshold of a fraction: ``floor(fraction * 2**32)``, exact for binary64."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    # float * 2**32 only changes the exponent, so int() of it is the exact floor.
    return int(float(fraction) * SCALE)


def variant_bounds(weights: Sequence[float]) -> tuple[int, ...]:
    """Upper boundaries ``B[1..n]`` of the variant ranges (``B[n] == 2**32``)."""
    bounds = []
    acc = 0
    for w in weights[:-1]:
        # Weights may sum to 1 + 1e-9, so the floors can overshoot 2**32 by a few values;
        # clamping changes no assignment (every h < 2**32) but keeps the ranges ordered and
        # every effective weight >= 0.
        acc = min(acc + threshold(w), SCALE)
        bounds.append(acc)
    bounds.append(SCALE)
    return tuple(bounds)


def variant_index(bounds: Sequence[int], h: int) -> int:
    """Index ``k`` with ``B[k-1] <= h < B[k]`` (``bounds`` as from :func:`variant_bounds`)."""
    return bisect_right(bounds, h, 0, len(bounds) - 1)


def traffic_hash(salt: str, unit_id: str) -> int:
    return hash32(unit_key(salt, unit_id), SEED_TRAFFIC)


def variant_hash(salt: str, unit_id: str) -> int:
    return hash32(unit_key(salt, unit_id), SEED_VARIANT)


def namespace_hash(namespace: str, unit_id: str) -> int:
    return hash32(unit_key(namespace, unit_id), SEED_NAMESPACE)


def holdout_hash(holdout: str, unit_id: str) -> int:
    return hash32(unit_key(holdout, unit_id), SEED_HOLDOUT)


def event_id(experiment: str, unit_id: str, variant: str, timestamp_us: int) -> str:
    """Deterministic exposure id (ARCHITECTURE.md, Contract 1).

    32 lowercase hex digits of the unsigned MurmurHash3 x64 128-bit (seed 0) of
    ``utf8(experiment 0x1F unit_id 0x1F variant 0x1F decimal(timestamp_us))``.
    """
    data = SEPARATOR.join((experiment, unit_id, variant, str(int(timestamp_us))))
    # hash_bytes gives the 128-bit value little-endian; reversed, its hex is the
    # zero-padded big-endian hex of the unsigned integer (same as format(h, "032x")).
    # (mmh3 5.3's hash128 also ignores a positional `signed`, another reason to avoid it.)
    return _mmh3_bytes(data.encode("utf-8"))[::-1].hex()
