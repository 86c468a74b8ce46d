"""The BIRD state file: anycast_state() values, atomic writes."""

import os
import re
import stat

from anycast_healthcheck.announce import atomic_write, bgp_sessions, render_state
from anycast_healthcheck.state import state_name


def test_render_names_every_announced_prefix_with_its_value():
    text = render_state({'10.250.0.10/32': 4, '10.250.0.11/32': 1})
    assert re.findall(r'if p = (\S+) then return (\d+);', text) == [('10.250.0.10/32', '4'), ('10.250.0.11/32', '1')]
    assert text.splitlines()[1:3] == ['function anycast_state(prefix p)', '{']
    assert text.rstrip().endswith('return 0;\n}')


def test_render_leaves_withdrawn_prefixes_to_the_default():
    # A prefix the function does not name is withdrawn: bird.conf may list prefixes the checker does not know yet.
    assert render_state({'10.250.0.10/32': 0}) == render_state({})
    assert 'if p' not in render_state({})


def test_bgp_sessions_from_show_protocols():
    lines = ['Name       Proto      Table      State  Since         Info',
             'device1    Device     ---        up     02:35:39.443',
             'anycast    Static     master4    up     02:35:39.443',
             'route_server_0 BGP        ---        up     02:35:39.443  Established',
             'route_server_1 BGP        ---        start  02:35:39.443  Active']
    assert bgp_sessions(lines) == {'route_server_0': True, 'route_server_1': False}


def test_state_name():
    assert [state_name(v) for v in (0, 1, 4)] == ['withdrawn', 'announced', 'prepended']


def test_atomic_write_sets_the_mode_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / 'announce.conf'
    path.write_text('old')
    atomic_write(str(path), render_state({'10.250.0.10/32': 1}))
    assert path.read_text() == render_state({'10.250.0.10/32': 1})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert os.listdir(tmp_path) == ['announce.conf']
