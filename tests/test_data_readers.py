"""Every layout gives the same samples: competition zips, extracted folders, Stanford, plain folders, MNIST."""
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg
from kit.data import cache, readers


def extract(zip_path, into):
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(into)


def by_image(ds):
    """{image file name: [(label, crop bytes), ...]} so layouts that list files in other orders compare equal."""
    out = {}
    for img, label, source in zip(ds.images, ds.labels, ds.sources):
        out.setdefault(source.rsplit("/", 1)[-1], []).append((int(label), img.tobytes()))
    return out


@pytest.fixture(scope="module")
def from_zips(demo_dir, tmp_path_factory):
    return cache.prepare(demo_dir, tmp_path_factory.mktemp("zips") / "c.npz", workers=1, progress=False)


def test_zip_layout_gives_one_sample_per_box_with_breeds_sorted_by_wnid(from_zips, demo):
    assert from_zips.classes == demo["breeds"] == ["Chihuahua", "Japanese spaniel", "Maltese dog", "Pekinese",
                                                   "Shih-Tzu", "Blenheim spaniel"]
    boxes = demo["boxes"]
    assert len(from_zips) == sum(len(b) for b in boxes.values()) == 144        # every 5th image has two dogs
    found = by_image(from_zips)
    for name, known in boxes.items():
        assert [label for label, _ in found[name]] == [b[4] for b in known]
    assert from_zips.images.shape[1:] == (3, 64, 64) and from_zips.images.dtype == np.uint8
    assert from_zips.report["images_read"] == 120 and from_zips.report["no_annotation"] == 0
    assert from_zips.report["skipped"] == []


def test_path_of_all_dogs_zip_itself(from_zips, demo, tmp_path):
    ds = cache.prepare(demo["images"], tmp_path / "c.npz", workers=1, progress=False)
    assert np.array_equal(ds.images, from_zips.images) and ds.classes == from_zips.classes


def test_extracted_folders_match_the_zips(from_zips, demo, tmp_path):
    extract(demo["images"], tmp_path)
    extract(demo["annotations"], tmp_path)
    ds = cache.prepare(tmp_path, tmp_path / "c.npz", workers=1, progress=False)
    assert ds.report["layout"] == "kaggle" and ds.classes == from_zips.classes
    assert by_image(ds) == by_image(from_zips)


def test_stanford_layout_matches_the_zips(from_zips, demo, tmp_path):
    extract(demo["annotations"], tmp_path)
    with zipfile.ZipFile(demo["images"]) as z:
        for member in z.namelist():
            image_id = member.rsplit("/", 1)[-1]
            label = demo["boxes"][image_id][0][4]
            folder = next(p.name for p in (tmp_path / "Annotation").iterdir()
                          if p.name.startswith(image_id.split("_")[0]))
            (tmp_path / "Images" / folder).mkdir(parents=True, exist_ok=True)
            (tmp_path / "Images" / folder / image_id).write_bytes(z.read(member))
            assert from_zips.classes[label] == readers.readable(folder)
    ds = cache.prepare(tmp_path, tmp_path / "c.npz", workers=1, progress=False)
    assert ds.report["layout"] == "stanford" and ds.classes == from_zips.classes
    assert by_image(ds) == by_image(from_zips)
    assert ds.sources[0].startswith("Images/n02085620-Chihuahua/")


def test_name_tag_decides_the_breed_of_each_box(archives):
    xml = ("<annotation><object><name>Chihuahua</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>90</xmax>"
           "<ymax>90</ymax></bndbox></object><object><name>Japanese_spaniel</name><bndbox><xmin>150</xmin>"
           "<ymin>10</ymin><xmax>250</xmax><ymax>110</ymax></bndbox></object></annotation>")
    root = archives({"n02085620_1.jpg": jpeg(), "n02085782_2.jpg": jpeg()},
                    {"n02085620-Chihuahua/n02085620_1": xml,
                     "n02085782-Japanese_spaniel/n02085782_2": xml.replace("<object>", "<object>", 1)})
    ds = cache.prepare(root, root / "c.npz", workers=1, progress=False)
    assert ds.classes == ["Chihuahua", "Japanese spaniel"]
    assert ds.labels.tolist() == [0, 1, 0, 1]


def test_plain_folder_one_class_per_subfolder(tmp_path):
    for cls, colour in (("cats", (250, 0, 0)), ("birds", (0, 250, 0))):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (120, 80), colour).save(tmp_path / "pets" / cls / f"{i}.png")
    ds = cache.prepare(tmp_path / "pets", tmp_path / "c.npz", workers=1, progress=False)
    assert ds.report["layout"] == "folder" and ds.classes == ["birds", "cats"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert (ds.images[:3, 1] == 250).all() and (ds.images[3:, 0] == 250).all()      # green birds, red cats


def test_flat_folder_is_one_class(tmp_path):
    (tmp_path / "faces").mkdir()
    for i in range(4):
        (tmp_path / "faces" / f"{i}.jpg").write_bytes(jpeg(size=(100 + 50 * i, 90)))
    ds = cache.prepare(tmp_path / "faces", tmp_path / "c.npz", crop="whole", size=32, workers=1, progress=False)
    assert ds.classes == ["faces"] and ds.labels.tolist() == [0] * 4 and ds.images.shape == (4, 3, 32, 32)


def write_idx(raw, prefix, images, labels):
    """MNIST's idx files (uncompressed), as torchvision reads them."""
    n = len(images)
    (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
        np.array([2051, n, 28, 28], ">i4").tobytes() + images.astype(np.uint8).tobytes())
    (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([2049, n], ">i4").tobytes() +
                                                      labels.astype(np.uint8).tobytes())


@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_mnist_from_local_raw_files(tmp_path, name):
    raw = tmp_path / name / "raw"
    raw.mkdir(parents=True)
    images = np.zeros((5, 28, 28), np.uint8)
    images[:, :14, :14] = 255                                  # a bright top-left quarter
    write_idx(raw, "train", images[:3], np.array([3, 1, 4]))
    write_idx(raw, "t10k", images[3:], np.array([1, 5]))
    for data in (tmp_path, tmp_path / name):                   # PATH holding MNIST/raw, or PATH/MNIST itself
        ds = cache.prepare(data, tmp_path / f"c{len(str(data))}.npz", workers=1, progress=False)
        assert ds.images.shape == (5, 1, 64, 64) and ds.labels.tolist() == [3, 1, 4, 1, 5]
        assert len(ds.classes) == 10 and ds.report["layout"] == "mnist"
        assert ds.images[:, 0, 4:28, 4:28].min() > 240 and ds.images[:, 0, 36:, :].max() < 15
