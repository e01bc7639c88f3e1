"""The vision-language test's resource formulas (dejavu/vlm/resources.py): the text tower's
size and work are what core.text builds and computes, each stage's memory grows with the
records only by its named terms, and its minutes are its work at the planned rate."""

import pytest

from dejavu import runtime as rt
from dejavu.vlm import resources as res

pytestmark = pytest.mark.unit

MB = 2**20
TEXT = {"context": 16, "buckets": 500, "text_dim": 32, "text_depth": 2}


def test_the_text_towers_size_and_work_are_what_it_builds_and_computes():
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dejavu.core.text import TextTower
    tower = TextTower(16, TEXT["buckets"], TEXT["context"], TEXT["text_dim"],
                      TEXT["text_depth"], heads=4)
    params = sum(p.numel() for p in tower.parameters())
    assert res.text_params(**TEXT, out_dim=16) == pytest.approx(params, rel=0.03)
    ids = torch.randint(2, 500, (4, TEXT["context"]))
    ids[:, -1] = 1  # END: every position attended to
    with FlopCounterMode(display=False) as count:
        tower(ids)
    assert res.text_macs(**TEXT, out_dim=16) == pytest.approx(
        count.get_total_flops() / 2 / 4, rel=0.15)


def test_the_embed_and_test_stages_grow_with_records_only_by_their_named_terms():
    embed = dict(vocabulary=80, side=64, batch_size=256, chunk_rows=65_536, dims=1024)
    small, large = (res.embed_mb(n_records=n, **embed) for n in (10**6, 2 * 10**6))
    assert large - small == pytest.approx(10**6 * res.record_bytes(80) / MB, abs=1)
    test = dict(vocabulary=80, dim=512, k=100, keys=9, query_rows=65_536, search_mb=1024)
    one = res.test_mb(n_records=10**6, n_public=10**5, n_scored=10**5, **test)
    more_public = res.test_mb(n_records=10**6, n_public=2 * 10**5, n_scored=10**5, **test)
    more_scored = res.test_mb(n_records=10**6, n_public=10**5, n_scored=2 * 10**5, **test)
    assert more_public - one == pytest.approx(10**5 * 80 / MB, abs=1)     # their objects
    assert more_scored - one == pytest.approx(10**5 * (80 + 24 * 9) / MB, abs=1)
    block = res.test_mb(n_records=10**6, n_public=10**5, n_scored=10**5,
                        **{**test, "query_rows": 2 * 65_536}) - one
    assert block == pytest.approx(65_536 * (8 * 512 + 20 * 100 + 100 * 80) / MB, abs=1)


def test_a_real_sources_ingest_holds_its_annotations_and_one_block_of_images():
    args = dict(source="coco", side=224, chunk_rows=256, n_records=10**5)
    base = res.data_mb(**args, annotation_bytes=0)
    assert res.data_mb(**args, annotation_bytes=100 * MB) - base == pytest.approx(800, abs=1)
    assert res.data_mb(**{**args, "chunk_rows": 512}, annotation_bytes=0) - base == \
        pytest.approx(2 * 256 * 224 * 224 * 3 / MB + 256 * 1024 / MB, abs=1)
    # a JSON-lines file streams its records: 80 bytes a line, none a record or file byte
    jsonl = dict(args, source="jsonl")
    assert res.data_mb(**jsonl, lines=10**7) - res.data_mb(**jsonl) == \
        pytest.approx(80 * 10**7 / MB, abs=1)
    assert res.data_mb(**{**jsonl, "n_records": 10**8}, annotation_bytes=10**9) == \
        res.data_mb(**jsonl)


def test_the_minutes_are_the_stages_work_at_the_planned_rate():
    model = dict(side=32, backbone="convnet", width=16, projector=[256, 128], text=TEXT)
    forward = rt.forward_macs("convnet", 16, 32, [256, 128]) + res.text_macs(**TEXT,
                                                                            out_dim=128)
    assert res.embed_min(n_records=10**7, gpus=0, **model) == rt.minutes(10**7 * forward)
    assert res.train_min(epochs=10, n_set=10**6, gpus=1, **model) == rt.minutes(
        10 * 10**6 * rt.PASSES * forward, gpus=1)
    assert res.test_min(n_public=10**6, n_scored=10**6, dim=128, searches=2, gpus=1) == \
        rt.minutes(2 * 2 * 10**12 * 128, gpus=1)


def test_the_training_loaders_settings_are_its_own():
    from dataclasses import asdict

    from dejavu.training.loader import LoaderConfig
    assert res.LOADER == asdict(LoaderConfig())


def test_the_data_stage_takes_its_images_decoding_time_or_the_benchmarks_drawing():
    assert res.data_min(source="synthetic", n_images=2000, side=32) == \
        rt.synth_minutes(n_images=2000, side=32)
    assert res.data_min(source="jsonl", n_images=1000, side=224) == rt.MIN_MINUTES
    # 40 million images at 65 a second, three times over: three weeks in one job
    assert res.data_min(source="coco", n_images=40_000_000, side=224) == \
        rt.START_MINUTES + round(3 * 40_000_000 / 65 / 60 + 0.5)
