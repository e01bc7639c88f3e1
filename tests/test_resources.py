"""The resource formulas (dejavu/resources.py): each term is what its stage holds."""

import math

import pytest

from dejavu import resources as res
from dejavu import runtime as rt

pytestmark = pytest.mark.unit

MB = 2**20


def test_a_set_that_fits_the_cache_is_held_by_every_process_and_one_that_does_not_streams():
    small = dict(side=32, batch_size=128, backbone="convnet", width=16,
                 projector=[512, 512, 512], cache_mb=1024, workers=2, prefetch=2)
    held = res.train(n_images=500, processes=1, **small)
    state = res.model_state_mb("convnet", 16, [512, 512, 512])
    assert held["threads"] == 1
    assert held["mem_mb"] == pytest.approx(res.TORCH_BASE_MB + state + 500 * 32 * 32 * 3 / MB,
                                           abs=1)
    two = res.train(n_images=500, processes=2, **small)
    assert two["mem_mb"] == pytest.approx(2 * held["mem_mb"], abs=2)  # each holds the set
    # 300K ImageNet images at 224 px (45 GB) stream: 8 processes, 2 workers x 2 batches each
    big = res.train(n_images=300_000, side=224, processes=8, batch_size=1024,
                    backbone="resnet101", width=16, projector=[8192] * 3, cache_mb=1024,
                    workers=2, prefetch=2)
    per_process = (res.TORCH_BASE_MB + res.model_state_mb("resnet101", 16, [8192] * 3)
                   + 2 * 2 * 128 * 224 * 224 * 3 / MB)
    assert big["mem_mb"] == pytest.approx(8 * per_process, abs=8)
    assert big["threads"] == 8 * 3 and big["mem_mb"] < 40_000  # not the 45 GB set


def test_training_on_the_cpu_holds_its_batch_activations_and_on_a_gpu_not_in_host_memory():
    args = dict(n_images=100_000, side=64, processes=1, batch_size=128, backbone="convnet",
                width=16, projector=[512, 512, 512], cache_mb=8, workers=2, prefetch=2)
    gpu, cpu = res.train(**args)["mem_mb"], res.train(**args, on_cpu=True)["mem_mb"]
    # two views of 128 images, 64 x 64 px, 7.5 x 16 floats per pixel: 503 MB
    assert cpu - gpu == pytest.approx(2 * 128 * 64 * 64 * 120 * 4 / MB, abs=1)
    # bench/scale.py measured this job (N = 400 per class) at a 1869 MB peak
    assert cpu > 1869 > gpu
    # a ResNet with a small stem keeps 16 times the pixels through the network
    assert res.activations_mb("resnet18", 64, 32, 10, small_stem=True) == \
        pytest.approx(16 * res.activations_mb("resnet18", 64, 32, 10))


def test_model_state_counts_weights_gradients_and_two_moments():
    # ResNet-101 (42.5 M) + 2048-8192-8192-8192 projector (~151 M): ~3 GB
    params = 42.5e6 + (2048 * 8192 + 8192) + 2 * (8192 * 8192 + 8192)
    assert res.model_state_mb("resnet101", 16, [8192] * 3) == pytest.approx(16 * params / MB)
    assert res.backbone_size("convnet", 16)[1] == 128  # widths 16, 32, 64, 128


