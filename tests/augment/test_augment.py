"""The augmentations' operations: DiffAugment's ranges and geometry on constructed images,
gradients through every op, ADA's pipeline and its p controller, and the preview command."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from sagan.augment import AUGMENTS, AdaptiveAugment, ada_pipeline, diffaugment, parse_policy
from sagan.augment import ops
from sagan.commands.augment import main as augment_cli


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def constant(value: float, n: int = 64, size: int = 32) -> torch.Tensor:
    return torch.full((n, 3, size, size), value)


def test_registry_holds_the_three_names_of_the_issue():
    assert list(AUGMENTS)[:3] == ["none", "diffaugment", "ada"]
    assert parse_policy("color, translation,cutout") == ["color", "translation", "cutout"]
    with pytest.raises(ValueError, match="unknown DiffAugment op 'blur'"):
        parse_policy("color,blur")


# --------------------------------------------------------------------------------------------------
# DiffAugment


@pytest.mark.parametrize("size", [16, 32, 64])
def test_translated_constant_image_keeps_its_value_except_a_zero_border_of_at_most_size_over_8(size):
    x = constant(0.7, n=200, size=size)
    y = diffaugment(x, "translation", gen())
    limit = size // 8
    shifts = []
    for img in y:
        changed = img[0] != 0.7
        assert torch.all((img[0] == 0) | ~changed)  # the value is kept or zeroed, nothing else
        rows = changed.all(dim=1).nonzero().flatten().tolist()
        cols = changed.all(dim=0).nonzero().flatten().tolist()
        # the zeros form full border rows / columns, on one side each, at most size/8 of them
        assert len(rows) <= limit and len(cols) <= limit
        assert rows == list(range(len(rows))) or rows == list(range(size - len(rows), size))
        assert cols == list(range(len(cols))) or cols == list(range(size - len(cols), size))
        assert int(changed.sum()) == size * size - (size - len(rows)) * (size - len(cols))
        shifts.append((len(rows), len(cols)))
    assert max(s for s, _ in shifts) == limit and (0, 0) in shifts  # the whole range is drawn


def test_translation_moves_content_by_whole_pixels():
    x = torch.zeros(1, 3, 32, 32)
    x[0, :, 10, 12] = 1.0
    for seed in range(20):
        y = diffaugment(x, "translation", gen(seed))
        (c, r, k), = (y[0] == 1.0).nonzero().tolist()[:1]
        assert abs(r - 10) <= 4 and abs(k - 12) <= 4 and int((y == 1.0).sum()) == 3


@pytest.mark.parametrize("size", [16, 32])
def test_cutout_zeroes_one_square_of_half_the_size_clipped_at_the_border(size):
    x = constant(0.5, n=300, size=size)
    y = diffaugment(x, "cutout", gen())
    half = size // 2
    clipped = 0
    for img in y:
        zero = img[0] == 0
        assert torch.equal(zero, (img == 0).all(dim=0)) and torch.all(img[:, ~zero] == 0.5)
        rows = zero.any(dim=1).nonzero().flatten()
        cols = zero.any(dim=0).nonzero().flatten()
        assert len(rows) and len(cols)
        # one solid rectangle, contiguous, at most half x half
        assert int(zero.sum()) == len(rows) * len(cols)
        assert rows.tolist() == list(range(int(rows[0]), int(rows[-1]) + 1))
        assert len(rows) <= half and len(cols) <= half
        if len(rows) < half or len(cols) < half:  # only where the square leaves the image
            assert rows[0] == 0 or rows[-1] == size - 1 or cols[0] == 0 or cols[-1] == size - 1
            clipped += 1
    assert 0 < clipped < len(y)


def test_color_factors_lie_in_the_papers_ranges():
    n = 4000
    g = torch.Generator().manual_seed(1)
    # brightness: a constant grey image moves by b in U(-0.5, 0.5), saturation and contrast keep it constant
    y = diffaugment(constant(0.0, n=n, size=4), "color", g)
    b = y[:, 0, 0, 0]
    assert torch.allclose(y, b.view(-1, 1, 1, 1).expand_as(y), atol=1e-6)
    assert b.min() >= -0.5 and b.max() <= 0.5 and b.min() < -0.45 and b.max() > 0.45
    # saturation x U(0, 2) and contrast x U(0.5, 1.5) alone, through the same generator stream
    x = torch.zeros(n, 3, 4, 4)
    x[:, 0], x[:, 1] = 0.2, -0.2  # mean over channels 0; deviations +-0.2 in R / G
    s = ops.uniform(torch.Generator().manual_seed(2), n, "cpu", 0.0, 2.0)
    sat = ops.saturate(x, s)[:, 0, 0, 0] / 0.2
    assert sat.min() >= 0 and sat.max() <= 2 and sat.max() > 1.9
    c = ops.uniform(torch.Generator().manual_seed(3), n, "cpu", 0.5, 1.5)
    half = torch.zeros(n, 3, 4, 4)
    half[:, :, :2] = 0.4  # image mean 0.2, deviation 0.2
    con = (ops.contrast(half, c)[:, 0, 0, 0] - 0.2) / 0.2
    assert con.min() >= 0.5 - 1e-5 and con.max() <= 1.5 + 1e-5 and con.min() < 0.55 and con.max() > 1.45


def test_color_of_the_full_op_matches_the_three_factors_drawn_in_order():
    x = torch.rand(5, 3, 8, 8) * 2 - 1
    g1, g2 = gen(7), gen(7)
    y = diffaugment(x, "color", g1)
    b = ops.uniform(g2, 5, "cpu", -0.5, 0.5)
    s = ops.uniform(g2, 5, "cpu", 0.0, 2.0)
    c = ops.uniform(g2, 5, "cpu", 0.5, 1.5)
    torch.testing.assert_close(y, ops.contrast(ops.saturate(x + b, s), c))


def test_same_generator_state_gives_the_same_augmentation():
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    assert torch.equal(diffaugment(x, "color,translation,cutout", gen(3)), diffaugment(x, "color,translation,cutout", gen(3)))
    assert not torch.equal(diffaugment(x, "color,translation,cutout", gen(3)), diffaugment(x, "color,translation,cutout", gen(4)))


OPS = {
    "color": lambda x, g: diffaugment(x, "color", g),
    "translation": lambda x, g: diffaugment(x, "translation", g),
    "cutout": lambda x, g: diffaugment(x, "cutout", g),
    "ada_p1": lambda x, g: ada_pipeline(x, 1.0, g),
    "flip": lambda x, g: ops.flip_x(x, torch.tensor([True, False, True, False])),
    "rotate90": lambda x, g: ops.rotate90(x, torch.tensor([0, 1, 2, 3])),
    "shift_reflect": lambda x, g: ops.shift(x, torch.tensor([2, -3, 0, 1]), torch.tensor([1, 0, -2, 3]), reflect=True),
    "brightness": lambda x, g: ops.add_brightness(x, torch.full((4, 1, 1, 1), 0.1)),
    "contrast_zero": lambda x, g: ops.contrast(x, torch.full((4, 1, 1, 1), 1.3), around_mean=False),
}


@pytest.mark.parametrize("name", list(OPS))
def test_gradients_flow_through_every_op(name):
    x = (torch.rand(4, 3, 16, 16) * 2 - 1).requires_grad_(True)
    y = OPS[name](x, gen(0))
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # a translated / cut pixel gets no gradient from where it was dropped, every kept one does
    assert (x.grad != 0).float().mean() > 0.3


# --------------------------------------------------------------------------------------------------
# ADA


def test_ada_with_p_zero_is_the_identity_and_p_one_changes_every_image():
    x = torch.rand(32, 3, 16, 16) * 2 - 1
    assert torch.equal(ada_pipeline(x, 0.0, gen()), x)
    y = ada_pipeline(x, 1.0, gen())
    assert all(not torch.equal(a, b) for a, b in zip(x, y))


def test_ada_geometry_is_flip_rotation_and_reflected_integer_translation():
    # an image whose pixels are all distinct: geometric ops permute pixels (reflect: some repeat), never invent
    x = torch.arange(3 * 16 * 16, dtype=torch.float32).view(1, 3, 16, 16).repeat(8, 1, 1, 1) / 1000
    assert torch.equal(ops.rotate90(x[:1], torch.tensor([1])), torch.rot90(x[:1], 1, dims=(2, 3)))
    assert torch.equal(ops.flip_x(x[:1], torch.tensor([True])), x[:1].flip(3))
    y = ops.shift(x[:1], torch.tensor([2]), torch.tensor([0]), reflect=True)
    assert torch.equal(y[0, :, :, 2:], x[0, :, :, :-2]) and torch.equal(y[0, :, :, 0], x[0, :, :, 2])
    assert torch.equal(y[0, :, :, 1], x[0, :, :, 1])


def drive(ada: AdaptiveAugment, real_logit: float, steps: int) -> list[float]:
    ps = []
    for s in range(1, steps + 1):
        ada.observe(torch.full((8,), real_logit))
        ada.end_step(s)
        ps.append(float(ada.p))
    return ps


def test_ada_p_rises_while_d_is_sure_of_the_reals_and_falls_below_the_target():
    ada = AdaptiveAugment(target=0.6, interval=4, kimg=0.1, images_per_step=8)  # 32 images per update: +-0.32
    ps = drive(ada, 2.0, 16)  # sign +1 > 0.6: p rises at each update (every 4 steps), clipped at 1
    assert ps[:3] == [0, 0, 0] and ps[3:7] == pytest.approx([0.32] * 4) and ps[7] == pytest.approx(0.64)
    assert ps[11] == pytest.approx(0.96) and ps[15] == 1.0
    assert float(ada.signal) == 1.0 and ada.log_values() == {"p": 1.0, "signal": 1.0}
    ps = drive(ada, -1.0, 8)  # sign -1 < 0.6: p falls
    assert ps[3] == pytest.approx(0.68) and ps[7] == pytest.approx(0.36)
    assert ada.log_values()["signal"] == -1.0


def test_ada_speed_lets_p_go_from_0_to_1_in_ada_kimg_thousand_images():
    ada = AdaptiveAugment(target=0.6, interval=4, kimg=500, images_per_step=64)  # StudioGAN's values
    updates = 500_000 / (4 * 64)
    assert ada.speed * updates == pytest.approx(1.0)


def test_ada_state_round_trips_and_rejects_malformed_values():
    a = AdaptiveAugment(0.6, 2, 0.1, 8)
    drive(a, 1.0, 3)
    b = AdaptiveAugment(0.6, 2, 0.1, 8)
    b.load_state_dict(a.state_dict())
    assert b.state_dict().keys() == a.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    with pytest.raises(ValueError, match="ADA state p"):
        b.load_state_dict({**a.state_dict(), "p": torch.tensor(float("nan"))})


# --------------------------------------------------------------------------------------------------
# preview


def test_preview_writes_a_png_of_real_images_beside_augmented_versions(tmp_path):
    out = tmp_path / "grid.png"
    r = CliRunner().invoke(augment_cli, ["preview", "--policy", "translation,cutout", "--num", "3", "--copies", "2",
                                         "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "3 real images" in r.output
    with Image.open(out) as im:
        arr = np.asarray(im.convert("RGB"))
    assert im.format == "PNG"
    # 3 rows of 1 real + 2 augmented 32px tiles (zoom 3 for readability) with 2px padding, after a caption strip
    assert arr.shape[0] == 3 * (96 + 2) + 2
    tile = lambda r, c: arr[2 + r * 98: 2 + r * 98 + 96, arr.shape[1] - (3 - c) * 98: arr.shape[1] - (3 - c) * 98 + 96]
    # cutout greys a square (zero = mid-grey 128) in the augmented tiles, not in the real one
    grey = lambda t: int(((np.abs(t.astype(int) - 128) <= 1).all(axis=2)).sum())
    assert all(grey(tile(r, 1)) >= (16 * 3) ** 2 // 4 for r in range(3))
    assert all(grey(tile(r, 0)) < grey(tile(r, 1)) for r in range(3))


def test_preview_bad_policy_is_one_line(tmp_path):
    r = CliRunner().invoke(augment_cli, ["preview", "--policy", "color,zoom", "--out", str(tmp_path / "g.png")])
    assert r.exit_code == 2 and r.stderr.strip() == "error: --policy: unknown DiffAugment op 'zoom'; ops are color, translation, cutout"
    assert not (tmp_path / "g.png").exists()
