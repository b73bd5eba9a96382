"""scripts/base-images.sh builds a stand-in for every external image where none can be pulled:
each image our Dockerfiles and the compose file name must have one in deploy/standins/."""

import re

from tools.lint import DOCKERFILES, ROOT


def external_images() -> set[str]:
    named = set()
    for dockerfile in DOCKERFILES:
        named |= set(re.findall(r"^FROM (\S+)", dockerfile.read_text(), re.MULTILINE))
    compose = (ROOT / "deploy/compose.yml").read_text()
    named |= set(re.findall(r"^\s*image:\s*(\S+)\s*$", compose, re.MULTILINE))
    return {image for image in named if not image.startswith("qbuy/")}


def standin(image: str) -> str:
    """scripts/base-images.sh's file name for the image: no tag, a / made a -."""
    return image.split(":")[0].replace("/", "-") + ".Dockerfile"


def test_every_external_image_has_a_stand_in():
    images = external_images()
    assert {
        "postgres",
        "redis",
        "nginx",
        "python",
        "prom/prometheus",
        "nginx/nginx-prometheus-exporter",
        "oliver006/redis_exporter",
        "prometheuscommunity/postgres-exporter",
    } <= {i.split(":")[0] for i in images}
    for image in images:
        assert (ROOT / "deploy/standins" / standin(image)).is_file(), image


def test_stand_ins_build_on_the_imported_debian_base():
    for dockerfile in (ROOT / "deploy/standins").glob("*.Dockerfile"):
        assert dockerfile.read_text().count("FROM qbuy-standin/bookworm") == 1, dockerfile
