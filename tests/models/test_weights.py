"""ResNet18 weight choices, offline (the conftest makes every download fail as it does without internet)."""

import logging

import pytest
import torch
from torchvision.models import resnet18

from pixel_spotter.errors import UserError
from pixel_spotter.models.resnet import ResNet18Regressor, WeightsUnavailable


def test_auto_falls_back_to_scratch_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING):
        net = ResNet18Regressor(weights="auto")
    assert net.weights_used == "none (auto: ImageNet weights unavailable)"
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_explicit_imagenet_fails_with_the_fix():
    with pytest.raises(WeightsUnavailable, match="model.net.weights=none") as err:
        ResNet18Regressor(weights="imagenet")
    assert "\n" not in str(err.value)


def test_torchvision_state_dict_file_is_adapted_to_one_channel(tmp_path):
    rgb = resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(rgb.state_dict(), path)
    net = ResNet18Regressor(weights=str(path))
    assert net.weights_used == f"file: {path}"
    # conv1 holds the sum of the RGB filters: a grey image gives the same response as R=G=B.
    assert torch.allclose(net.model.conv1.weight, rgb.conv1.weight.sum(1, keepdim=True))
    assert torch.equal(net.model.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)


def test_own_format_round_trips(tmp_path):
    first = ResNet18Regressor(weights="none")
    torch.save(first.model.state_dict(), tmp_path / "own.pth")
    second = ResNet18Regressor(weights=str(tmp_path / "own.pth"))
    x = torch.rand(2, 1, 50, 50)
    first.eval(), second.eval()
    assert torch.equal(first(x), second(x))


def test_corrupt_file_is_one_clear_error(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable torch state dict"):
        ResNet18Regressor(weights=str(path))


def test_wrong_network_weights_are_refused(tmp_path):
    torch.save({"conv1.weight": torch.zeros(8, 1, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="do not fit ResNet18"):
        ResNet18Regressor(weights=str(tmp_path / "other.pth"))
