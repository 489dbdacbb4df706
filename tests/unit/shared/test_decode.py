import numpy as np
import pytest
from PIL import Image

from shared.decode import ImageRejected, open_image
from tests import images


def test_valid_png_decodes():
    img = open_image(images.png_digit(3), max_pixels=1_000_000)
    assert img.size == (260, 260)


def test_empty_file_is_400():
    with pytest.raises(ImageRejected) as err:
        open_image(b"", 1_000_000)
    assert err.value.status == 400 and "empty" in str(err.value)


def test_text_file_is_415_and_lists_formats():
    with pytest.raises(ImageRejected) as err:
        open_image(b"hello, this is not an image\n" * 10, 1_000_000)
    assert err.value.status == 415 and "PNG" in str(err.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_422(fmt):
    data = images.encode(images.ink_on_paper(5).convert("RGB"), fmt)
    with pytest.raises(ImageRejected) as err:
        open_image(images.truncated(data), 1_000_000)
    assert err.value.status == 422 and "truncated" in str(err.value)


def test_too_many_pixels_is_413_with_the_limit():
    with pytest.raises(ImageRejected) as err:
        open_image(images.encode(Image.new("L", (2000, 1000), 255)), max_pixels=1_000_000)
    assert err.value.status == 413 and "2000x1000" in str(err.value) and "1,000,000" in str(err.value)


def test_decompression_bomb_is_rejected_before_decoding():
    bomb = images.huge_blank_png(20_000, 20_000)  # 400 MP in a small file
    assert len(bomb) < 200_000
    with pytest.raises(ImageRejected) as err:
        open_image(bomb, max_pixels=16_000_000)
    assert err.value.status == 413


def test_format_outside_the_list_is_refused():
    data = images.encode(Image.new("RGB", (20, 20)), "PPM")
    with pytest.raises(ImageRejected) as err:
        open_image(data, 1_000_000)
    assert err.value.status == 415


def test_a_header_check_refuses_what_its_header_shows_and_leaves_the_pixels_to_the_decode():
    """decode=False, a batch's check at the gateway: format and pixel count, read from the header."""
    whole = images.encode(images.ink_on_paper(5))
    img = open_image(images.truncated(whole), 1_000_000, decode=False)
    assert (img.format, img.size) == ("PNG", (260, 260))
    with pytest.raises(ImageRejected) as err:
        open_image(images.truncated(whole), 1_000_000)
    assert "truncated" in str(err.value)
    for refused, status in ((whole[:20], 422), (b"not an image" * 10, 415)):
        with pytest.raises(ImageRejected) as err:
            open_image(refused, 1_000_000, decode=False)
        assert err.value.status == status
    with pytest.raises(ImageRejected) as err:
        open_image(images.huge_blank_png(20_000, 20_000), 16_000_000, decode=False)
    assert err.value.status == 413


def test_a_jpeg_for_the_model_is_decoded_grey_and_scaled_by_the_decoder():
    """grey_side: libjpeg's luma at 1/2 scale for a 400x300 photo, close to the full decode's grey
    box-shrunk by 2; truncation still refused; other formats and small JPEGs keep their size."""
    photo = images.grey_photo(4, 1)  # 400x300 RGB
    data = images.encode(photo, "JPEG", quality=85)
    full = open_image(data, 1_000_000)
    drafted = open_image(data, 1_000_000, grey_side=160)
    assert (full.mode, full.size) == ("RGB", (400, 300))
    assert (drafted.mode, drafted.size) == ("L", (200, 150))
    halved = np.asarray(full.convert("L").resize((200, 150), Image.Resampling.BOX), dtype=np.float32)
    assert np.abs(np.asarray(drafted, dtype=np.float32) - halved).mean() < 2.0
    with pytest.raises(ImageRejected) as err:
        open_image(images.truncated(data), 1_000_000, grey_side=160)
    assert err.value.status == 422
    small = open_image(images.encode(photo.resize((200, 150)), "JPEG"), 1_000_000, grey_side=160)
    assert (small.mode, small.size) == ("L", (200, 150))
    cmyk = open_image(images.cmyk_jpeg(2), 1_000_000, grey_side=160)
    assert cmyk.mode == "CMYK"
    png = open_image(images.encode(photo), 1_000_000, grey_side=160)
    assert (png.mode, png.size) == ("RGB", (400, 300))
