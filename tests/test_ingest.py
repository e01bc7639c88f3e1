"""Real-dataset adapters and the ingest stage, on tiny trees of real JPEG and XML files."""

import json

import numpy as np
import pandas as pd
import pytest
import zarr
from PIL import Image, ImageOps

from dejavu.data import ingest, sources
from dejavu.core.store import read_index, read_square
from dejavu.data.testing import add_bad_inputs, draw, jpeg_bytes, wnid, write_imagenet_tree

pytestmark = pytest.mark.unit

# what each planted bad input must become: (kind recorded, action, image in the index?)
EXPECTED = {
    "truncated": ("truncated", "image skipped", False),
    "corrupt": ("unreadable", "image skipped", False),
    "zero_byte": ("zero_byte", "image skipped", False),
    "cmyk": ("cmyk", "converted", True),
    "grayscale": ("grayscale", "converted", True),
    "high_bit_depth": ("high_bit_depth", "converted", True),
    "alpha": ("alpha", "converted", True),
    "exif_orientation": ("exif_orientation", "converted", True),
    "xml_unparsable": ("xml_unparsable", "no boxes", True),
    "box_outside": ("box_outside", "box clipped", True),
    "box_inverted": ("box_inverted", "box dropped", True),
    "xml_no_box": ("xml_no_box", "no boxes", True),
    "unknown_class": ("unknown_class", "image skipped", False),
    "duplicate_id": ("duplicate_id", "image skipped", False),
    "no_annotation_dir": ("no_annotation_dir", "no boxes", None),
}


def boxes_of(table, image_id):
    return [[int(v) for v in box] for box in table.set_index("id").loc[image_id, "boxes"]]


def imagenet_source(tree, **extra):
    return {"name": "imagenet", "root": str(tree["train"]),
            "annotations": str(tree["annotations"]), "class_list": str(tree["class_list"]),
            **extra}


def ingest_all(out, manifest, scan_rejects, jobs=2, workers=1, **options):
    """Scan tables -> store, index, rejects, as the three rules do."""
    out.mkdir(exist_ok=True)
    manifest.to_parquet(out / "manifest.parquet", index=False)
    scan_rejects.to_parquet(out / "scan_rejects.parquet", index=False)
    options = {"image_size": 64, "shard_rows": 8, "chunk_rows": 4, **options}
    metas = [str(out / f"{j}.parquet") for j in range(jobs)]
    for j in range(jobs):
        ingest.run_shard(str(out / "manifest.parquet"), str(out / "images.zarr"), metas[j],
                         job=j, jobs=jobs, workers=workers, **options)
    ingest.finalize(str(out / "manifest.parquet"), str(out / "scan_rejects.parquet"), metas,
                    str(out / "images.zarr"), str(out / "index.parquet"),
                    str(out / "rejects.parquet"))
    return (zarr.open_array(str(out / "images.zarr"), mode="r"),
            read_index(out / "index.parquet"), pd.read_parquet(out / "rejects.parquet"))


@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    tree = write_imagenet_tree(root, classes=3, per_class=6)
    return tree, add_bad_inputs(tree)


@pytest.fixture(scope="module")
def ingested(bad_tree, tmp_path_factory):
    tree, planted = bad_tree
    manifest, classes, rejects = ingest.scan(imagenet_source(tree))
    store, index, rejects = ingest_all(tmp_path_factory.mktemp("out"), manifest, rejects,
                                       workers=2)
    return tree, planted, manifest, classes, store, index, rejects


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_bad_input_is_recorded_with_its_reason(ingested, case):
    _, planted, _, _, _, index, rejects = ingested
    kind, action, kept = EXPECTED[case]
    path = planted[case]  # image problems name the image, annotation problems the XML
    rows = rejects[(rejects["path"] == str(path)) |
                   ((rejects["id"] == path.stem) & (rejects["stage"] == "scan"))]
    assert (rows["kind"] == kind).any(), rows
    assert rows.loc[rows["kind"] == kind, "action"].iloc[0] == action
    assert rows["reason"].str.len().min() > 10
    if kept is not None:
        stored = set(index["path"])
        assert (str(planted[case]) in stored) == kept


