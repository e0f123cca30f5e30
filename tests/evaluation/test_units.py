"""Small parts: the unpadded chunk sampler, Clopper-Pearson, the section cache."""
from __future__ import annotations

from tpa_lightning.evaluation import ChunkBatchSampler, SectionCache, clopper_pearson


def test_sampler_counts_every_index_once():
    for n, bs, world in [(10, 3, 2), (7, 7, 3), (101, 10, 4), (5, 2, 8)]:
        seen = [i for r in range(world) for b in ChunkBatchSampler(n, bs, r, world) for i in b]
        assert sorted(seen) == list(range(n))
        assert len(next(iter(ChunkBatchSampler(n, bs, 0, 1)))) == min(bs, n)


def test_clopper_pearson_known_values():
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and abs(hi - 0.3084971) < 1e-6
    lo, hi = clopper_pearson(5, 10)
    assert abs(lo - 0.1870860) < 1e-6 and abs(hi - 0.8129140) < 1e-6
    assert clopper_pearson(0, 0) == (0.0, 1.0)


def test_cache_hits_only_same_key(tmp_path):
    c = SectionCache(tmp_path)
    c.put("s", "k1", {"a": 1})
    assert c.get("s", "k1") == {"a": 1}
    assert c.get("s", "k2") is None
    assert SectionCache(tmp_path, enabled=False).get("s", "k1") is None
