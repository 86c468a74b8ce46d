"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test creates its sanity virtual environments without pip and then runs a
get-pip script fetched from a host this machine cannot reach. This script does the
same job with what Python already ships (ensurepip) and pip's package index, so the
sanity tests run here and in CI unchanged.

Usage: python .ci/ansible_test_get_pip.py --install-cache
  copies this file to where ansible-test looks for its cached bootstrap script.
"""
import os
import shutil
import subprocess
import sys

# Options that only the real get-pip script understands; pip itself rejects them.
GET_PIP_ONLY_OPTIONS = {"--no-setuptools", "--no-wheel"}


def install_cache():
    """Place this script where ansible-test expects its cached bootstrap script."""
    version = _pip_version()
    target = os.path.expanduser("~/.ansible/test/cache/get_pip_%s.py" % version.replace(".", "_"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(__file__, target)
    print("ansible-test pip bootstrap for pip %s: %s" % (version, target))


def _pip_version():
    """The pip version ansible-test pins for its virtual environments."""
    import ansible_test._internal.python_requirements as reqs  # pylint: disable=import-outside-toplevel
    with open(reqs.__file__, encoding="utf-8") as handle:
        source = handle.read()
    marker = "pip='"
    start = source.index(marker) + len(marker)
    return source[start:source.index("'", start)]


def bootstrap(args):
    """Install pip with ensurepip, then the packages ansible-test asked for."""
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    pip_args = [arg for arg in args if arg not in GET_PIP_ONLY_OPTIONS]
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--upgrade"] + pip_args)


if __name__ == "__main__":
    if sys.argv[1:] == ["--install-cache"]:
        install_cache()
    else:
        bootstrap(sys.argv[1:])
