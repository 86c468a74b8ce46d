"""Root image cache: which trees prune removes (no debootstrap needed)."""
import os

from anycast_lab.hosts import image


def test_prune_removes_only_unused_older_images(tmp_path):
    cache = str(tmp_path)
    current = image.image_path(cache)
    old = os.path.join(cache, "rootfs-000000000000")
    interrupted = os.path.join(cache, "rootfs-000000000000.tmp-1234")
    for path in (current, old, interrupted):
        os.makedirs(os.path.join(path, "etc"))
    assert image.prune(cache) == [old, interrupted]
    assert sorted(os.listdir(cache)) == sorted([".build.lock", os.path.basename(current)])


def test_image_id_changes_with_the_package_list(monkeypatch):
    before = image.image_id()
    monkeypatch.setattr(image, "PACKAGES", image.PACKAGES + ("less",))
    assert image.image_id() != before
