"""The BIRD state file: names, values, atomic writes."""

import os
import stat

from anycast_healthcheck.announce import atomic_write, define_name, render_state
from anycast_healthcheck.state import state_name


def test_define_name_follows_the_contract():
    assert define_name('10.250.0.10/32') == 'ANYCAST_10_250_0_10'


def test_render_starts_from_the_withdrawn_file():
    withdrawn = 'define ANYCAST_10_250_0_10 = 0;\ndefine ANYCAST_10_250_0_11 = 0;\n'
    text = render_state(withdrawn, {'10.250.0.10/32': 4})
    defines = [line for line in text.splitlines() if line.startswith('define')]
    # Prefixes the checker does not manage stay withdrawn.
    assert defines == ['define ANYCAST_10_250_0_10 = 4;', 'define ANYCAST_10_250_0_11 = 0;']


def test_render_adds_managed_prefixes_missing_from_the_withdrawn_file():
    text = render_state('', {'10.250.0.12/32': 1})
    assert 'define ANYCAST_10_250_0_12 = 1;' in text.splitlines()


def test_render_all_withdrawn():
    withdrawn = 'define ANYCAST_10_250_0_10 = 0;\n'
    text = render_state(withdrawn, {'10.250.0.10/32': 0})
    assert [line for line in text.splitlines() if not line.startswith('#')] == ['define ANYCAST_10_250_0_10 = 0;']


def test_state_name():
    assert [state_name(v) for v in (0, 1, 4)] == ['withdrawn', 'announced', 'prepended']


def test_atomic_write_sets_the_mode_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'announce.conf'
    path.write_text('old')
    atomic_write(str(path), 'define ANYCAST_10_250_0_10 = 1;\n')
    assert path.read_text() == 'define ANYCAST_10_250_0_10 = 1;\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(tmp_path) == ['announce.conf']
