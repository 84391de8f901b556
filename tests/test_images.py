"""decode_image against torchvision's transforms, its errors, and the sample JPEG trees."""

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from harness.data import DataError
from harness.images import ImageReadError, decode_image
from harness.sample_images import write_jpeg_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_jpeg_tree(tmp_path_factory.mktemp("jpegs"), classes=3, per_class={"train": 4, "val": 2})


def torchvision_result(path, size) -> np.ndarray:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    return np.asarray(transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)])(rgb))


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


@pytest.mark.parametrize("size", [299, 224])
def test_jpegs_match_torchvision_within_one_grey_level(tree, size):
    for path in sorted(tree.rglob("*.JPEG")):
        decoded = decode_image(path, size)
        assert decoded.shape == (size, size, 3) and decoded.dtype == np.uint8
        assert difference(decoded, torchvision_result(path, size)).max() <= 1, path


def test_jpegs_decoded_at_a_reduced_scale_stay_within_one_grey_level_on_average(tree):
    # shorter sides of 400 to 500 pixels are at least four times 100: decoded at 1/2 or 1/4 of
    # their resolution, which is not exact; a resize that ignored the fraction of a pixel that such
    # a decode adds at the right and bottom edges would be 2 grey levels off on some
    paths = sorted(tree.rglob("*.JPEG"))
    means = [difference(decode_image(path, 100), torchvision_result(path, 100)).mean() for path in paths]
    assert max(means) < 1 and min(means) > 0.05


def noise(shape) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)


def test_png_of_exactly_the_size_comes_back_bit_exact(tmp_path):
    pixels = noise((32, 32, 3))
    Image.fromarray(pixels).save(tmp_path / "image.png")
    np.testing.assert_array_equal(decode_image(tmp_path / "image.png", 32), pixels)


@pytest.mark.parametrize("shape", [(32, 48, 3), (48, 32, 3)])
def test_shorter_side_of_the_size_is_cropped_not_resampled(tmp_path, shape):
    pixels = noise(shape)
    Image.fromarray(pixels).save(tmp_path / "image.png")
    expected = pixels[8:40] if shape[0] == 48 else pixels[:, 8:40]
    np.testing.assert_array_equal(decode_image(tmp_path / "image.png", 32), expected)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "1"])
def test_other_modes_come_back_rgb(tmp_path, mode):
    source = Image.fromarray(noise((16, 16, 4)), "RGBA")
    image = (source if "A" in mode else source.convert("RGB")).convert(mode)
    image.save(tmp_path / "image.png")
    decoded = decode_image(tmp_path / "image.png", 16)
    assert decoded.shape == (16, 16, 3)
    np.testing.assert_array_equal(decoded, np.asarray(image.convert("RGB")))


def test_cmyk_jpeg_comes_back_rgb(tree, tmp_path):
    path = next(tree.rglob("*.JPEG"))
    cmyk = tmp_path / "cmyk.jpg"
    with Image.open(path) as image:
        image.convert("CMYK").save(cmyk, quality=90)
    assert difference(decode_image(cmyk, 224), torchvision_result(cmyk, 224)).max() <= 1


def test_smaller_image_is_upscaled(tmp_path):
    Image.fromarray(noise((20, 30, 3))).save(tmp_path / "small.png")
    decoded = decode_image(tmp_path / "small.png", 64)
    assert decoded.shape == (64, 64, 3)
    assert difference(decoded, torchvision_result(tmp_path / "small.png", 64)).max() <= 1


def unreadable_files(folder, jpeg):
    truncated = folder / "truncated.JPEG"
    truncated.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    random_bytes = folder / "random.JPEG"
    random_bytes.write_bytes(noise(5000).tobytes())
    return {"truncated": truncated, "random bytes": random_bytes, "missing": folder / "missing.JPEG"}


@pytest.mark.parametrize("kind", ["truncated", "random bytes", "missing"])
def test_unreadable_file_raises_naming_it(tree, tmp_path, kind):
    path = unreadable_files(tmp_path, next(tree.rglob("*.JPEG")))[kind]
    with pytest.raises(ImageReadError) as raised:
        decode_image(path, 64)
    assert isinstance(raised.value, DataError)
    message = str(raised.value)
    assert message.startswith(f"{path}: cannot read the image: ") and "\n" not in message


def jpeg_files(root):
    return sorted(path.relative_to(root) for path in root.rglob("*") if path.is_file())


def test_tree_has_the_counts_and_sizes_asked(tmp_path):
    root = write_jpeg_tree(tmp_path / "tree", classes=12, per_class={"train": 2, "val": 1}, short_side=(300, 320))
    assert root == tmp_path / "tree"
    classes = [f"class{k:02d}" for k in range(12)]
    for split, count in (("train", 2), ("val", 1)):
        assert sorted(p.name for p in (root / split).iterdir()) == classes
        assert all(len(list((root / split / name).iterdir())) == count for name in classes)
    for path in root.rglob("*.JPEG"):
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert 300 <= min(image.size) <= 320 and 1.2 < max(image.size) / min(image.size) < 1.55


def test_tree_with_one_count_for_train_and_val(tmp_path):
    root = write_jpeg_tree(tmp_path, classes=2, per_class=3)
    assert [len(jpeg_files(root / split)) for split in ("train", "val")] == [6, 6]


def test_tree_is_the_same_bytes_for_a_seed(tmp_path):
    def tree_bytes(root, seed):
        write_jpeg_tree(root, classes=2, per_class={"train": 2}, seed=seed)
        return {path: (root / path).read_bytes() for path in jpeg_files(root)}

    first, other_seed = tree_bytes(tmp_path / "a", 0), tree_bytes(tmp_path / "c", 1)
    assert tree_bytes(tmp_path / "b", 0) == first
    assert other_seed.keys() == first.keys() and other_seed != first


def test_tree_classes_are_told_apart_by_colour(tree):
    def mean_colours(split):
        paths = sorted((tree / split).rglob("*.JPEG"))
        colours = np.array([decode_image(path, 32).reshape(-1, 3).mean(axis=0) for path in paths])
        return colours / colours.sum(axis=1, keepdims=True), np.array([int(p.parent.name[5:]) for p in paths])

    x_train, y_train = mean_colours("train")
    x_val, y_val = mean_colours("val")
    centroids = np.array([x_train[y_train == k].mean(axis=0) for k in range(3)])
    nearest = np.argmin(((x_val[:, None] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert (nearest == y_val).all()