def test_good_images_are_all_stored_and_nothing_is_lost_silently(ingested):
    tree, planted, manifest, classes, store, index, rejects = ingested
    files = sorted(p for p in tree["train"].rglob("*.JPEG"))
    skipped = set(rejects.loc[rejects["action"] == "image skipped", "path"])
    assert {str(p) for p in files} == set(index["path"]) | skipped  # every file accounted for
    assert len(set(index["path"]) & skipped) == 0
    assert index["id"].is_unique
    assert list(classes["key"]) == [wnid(i) for i in range(3)]
    assert classes["name"].iloc[1] == "class 1, thing 1"
    # rows point at the store; the rows of skipped files hold nothing
    assert store.shape == (len(manifest), 64, 64, 3)
    empty = sorted(set(range(len(manifest))) - set(index["row"]))
    assert len(empty) == 3 and all(store[r].max() == 0 for r in empty)


def test_fit_keeps_aspect_and_scales_boxes_with_the_image(ingested):
    tree, _, _, _, store, index, _ = ingested
    # the first class-0 image of the tree as written (not a planted one) with an XML
    annotated = sorted(int(p.stem.split("_")[1])
                       for p in (tree["annotations"] / wnid(0)).glob(f"{wnid(0)}_*.xml")
                       if p.stem.split("_")[1].isdigit())
    assert annotated, "the fixture tree has no annotated class-0 image"
    entry = index[index["id"] == f"{wnid(0)}_{annotated[0]}"].iloc[0]
    assert (entry["orig_width"], entry["orig_height"]) == (96, 72)
    assert (entry["width"], entry["height"]) == (64, 48)   # longer side to 64
    image = store[int(entry["row"])]
    assert image[48:].max() == 0                           # padding below the image
    assert len(entry["boxes"]) == 1
    x0, y0, x1, y1 = entry["boxes"][0]
    assert x1 <= 64 and y1 <= 48                           # the box scaled with the image
    patch = image[y0 + 1:y1 - 1, x0 + 1:x1 - 1].reshape(-1, 3).astype(int)
    assert len(patch) > 0
    assert np.abs(patch - [220, 40, 40]).max() < 40        # the class-0 object is in the box
    # the stored pixels are the file resized (PIL, bilinear)
    src = np.asarray(Image.open(entry["path"]).convert("RGB").resize((64, 48),
                                                                       Image.BILINEAR))
    assert np.abs(image[:48].astype(int) - src).mean() < 2


