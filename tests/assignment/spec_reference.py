"""An independent implementation of docs/assignment-spec.md, written from the document.

It shares no code with ``abkit.assignment`` (not even mmh3): MurmurHash3 x86_32 is
implemented here in pure Python, so the golden-vector test checks the library, the C
extension and the spec against each other. Only plain dict configs (``to_dict()`` form)
are used, like another language would.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

MASK = 0xFFFFFFFF
SEEDS = {
    "traffic": 0x74726166,
    "variant": 0x76617269,
    "namespace": 0x6E616D65,
    "holdout": 0x686F6C64,
}


def murmur3_x86_32(data: bytes, seed: int) -> int:
    """MurmurHash3_x86_32 (Appleby), unsigned result."""
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed & MASK
    n = len(data)
    nblocks = n // 4
    for i in range(nblocks):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * c1) & MASK
        k = ((k << 15) | (k >> 17)) & MASK
        k = (k * c2) & MASK
        h ^= k
        h = ((h << 13) | (h >> 19)) & MASK
        h = (h * 5 + 0xE6546B64) & MASK
    tail = data[4 * nblocks :]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * c1) & MASK
        k = ((k << 15) | (k >> 17)) & MASK
        k = (k * c2) & MASK
        h ^= k
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & MASK
    h ^= h >> 16
    return h


def key(prefix: str, unit_id: str) -> bytes:
    return prefix.encode("utf-8") + b"\x1f" + unit_id.encode("utf-8")


def T(p: float) -> int:
    return math.floor(p * 2**32)


def _epoch_us(iso: str) -> int:
    """UTC epoch microseconds of an ISO-8601 instant with an offset (to_dict() form)."""
    delta = datetime.fromisoformat(iso) - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def decide(cfg: dict, unit_id, attrs: dict | None, now_us: int | None) -> dict:
    """Spec §3 on a to_dict() config; targeting limited to the operators the vectors use."""
    names = [v["name"] for v in cfg["variants"]]
    winner = cfg.get("winner")
    fallback = names.index(winner) if winner else 0
    stopped = cfg["status"] == "stopped"

    def out(i, reason, bucket=None):
        return {
            "variant": names[i],
            "in_experiment": reason is None,
            "bucket": bucket,
            "reason": reason,
        }

    is_bool = isinstance(unit_id, bool) or type(unit_id).__name__ == "bool_"
    if not isinstance(unit_id, str) and not is_bool and hasattr(type(unit_id), "__index__"):
        unit_id = str(unit_id.__index__())  # any integer type: its decimal string
    start = None if cfg.get("start") is None else _epoch_us(cfg["start"])
    end = None if cfg.get("end") is None else _epoch_us(cfg["end"])
    if start is not None or end is not None:
        assert now_us is not None, "pass now_us for experiments with a time window"
    ended = end is not None and now_us >= end
    invalid = fallback if stopped or (cfg["status"] == "running" and ended) else 0
    if not isinstance(unit_id, str) or not unit_id:
        return out(invalid, "invalid_unit")
    try:
        unit_id.encode("utf-8")
    except UnicodeEncodeError:
        return out(invalid, "invalid_unit")
    if stopped:
        return out(fallback, "stopped")
    if unit_id in (cfg.get("forced") or {}):
        return out(names.index(cfg["forced"][unit_id]), "forced")
    if cfg["status"] in ("draft", "paused"):
        return out(0, cfg["status"])
    if start is not None and now_us < start:
        return out(0, "not_started")
    if ended:
        return out(fallback, "ended")
    ho = cfg.get("holdout")
    if ho and murmur3_x86_32(key(ho["name"], unit_id), SEEDS["holdout"]) < T(ho["fraction"]):
        return out(0, "holdout")
    rule = cfg.get("targeting")
    if rule is not None and not _eval(rule, attrs or {}):
        return out(0, "not_targeted")
    ns = cfg.get("namespace")
    if ns:
        hn = murmur3_x86_32(key(ns["name"], unit_id), SEEDS["namespace"])
        if not T(ns["start"]) <= hn < T(ns["end"]):
            return out(0, "namespace")
    salt = cfg["salt"]
    if murmur3_x86_32(key(salt, unit_id), SEEDS["traffic"]) >= T(cfg["traffic"]):
        return out(0, "outside_traffic")
    h = murmur3_x86_32(key(salt, unit_id), SEEDS["variant"])
    n = len(names)
    ws = [v["weight"] if v["weight"] is not None else 1.0 / n for v in cfg["variants"]]
    bounds, acc = [], 0
    for w in ws[:-1]:
        acc = min(acc + T(w), 2**32)
        bounds.append(acc)
    bounds.append(2**32)
    k = next(i for i, b in enumerate(bounds) if h < b)
    return out(k, None, h)


def _eval(rule: dict, attrs: dict) -> bool:
    if "all" in rule:
        return all(_eval(r, attrs) for r in rule["all"])
    if "any" in rule:
        return any(_eval(r, attrs) for r in rule["any"])
    if "not" in rule:
        return not _eval(rule["not"], attrs)
    v = attrs.get(rule["attr"])
    if v is None:
        return False
    if "eq" in rule:
        return v == rule["eq"]
    if "in" in rule:
        return v in rule["in"]
    if "gte" in rule:
        return isinstance(v, (int, float)) and v >= rule["gte"]
    raise NotImplementedError(rule)


M64 = (1 << 64) - 1


def _fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & M64
    k ^= k >> 33
    return k


def _rotl64(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & M64


def murmur3_x64_128(data: bytes, seed: int = 0) -> int:
    """MurmurHash3_x64_128 (Appleby) as the unsigned integer h1 + 2**64 * h2."""
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = seed & M64
    n = len(data)
    nblocks = n // 16
    for i in range(nblocks):
        k1 = int.from_bytes(data[16 * i : 16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8 : 16 * i + 16], "little")
        k1 = _rotl64((k1 * c1) & M64, 31) * c2 & M64
        h1 ^= k1
        h1 = (_rotl64(h1, 27) + h2) & M64
        h1 = (h1 * 5 + 0x52DCE729) & M64
        k2 = _rotl64((k2 * c2) & M64, 33) * c1 & M64
        h2 ^= k2
        h2 = (_rotl64(h2, 31) + h1) & M64
        h2 = (h2 * 5 + 0x38495AB5) & M64
    tail = data[16 * nblocks :]
    k1 = int.from_bytes(tail[:8], "little") if tail else 0
    k2 = int.from_bytes(tail[8:16], "little") if len(tail) > 8 else 0
    if len(tail) > 8:
        k2 = _rotl64((k2 * c2) & M64, 33) * c1 & M64
        h2 ^= k2
    if tail:
        k1 = _rotl64((k1 * c1) & M64, 31) * c2 & M64
        h1 ^= k1
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & M64
    h2 = (h2 + h1) & M64
    h1, h2 = _fmix64(h1), _fmix64(h2)
    h1 = (h1 + h2) & M64
    h2 = (h2 + h1) & M64
    return h1 | (h2 << 64)


def event_id(experiment: str, unit_id: str, variant: str, timestamp_us: int) -> str:
    """Spec §6."""
    data = "\x1f".join((experiment, unit_id, variant, str(timestamp_us))).encode("utf-8")
    return format(murmur3_x64_128(data, 0), "032x")