def test_terms_that_grow_with_the_data_are_the_stated_ones():
    grow = 10_000
    # a k-NN job grows by the float32 public embeddings and queries it holds...
    assert res.knn(n_public=2 * grow, n_queries=grow, dims=512, k=20) - \
        res.knn(n_public=grow, n_queries=grow, dims=512, k=20) == \
        pytest.approx(grow * 512 * 4 / MB, abs=1)
    # ...the crop job and an embed job by nothing but their blocks and shards
    assert res.crops(n_attacked=grow, canvas=256, side=224, block_rows=1024) - \
        res.crops(n_attacked=0, canvas=256, side=224, block_rows=1024) <= 11
    # the classifier by its hold, one block of crops and their probabilities...
    assert res.correlation(n_train=10**7, n_crops=0, side=224, classes=1000) <= \
        res.TORCH_BASE_MB + res.CORRELATION_HOLD_MB + 4096 * (224 * 224 * 3 + 32 * 1000) / MB + 1
    # ...and, per crop, by nothing that grows with the classes (no crops x classes table)
    for rows in (lambda c: res.correlation(n_train=0, n_crops=grow, side=16, classes=c),
                 lambda c: res.knn(n_public=0, n_queries=grow, dims=32, k=100)):
        assert rows(1000) - rows(10) <= 4 * 8 * 4096 * 990 / MB + 1


def test_the_summary_and_report_grow_with_the_per_sample_rows_they_read():
    """Their largest slopes in the ImageNet-shaped rehearsal (issue 38): 1,931 and 3,661
    bytes per attacked crop with five per-sample rows per crop; the formulas hold them."""
    crops, per_crop = 600_000, 5
    for formula, measured in ((res.summary, 1931), (res.report, 3661)):
        grown = formula(n_samples=per_crop * crops) - formula(n_samples=0)
        assert grown * MB >= measured * crops
        assert formula(n_samples=0) in (res.LIGHT_BASE_MB, res.REPORT_BASE_MB)


def test_the_synthetic_block_is_the_benchmarks_own():
    from dejavu.data import synth
    assert res.SYNTH_BLOCK_MB * MB == synth.BLOCK_BYTES
    # ImageNet's row count at 16 px: 1.281M x 0.40 ms = 8.6 minutes of drawing, asked for
    # three times over with five to start
    assert rt.synth_minutes(n_images=1_281_000, side=16) == 5 + math.ceil(3 * 8.566)


def test_the_correlation_hold_is_the_classifiers_own():
    from dejavu.attack import score
    from dejavu.onemodel import correlation
    assert res.CORRELATION_HOLD_MB * MB == correlation.HOLD_BYTES
    assert res.CORRELATION_BLOCK == correlation.BLOCK_CROPS
    assert res.BOOT_CHUNK == score.BOOT_CHUNK


def test_sizes_are_read_from_metadata(tmp_path):
    import numpy as np
    import pandas as pd
    from dejavu.core.store import write_images
    write_images(tmp_path / "x.zarr", np.zeros((7, 5, 5, 3), np.uint8), chunk_rows=2)
    assert res.stored_shape(str(tmp_path / "x.zarr")) == (7, 5, 5, 3)
    pd.DataFrame({"set": ["A", "A", "B", "public"], "attacked": [True, False, True, False],
                  "label": [0, 4, 2, 1]}).to_parquet(tmp_path / "split.parquet")
    assert res.split_classes(str(tmp_path / "split.parquet")) == 5
    assert res.split_count(str(tmp_path / "split.parquet"), ("A",)) == 2
    assert res.split_count(str(tmp_path / "split.parquet"), ("A", "B"), True) == 2


