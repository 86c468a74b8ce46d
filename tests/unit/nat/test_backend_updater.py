"""The nat role's backend updater (roles/nat/files/anycast_nva_nat_backends.py): its pure logic.

The Molecule nat scenario runs it against real nftables (tasks/backend_health.yml).
"""

import importlib.util
import json
import os
import pathlib
import sys

import pytest

PROGRAM = pathlib.Path(__file__).resolve().parents[3] / 'roles' / 'nat' / 'files' / 'anycast_nva_nat_backends.py'
_SPEC = importlib.util.spec_from_file_location('anycast_nva_nat_backends', PROGRAM)
updater = importlib.util.module_from_spec(_SPEC)
_WRITE, sys.dont_write_bytecode = sys.dont_write_bytecode, True
_SPEC.loader.exec_module(updater)
sys.dont_write_bytecode = _WRITE

B = ['10.11.1.4', '10.11.1.5', '10.11.1.6']
SERVICE = {'name': 'web', 'anycast_ip': '10.250.0.10', 'backends': B[:2], 'map': 'slots_web_x', 'per_backend': 12}
ALLOWED = {'table': 'anycast_nat', 'services': [SERVICE]}


def test_all_healthy_is_the_plain_hash():
    """Slot s holds backends[s // K]: what `jhash ... mod N` picks (the kernel scales, floor(h*N*K/2^32) // K)."""
    assert updater.slots(B, B, 12) == {s: B[s // 12] for s in range(36)}


def test_unhealthy_slots_are_dealt_round_robin_and_healthy_ones_stay():
    result = updater.slots(B, [B[0], B[2]], 12)
    assert all(result[s] == B[0] for s in range(12)) and all(result[s] == B[2] for s in range(24, 36))
    moved = [result[s] for s in range(12, 24)]
    assert moved.count(B[0]) == moved.count(B[2]) == 6
    # The same health gives the same map on every NVA, whatever order the health lists.
    assert updater.slots(B, [B[2], B[0]], 12) == result


def test_one_of_two_down_sends_every_slot_to_the_other():
    assert set(updater.slots(B[:2], [B[1]], 12).values()) == {B[1]}


def test_none_healthy_keeps_every_configured_backend():
    assert updater.slots(B, [], 12) == updater.slots(B, B, 12)


def test_health_only_takes_configured_backends_out():
    health = {'10.250.0.10': {B[0]: False, '192.0.2.1': True}, '10.250.0.99': {B[1]: False}}
    assert updater.healthy_backends(SERVICE, health) == [B[1]]
    maps = updater.wanted(ALLOWED, health)
    assert set(maps['slots_web_x'].values()) == {B[1]}  # never 192.0.2.1
    # A backend the checker does not report, or reports with a non-boolean, counts as healthy.
    assert updater.healthy_backends(SERVICE, {'10.250.0.10': {B[0]: 'no'}}) == B[:2]
    assert updater.healthy_backends(SERVICE, {'10.250.0.10': ['junk']}) == B[:2]


def write(path, content, age=0.0):
    path.write_text(content)
    when = os.stat(path).st_mtime - age
    os.utime(path, (when, when))
    return str(path)


@pytest.mark.parametrize('content, age', [
    ('{"prefixes": {}}', 6.0),   # stale: the checker stopped
    ('not json', 0.0),
    ('{"other": 1}', 0.0),
    ('[]', 0.0),
])
def test_stale_or_bad_health_file_means_every_backend(tmp_path, content, age):
    path = write(tmp_path / 'backends.json', content, age)
    assert updater.read_health(path) is None
    assert updater.wanted(ALLOWED, None) == {'slots_web_x': updater.slots(B[:2], B[:2], 12)}


def test_missing_health_file(tmp_path):
    assert updater.read_health(str(tmp_path / 'none.json')) is None


def test_fresh_health_file(tmp_path):
    path = write(tmp_path / 'backends.json', json.dumps({'prefixes': {'10.250.0.10': {B[0]: False}}}), 1.0)
    assert updater.read_health(path) == {'10.250.0.10': {B[0]: False}}


def test_transaction_replaces_each_map_whole():
    script = updater.transaction('anycast_nat', {'slots_web_x': {0: B[1], 1: B[1]}})
    assert script == ('flush map ip anycast_nat slots_web_x\n'
                      'add element ip anycast_nat slots_web_x { 0 : 10.11.1.5, 1 : 10.11.1.5 }\n')


def test_allowed_file_without_backends_is_refused(tmp_path):
    path = tmp_path / 'allowed.json'
    path.write_text(json.dumps({'table': 't', 'services': [dict(SERVICE, backends=[])]}))
    with pytest.raises(ValueError, match='web'):
        updater.load_allowed(str(path))
