"""The collection is importable as ansible_collections.anycast.nva through `make collection-link` (.build is on
pytest's pythonpath, pytest.ini): fail early with that hint when it is missing."""
import copy
import os

import pytest

BUILD = os.path.join(os.path.dirname(__file__), "..", "..", "..", ".build")
if not os.path.isdir(os.path.join(BUILD, "ansible_collections", "anycast", "nva")):
    raise RuntimeError("run `make collection-link` first: .build/ansible_collections/anycast/nva is missing")


def _filled(spec, given):
    """given with every option of spec that it lacks set to the spec's default (None without one), as AnsibleModule does;
    the elements of a list of dicts with suboptions are filled the same way."""
    params = dict((option, copy.deepcopy(rules.get("default"))) for option, rules in spec.items())
    params.update(given)
    for option, rules in spec.items():
        if rules.get("options") and isinstance(params[option], list):
            params[option] = [_filled(rules["options"], element) for element in params[option]]
    return params


@pytest.fixture
def module_params():
    """module_params(spec, **given): a module's params built from its argument spec, defaults filled from it."""
    return lambda spec, **given: _filled(spec, given)
