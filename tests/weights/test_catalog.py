"""Download addresses, evaluation sizes and category names of torchvision's weights: complete
for every supported name, and equal to torchvision's own tables when torchvision is
importable."""
import pytest

from vai_jax import weights
from vai_jax.weights import catalog


def test_every_supported_name_has_an_address_and_categories():
    assert set(weights.URLS) == set(weights.SUPPORTED)
    assert all(u.startswith("https://download.pytorch.org/models/") and u.endswith(".pth")
               for u in weights.URLS.values())
    assert weights.URLS["resnet50"].endswith("/resnet50-11ad3fa6.pth")
    assert len(catalog.categories("resnet50")) == 1000
    assert catalog.categories("maskrcnn_resnet50_fpn")[1] == "person"
    assert len(catalog.COCO_CATEGORIES) == 91  # with the "N/A" gaps of COCO's ids
    assert catalog.categories("keypointrcnn_resnet50_fpn") == ("no person", "person")
    assert catalog.categories("deeplabv3_resnet50")[15] == "person"
    assert len(catalog.VOC_CATEGORIES) == 21
    assert len(catalog.COCO_PERSON_KEYPOINT_NAMES) == 17
    limbs = {frozenset(limb) for limb in catalog.COCO_PERSON_SKELETON}
    assert len(limbs) == 19 and all(max(limb) < 17 for limb in limbs)
    names = catalog.COCO_PERSON_KEYPOINT_NAMES
    assert frozenset((names.index("left_shoulder"), names.index("left_elbow"))) in limbs
    assert catalog.classifier_sizes("inception_v3") == (342, 299)
    assert catalog.classifier_sizes("resnet18") == (256, 224)


def test_tables_are_torchvisions():
    pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision")
    from torchvision.models import _meta

    for name in weights.SUPPORTED:
        default = tv.models.get_model_weights(name).DEFAULT
        assert weights.URLS[name] == default.url, name
        assert tuple(catalog.categories(name)) == tuple(default.meta["categories"]), name
        transform = default.transforms()
        if name in weights.SUPPORTED_CLASSIFICATION:
            assert catalog.classifier_sizes(name) == (transform.resize_size[0],
                                                      transform.crop_size[0]), name
        elif name in weights.SUPPORTED_SEGMENTATION:
            assert transform.resize_size == [catalog.SEGMENTATION_RESIZE]
    assert catalog.IMAGENET_CATEGORIES == tuple(_meta._IMAGENET_CATEGORIES)
    assert catalog.COCO_PERSON_KEYPOINT_NAMES == tuple(_meta._COCO_PERSON_KEYPOINT_NAMES)
