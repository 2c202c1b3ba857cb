"""The composite photos' vehicles and persons: read from photos.toml, and carried into a frame's
ground truth with their photo (scaled, cut to its tile, moved to its place)."""

from __future__ import annotations

import pytest

from obscura.errors import ConfigError
from obscura_tools.platebench.build import boxed_objects, load_photos


def source(name: str, file: str) -> str:
    """A photo's pinned package (the same made-up one for every photo here)."""
    sha = "0" * 64
    return (
        f'[photos.{name}.source]\nregistry = "pypi"\npackage = "p"\nversion = "1"\n'
        f'archive_sha256 = "{sha}"\nfiles = [{{ path = "{file}", sha256 = "{sha}" }}]\n'
    )


PHOTO = (
    """
[photos.street]
description = "a street"
licence = "MIT"
vehicles = [
  { bbox = [100, 50, 300, 150], type = "car" },
  { bbox = [10, 10, 40, 30], type = "motorcycle", difficult = true },
  { bbox = [380, 100, 500, 200], type = "bus" },
]
persons = [{ bbox = [320, 60, 350, 150] }, { bbox = [0, 0, 10, 15] }]
"""
    + source("street", "a.jpg")
    + """[[photos.street.mounts]]
quad = [[150, 120], [200, 120], [200, 135], [150, 135]]
view = "rear"

[photos.unlabelled]
description = "a car park"
"""
    + source("unlabelled", "b.jpg")
)


def test_vehicles_are_read_where_labelled() -> None:
    photos = load_photos(PHOTO)
    street = photos["street"].vehicles
    assert street is not None
    assert [(v.box, v.type, v.difficult) for v in street] == [
        ((100.0, 50.0, 300.0, 150.0), "car", False),
        ((10.0, 10.0, 40.0, 30.0), "motorcycle", True),
        ((380.0, 100.0, 500.0, 200.0), "bus", False),
    ]
    assert photos["street"].persons is not None
    assert [(v.box, v.type) for v in photos["street"].persons] == [
        ((320.0, 60.0, 350.0, 150.0), ""),
        ((0.0, 0.0, 10.0, 15.0), ""),
    ]
    # No "vehicles" key: its vehicles were never labelled (not: it has none).
    assert photos["unlabelled"].vehicles is None
    assert photos["unlabelled"].persons is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('{ bbox = [100, 50, 90, 150], type = "car" }', "x1 < x2"),
        ('{ bbox = [100, 50, 300], type = "car" }', "x1 < x2"),
        ('{ bbox = [100, 50, 300, 150], type = "tram" }', "'tram'"),
    ],
)
def test_a_malformed_vehicle_is_refused_by_name(entry: str, message: str) -> None:
    text = PHOTO.replace('{ bbox = [100, 50, 300, 150], type = "car" }', entry)
    with pytest.raises(ConfigError, match=message) as error:
        load_photos(text)
    assert "photos.street.vehicles[0]" in str(error.value)


def test_a_vehicle_follows_its_photo_into_the_frame() -> None:
    street = load_photos(PHOTO)["street"]

    def placed(offset: tuple[float, float]) -> dict[str, tuple[list[float], bool]]:
        # The photo scaled by 2 and cut to a 640x360 tile from ``offset`` of the scaled
        # photo, the tile placed at (640, 0) of the frame.
        objects = boxed_objects(
            street, scale=2.0, offset=offset, size=(640, 360), at=(640.0, 0.0), name="street"
        )
        assert all(o["source"] == "labelled on street" for o in objects)
        return {o.get("type", o["label"]): (o["bbox"], o.get("difficult", False)) for o in objects}

    # Scaled: the car (200, 100, 600, 300), the motorcycle (20, 20, 80, 60), the bus
    # (760, 200, 1000, 400), the person (640, 120, 700, 300). From (300, 60): the car's left
    # quarter and the motorcycle are outside the tile, the bus's right quarter too.
    assert placed((300.0, 60.0)) == {
        "car": ([640.0, 40.0, 940.0, 240.0], False),
        "bus": ([1100.0, 140.0, 1280.0, 340.0], False),
        "person": ([980.0, 60.0, 1040.0, 240.0], False),
    }
    # From (500, 60): three quarters of the car are outside: it counts neither way.
    assert placed((500.0, 60.0)) == {
        "car": ([640.0, 40.0, 740.0, 240.0], True),
        "bus": ([900.0, 140.0, 1140.0, 340.0], False),
        "person": ([780.0, 60.0, 840.0, 240.0], False),
    }


def test_the_real_photo_keeps_its_vehicles_as_they_are() -> None:
    objects = boxed_objects(load_photos(PHOTO)["street"])
    assert [(o["label"], o["bbox"]) for o in objects] == [
        ("vehicle", [100.0, 50.0, 300.0, 150.0]),
        ("vehicle", [10.0, 10.0, 40.0, 30.0]),
        ("vehicle", [380.0, 100.0, 500.0, 200.0]),
        ("person", [320.0, 60.0, 350.0, 150.0]),
        ("person", [0.0, 0.0, 10.0, 15.0]),
    ]
    # Labelled difficult stays difficult; a vehicle under 30 px on a side, or a person under
    # 40 px tall, is difficult too.
    assert [o.get("difficult", False) for o in objects] == [False, True, False, False, True]