def test_exif_rotation_moves_the_box_with_the_pixels(ingested):
    _, planted, _, _, store, index, _ = ingested
    entry = index[index["path"] == str(planted["exif_orientation"])].iloc[0]
    assert (entry["orig_width"], entry["orig_height"]) == (40, 60)  # shown rotated
    x0, y0, x1, y1 = entry["boxes"][0]
    patch = store[int(entry["row"])][y0 + 1:y1 - 1, x0 + 1:x1 - 1].reshape(-1, 3).astype(int)
    assert patch[:, 1].mean() > 190 and patch[:, [0, 2]].mean() < 60  # the green patch
    image = store[int(entry["row"])][:entry["height"], :entry["width"]].astype(int)
    greenness = image[..., 1] - image[..., [0, 2]].mean(axis=-1)
    outside = np.ones(greenness.shape, bool)
    outside[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = False
    assert greenness[outside].max() < 40                      # and nothing green outside


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_box_matches_pil_exif_transpose(orientation):
    raw = np.zeros((30, 50, 3), np.uint8)
    raw[4:11, 31:45] = 255                                   # box [31, 4, 45, 11] (x0 y0 x1 y1)
    img = Image.fromarray(raw)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    out = np.asarray(ImageOps.exif_transpose(img))[..., 0] > 0
    ys, xs = np.nonzero(out)
    assert ingest.orient_box([31, 4, 45, 11], orientation, 50, 30) == \
        [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_conversions_give_plain_rgb(ingested):
    _, planted, _, _, store, index, _ = ingested
    for case in ("cmyk", "grayscale", "high_bit_depth", "alpha"):
        entry = index[index["path"] == str(planted[case])].iloc[0]
        region = store[int(entry["row"])][:entry["height"], :entry["width"]]
        assert region.mean() > 30, case                     # real pixels, not black
    gray = index[index["path"] == str(planted["high_bit_depth"])].iloc[0]
    region = store[int(gray["row"])][:gray["height"], :gray["width"]].astype(int)
    assert np.abs(region[..., 0] - region[..., 1]).max() <= 1  # grey stays grey
    assert region.max() > 150                               # 16-bit scaled, not clipped


def test_box_outside_clipped_or_rejected_by_rule(bad_tree):
    tree, planted = bad_tree
    clip, _, _ = ingest.scan(imagenet_source(tree))
    reject, _, table = ingest.scan(imagenet_source(tree, boxes_outside="reject"))
    image_id = planted["box_outside"].stem
    assert boxes_of(clip, image_id) == [[60, 40, 80, 60]]
    assert len(boxes_of(reject, image_id)) == 0
    assert (table.loc[table["path"].str.endswith(f"{image_id}.xml"), "action"]
            == "box dropped").any()


def test_strict_mode_fails_at_the_first_problem_naming_the_file(bad_tree, tmp_path):
    tree, planted = bad_tree
    with pytest.raises(sources.BadInput, match="strict mode"):
        ingest.scan(imagenet_source(tree), strict=True)
    # decoding: a tree whose only problem is a truncated file fails in the ingest job
    clean = write_imagenet_tree(tmp_path / "t", classes=2, per_class=3)
    whole = (clean["train"] / wnid(0) / f"{wnid(0)}_1.JPEG").read_bytes()
    bad = clean["train"] / wnid(0) / f"{wnid(0)}_2.JPEG"
    bad.write_bytes(whole[:len(whole) // 2])
    manifest, _, rejects = ingest.scan(imagenet_source(clean), strict=True)
    with pytest.raises(sources.BadInput, match=str(bad)):
        ingest_all(tmp_path / "out", manifest, rejects, jobs=1, workers=2, strict=True)


def test_strict_mode_accepts_format_conversions(tmp_path):
    tree = write_imagenet_tree(tmp_path / "t", classes=2, per_class=3)
    good, box = draw(0, 80, 60, np.random.default_rng(0))
    (tree["train"] / wnid(0) / f"{wnid(0)}_1.JPEG").write_bytes(
        jpeg_bytes(Image.fromarray(good).convert("CMYK")))
    manifest, _, rejects = ingest.scan(imagenet_source(tree), strict=True)
    _, index, table = ingest_all(tmp_path / "out", manifest, rejects, jobs=1, strict=True)
    assert len(index) == 6 and list(table["kind"]) == ["cmyk"]


def test_resize_policies_center_and_stretch(tmp_path):
    tree = write_imagenet_tree(tmp_path / "t", classes=2, per_class=2, box_fraction=1.0)
    manifest, _, rejects = ingest.scan(imagenet_source(tree))
    for policy, size in (("center", (64, 64)), ("stretch", (64, 64))):
        _, index, _ = ingest_all(tmp_path / policy, manifest, rejects, jobs=1, resize=policy)
        assert set(zip(index["width"], index["height"])) == {size}
        raw = manifest.set_index("id")["boxes"]
        for image_id, boxes in zip(index["id"], index["boxes"]):
            (x0, y0, x1, y1), = raw[image_id]
            if policy == "stretch":  # scale 64/96 across, 64/72 down, outward
                assert boxes == [[int(np.floor(x0 * 2 / 3)), int(np.floor(y0 * 8 / 9)),
                                  int(np.ceil(x1 * 2 / 3)), int(np.ceil(y1 * 8 / 9))]]
            else:                    # shorter side 72 -> 64, then the centre 64 of 85
                s, ox = 64 / 72, (round(96 * 64 / 72) - 64) // 2
                want = [max(0, int(np.floor(x0 * s - ox))), int(np.floor(y0 * s)),
                        min(64, int(np.ceil(x1 * s - ox))), int(np.ceil(y1 * s))]
                assert boxes == ([want] if want[2] > want[0] else [])


def test_a_killed_job_rerun_rewrites_identical_shards_and_finalize_checks_coverage(tmp_path):
    tree = write_imagenet_tree(tmp_path / "t", classes=2, per_class=10)
    manifest, _, rejects = ingest.scan(imagenet_source(tree))
    store, index, _ = ingest_all(tmp_path / "a", manifest, rejects, jobs=3, workers=2)
    first = store[:]
    out = tmp_path / "b"
    out.mkdir()
    manifest.to_parquet(out / "manifest.parquet", index=False)
    rejects.to_parquet(out / "scan_rejects.parquet", index=False)
    common = dict(job=1, jobs=3, image_size=64, shard_rows=8, chunk_rows=4)
    ingest.run_shard(str(out / "manifest.parquet"), str(out / "images.zarr"),
                     str(out / "0.parquet"), **{**common, "job": 0})
    with pytest.raises(RuntimeError, match="incomplete"):
        ingest.finalize(str(out / "manifest.parquet"), str(out / "scan_rejects.parquet"),
                        [str(out / "0.parquet")], str(out / "images.zarr"),
                        str(out / "index.parquet"), str(out / "rejects.parquet"))
    for job in (1, 1, 2):  # job 1 "killed" and rerun
        ingest.run_shard(str(out / "manifest.parquet"), str(out / "images.zarr"),
                         str(out / f"{job}.parquet"), **{**common, "job": job})
    ingest.finalize(str(out / "manifest.parquet"), str(out / "scan_rejects.parquet"),
                    [str(out / f"{j}.parquet") for j in range(3)], str(out / "images.zarr"),
                    str(out / "index.parquet"), str(out / "rejects.parquet"))
    assert np.array_equal(zarr.open_array(str(out / "images.zarr"))[:], first)
    assert pd.read_parquet(out / "index.parquet").equals(pd.read_parquet(tmp_path / "a" /
                                                                         "index.parquet"))


def test_read_square_reads_only_the_image_region(ingested):
    _, _, _, _, store, index, _ = ingested
    entry = index.iloc[0]
    x = read_square(store, [int(entry["row"])], [entry["height"]], [entry["width"]], 32)
    assert x.shape == (1, 3, 32, 32)
    assert x.min() > 0.05  # the zero padding below the image is not in the square


# ---------------------------------------------------------------- the user's own images

def own_images(root, n_per_class=3):
    rng = np.random.default_rng(0)
    boxes = {}
    for label, name in enumerate(["cat", "dog"]):
        (root / "images" / name).mkdir(parents=True)
        for i in range(n_per_class):
            img, box = draw(label, 80, 60, rng)
            rel = f"{name}/{name}{i}.png"
            Image.fromarray(img).save(root / "images" / rel)
            boxes[rel] = (name, box)
    return boxes


def test_own_images_with_boxes_from_a_csv(tmp_path):
    boxes = own_images(tmp_path)
    lines = ["path,label,x0,y0,x1,y1"] + [f"{rel},{name},{','.join(map(str, b))}"
                                          for rel, (name, b) in boxes.items() if "0" not in rel]
    lines += ["ghost/none.png,cat,1,1,5,5", "dog/dog1.png,dog,5,five,9,9"]
    (tmp_path / "boxes.csv").write_text("\n".join(lines) + "\n")
    manifest, classes, rejects = ingest.scan({"name": "folder",
                                               "root": str(tmp_path / "images"),
                                               "boxes": str(tmp_path / "boxes.csv")})
    assert list(classes["key"]) == ["cat", "dog"]
    assert boxes_of(manifest, "cat/cat1") == [boxes["cat/cat1.png"][1]]
    assert len(boxes_of(manifest, "cat/cat0")) == 0                  # no box: corner crop
    assert set(rejects["kind"]) == {"box_unknown_image", "box_invalid"}
    _, index, _ = ingest_all(tmp_path / "out", manifest, rejects, jobs=1)
    assert len(index) == 6 and index.set_index("id").loc["dog/dog2", "label"] == 1


def test_own_images_from_a_list_file_with_coco_boxes(tmp_path):
    boxes = own_images(tmp_path)
    (tmp_path / "list.csv").write_text("path,label\n" + "".join(
        f"{rel},{name}\n" for rel, (name, _) in boxes.items()) + "dog/missing.png,dog\n"
        "cat/cat1.png,bird\n")
    files = sorted(boxes)
    coco = {"images": [{"id": i, "file_name": rel} for i, rel in enumerate(files)],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": [{"id": i, "image_id": i, "category_id": 1 + (name == "dog"),
                             "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]}
                            for i, (name, b) in enumerate(boxes[r] for r in files)]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    (tmp_path / "classes.txt").write_text("cat a cat\ndog a dog\n")
    manifest, classes, rejects = ingest.scan({
        "name": "folder", "root": str(tmp_path / "images"), "list": str(tmp_path / "list.csv"),
        "boxes": str(tmp_path / "coco.json"), "class_list": str(tmp_path / "classes.txt")})
    assert list(classes["name"]) == ["a cat", "a dog"]
    assert sorted(rejects["kind"]) == ["missing_file", "unknown_class"]
    assert boxes_of(manifest, "dog/dog2") == [boxes["dog/dog2.png"][1]]
    assert len(manifest) == 6


def test_every_entry_of_a_folder_dataset_that_is_not_ingested_is_recorded(tmp_path):
    """An animated GIF (first frame, recorded as converted), a dangling link named .jpg and
    a directory named folder.jpg (skipped), a stray text file in a class folder and one
    beside the class folders (ignored): none vanishes without a row."""
    own_images(tmp_path)
    cat = tmp_path / "images" / "cat"
    frames = [Image.fromarray(np.full((40, 50, 3), v, np.uint8)) for v in (200, 30, 90)]
    frames[0].save(cat / "moving.gif", save_all=True, append_images=frames[1:])
    (cat / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (cat / "folder.jpg").mkdir()
    (cat / "notes.txt").write_text("not an image")
    (tmp_path / "images" / "README.md").write_text("my dataset")
    manifest, _, rejects = ingest.scan({"name": "folder", "root": str(tmp_path / "images")})
    recorded = {(row.path.split("/")[-1], row.kind, row.action)
                for row in rejects.itertuples()}
    assert recorded == {("gone.jpg", "missing_file", "image skipped"),
                        ("folder.jpg", "not_a_file", "image skipped"),
                        ("notes.txt", "not_an_image", "ignored"),
                        ("README.md", "not_in_class_folder", "ignored")}
    assert "cat/moving" in set(manifest["id"])
    _, index, all_rejects = ingest_all(tmp_path / "out", manifest, rejects, jobs=1)
    gif = all_rejects[all_rejects["id"] == "cat/moving"]
    assert list(gif["kind"]) == ["animated"] and list(gif["action"]) == ["converted"]
    assert "first" in gif["reason"].item() and "cat/moving" in set(index["id"])
    # strict mode fails at the first skipped entry (sorted: folder.jpg), not at stray files
    with pytest.raises(sources.BadInput, match="folder.jpg"):
        ingest.scan({"name": "folder", "root": str(tmp_path / "images")}, strict=True)


@pytest.mark.parametrize("folders", [False, True])
def test_validation_images_are_the_held_out_pool_labelled_by_their_annotations(tmp_path,
                                                                               folders):
    """ImageNet's validation images, flat (the class is what the XML's objects name) or in
    class folders: pool "heldout", every one boxed; those whose class cannot be read are
    skipped, each recorded with its reason."""
    from dejavu.data.testing import VAL_BAD, write_imagenet_val
    tree = write_imagenet_tree(tmp_path, classes=3, per_class=4)
    val = write_imagenet_val(tmp_path, classes=3, per_class=2, folders=folders)
    manifest, _, rejects = ingest.scan({
        "name": "imagenet", "root": str(tree["train"]), "annotations": str(tree["annotations"]),
        "heldout_root": str(val["val"]), "heldout_annotations": str(val["val_annotations"])})
    held = manifest[manifest["pool"] == "heldout"]
    assert (manifest["pool"] == "train").sum() == 12
    assert held["label"].tolist() == [0, 0, 1, 1, 2, 2]
    assert held["boxes"].map(len).eq(1).all() and held["id"].str.startswith("ILSVRC2012_val").all()
    skipped = rejects[rejects["kind"] == "val_no_label"]
    assert len(skipped) == (0 if folders else len(VAL_BAD))
    assert set(skipped["id"]) == set(val["planted"].values())
    assert (skipped["action"] == "image skipped").all()
    with pytest.raises(sources.BadInput, match="dataset.heldout_root"):
        ingest.scan({"name": "imagenet", "root": str(tree["train"]),
                      "heldout_root": str(tmp_path / "nowhere")})