def counted_macs(model, *inputs) -> float:
    """Multiply-adds of the convolutions, linear layers and attention of one forward pass,
    counted from the shapes each layer saw (attention computes its projections itself, so
    they are counted with it: 4 d^2 per token, and 2 d per pair of tokens)."""
    import torch
    total = []

    def count(module, args, out):
        if isinstance(module, torch.nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * \
                module.kernel_size[1]
            total.append(out.numel() * per_output)
        elif isinstance(module, torch.nn.MultiheadAttention):
            tokens, d = args[0].shape[-2], module.embed_dim
            total.append(args[0].numel() // d * (4 * d * d + 2 * tokens * d))
        elif isinstance(module, torch.nn.Linear):
            total.append(out.numel() * module.in_features)
    kinds = (torch.nn.Conv2d, torch.nn.Linear, torch.nn.MultiheadAttention)
    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        model.eval()(*inputs)
    for hook in hooks:
        hook.remove()
    return float(sum(total))


@pytest.mark.parametrize("backbone, side, small_stem, tolerance", [
    ("convnet", 32, True, 1e-9), ("resnet18", 224, False, 0.02), ("resnet50", 224, False, 0.02),
    ("resnet18", 32, True, 0.15), ("vit_tiny", 32, True, 0.25)])
def test_forward_work_is_what_the_model_computes(backbone, side, small_stem, tolerance):
    """The run-time formulas' MACs per image against a count over the real model's layers
    (a small stem: 16 times the standard ResNet's pixels; ViTs: one MAC per parameter and
    token)."""
    import torch
    from dejavu.core.models import SSLModel
    model = SSLModel(backbone, [64, 32], width=8, small_stem=small_stem, image_size=side)
    counted = counted_macs(model, torch.zeros(2, 3, side, side)) / 2
    planned = rt.forward_macs(backbone, 8, side, [64, 32], small_stem=small_stem,
                               patch_size=model.arch["patch_size"])
    assert planned == pytest.approx(counted, rel=tolerance)


def test_decoder_work_is_about_what_its_unet_computes():
    import torch
    from dejavu.rcdm.decoder import Decoder, DecoderConfig
    for layers in (1, 2):
        cfg = DecoderConfig(resolution=16, width=32, channel_mult=(1, 2, 3),
                            layers_per_block=layers)
        counted = counted_macs(Decoder(10, cfg), torch.zeros(1, 3, 16, 16),
                               torch.zeros(1, dtype=torch.long), torch.zeros(1, 10))
        assert rt.unet_macs(16, [32, 64, 96], layers) == pytest.approx(counted, rel=0.1)


def test_run_time_is_the_start_and_the_work_at_the_planned_rate():
    rate = rt.CPU_MACS_PER_S
    work = 3600 * rate  # an hour at the planned rate: three with the safety factor
    assert rt.minutes(work) == rt.START_MINUTES + rt.SAFETY * 60
    assert rt.minutes(2 * work) == rt.START_MINUTES + 2 * rt.SAFETY * 60
    assert rt.minutes(work, threads=2) == rt.START_MINUTES + rt.SAFETY * 30
    assert rt.minutes(work, gpus=1) == rt.MIN_MINUTES  # a GPU: seconds of work
    assert rt.minutes(0) == rt.MIN_MINUTES
    # training: epochs x images x two views x forward and backward
    forward = rt.forward_macs("convnet", 16, 32, [512, 512, 512])
    assert rt.train_minutes(epochs=400, n_images=500, forward=forward, gpus=0,
                             processes=1) == rt.minutes(400 * 500 * 2 * 3 * forward)
    # twice the data, (about) twice the time
    small = rt.knn_minutes(n_public=10**6, n_queries=10**5, dims=2048, gpus=0)
    large = rt.knn_minutes(n_public=2 * 10**6, n_queries=10**5, dims=2048, gpus=0)
    assert large - rt.START_MINUTES == pytest.approx(2 * (small - rt.START_MINUTES), abs=1)


@pytest.mark.parametrize("depth, width, side, small_stem", [(10, 16, 32, True),
                                                            (18, 64, 224, False)])
def test_correlation_classifier_work_is_what_it_computes(depth, width, side, small_stem):
    import torch
    from dejavu.onemodel.correlation import ResNetClassifier
    model = ResNetClassifier(10, depth=depth, width=width, small_stem=small_stem)
    counted = counted_macs(model, torch.zeros(1, 3, side, side))
    assert rt.resnet_macs(f"resnet{depth}", side, small_stem, width) == pytest.approx(
        counted, rel=0.15 if small_stem else 0.02)


def test_a_job_that_continues_itself_asks_for_its_limit_and_ten_minutes():
    assert rt.limited_minutes(None) is None
    assert rt.limited_minutes(720) == 730
    assert rt.limited_minutes(0.0001) == 11   # a part of a minute counts as one
