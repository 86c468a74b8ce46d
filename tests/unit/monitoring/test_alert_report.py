"""anycast_lab.alert_report: the rules' `for:` over evaluated points, alert intervals mapped to test windows, alerts.md.

The last test runs the whole report over data/dashboard_sample.jsonl.gz (two real checker processes recorded while NVA 1
was drained, the application stopped and a BGP session of NVA 2 disabled; see test_dashboard_picture.py), its events
taken as three tests' windows and the rules' `for:` shortened to 4 s (the sample lasts 57 s). It needs promtool and
prometheus (Debian package prometheus): it skips without them, and fails instead under ANYCAST_REQUIRE_PROMETHEUS=1.
"""

import http.server
import pathlib
import re
import shutil
import threading
import time

import pytest

from anycast_lab import alert_report
from anycast_lab.metrics_recorder import load_recording
from monitoring_files import RULES, tool

SAMPLE = pathlib.Path(__file__).resolve().parent / 'data' / 'dashboard_sample.jsonl.gz'
TEXT = 'anycast_healthcheck_bird_up 1\nanycast_healthcheck_region_nvas 1\n'


class Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
        body = TEXT.encode()
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


def test_durations_are_read_as_prometheus_writes_them():
    assert alert_report.duration('90s') == 90 and alert_report.duration('5m') == 300 and alert_report.duration('1h30m') == 5400
    assert alert_report.duration(None) == 0 and alert_report.duration('') == 0 and alert_report.duration('500ms') == 0.5
    with pytest.raises(ValueError):
        alert_report.duration('5 minutes')


def test_every_alerting_rule_is_loaded_with_its_hold_time():
    rules = {rule['alert']: rule for rule in alert_report.load_rules(str(RULES))}
    assert len(rules) == len(re.findall(r'^\s+- alert: ', RULES.read_text(), re.M))
    assert rules['AnycastBgpSessionDown']['for'] == 120 and rules['AnycastBgpSessionDown']['labels']['severity'] == 'warning'
    assert rules['AnycastPrefixFlapping']['for'] == 0


def test_an_alert_fires_after_its_hold_time_of_uninterrupted_points():
    points = [100 + 2 * i for i in range(40)]  # 100..178 every 2 s
    assert alert_report.firing_intervals(points, 60, 2) == [(160, 178)]
    assert alert_report.firing_intervals(points, 0, 2) == [(100, 178)]
    assert alert_report.firing_intervals(points, 80, 2) == []  # resolved before it fired: pending only
    # A gap of more than 1.5 steps starts the hold time again; the points may come in any order.
    gapped = [100, 102, 104, 110, 112, 114, 116]
    assert alert_report.firing_intervals(list(reversed(gapped)), 4, 2) == [(104, 104), (114, 116)]
    assert alert_report.firing_intervals([], 0, 2) == []


TESTS = [{'nodeid': 'a', 'start': 100, 'end': 200, 'outcome': 'passed'}, {'nodeid': 'b', 'start': 210, 'end': 300, 'outcome': 'failed'}]


def test_alerts_are_mapped_to_the_tests_they_fired_in():
    alerts = [
        {'alert': 'Down', 'labels': {'region': 'we', 'nva': 'we-nva1'}, 'intervals': [(150, 250)]},   # across both tests
        {'alert': 'Down', 'labels': {'region': 'we', 'nva': 'we-nva2'}, 'intervals': [(220, 230), (240, 260)]},  # twice in b
        {'alert': 'Flap', 'labels': {'region': 'we', 'prefix': '10.250.0.10/32'}, 'intervals': [(50, 60), (201, 205)]},  # outside
    ]
    rows = alert_report.alerts_by_test(alerts, TESTS)
    assert [(r['alert'], r['labels'].get('nva', r['labels'].get('prefix')), r['test'], r['fired'], r['already']) for r in rows] == [
        ('Flap', '10.250.0.10/32', alert_report.OUTSIDE, 50, False),
        ('Down', 'we-nva1', 'a', 150, False),
        ('Down', 'we-nva1', 'b', 210, True),
        ('Down', 'we-nva2', 'b', 220, False)]
    assert alert_report.alerts_by_test([], TESTS) == []


def test_alerts_md_names_each_alert_its_labels_and_its_test():
    rows = [{'alert': 'AnycastBgpSessionDown', 'labels': {'region': 'westeurope', 'nva': 'we-nva2', 'session': 'route_server_0',
                                                          'job': 'anycast-healthcheck', 'instance': 'we-nva2', 'severity': 'warning'},
             'test': 'b', 'fired': 250.0, 'already': False}]
    text = alert_report.markdown(rows, TESTS, 90.0, {'interval': 2.0, 'source': 'the lab'})
    assert '| AnycastBgpSessionDown | westeurope | we-nva2 |  | session=route_server_0 | b | +160 s | +40 s |' in text
    assert '| b | failed | +120 s | +210 s |' in text
    assert '| a | passed | +10 s |' in alert_report.markdown([], TESTS, 90.0, {})
    assert '| a | passed | -10 s |' in alert_report.markdown([], TESTS, 110.0, {})  # a test's setup before the first scrape
    assert 'No alert fired.' in alert_report.markdown([], TESTS, 90.0, {})


def test_the_report_over_the_recorded_sample_names_the_alert_of_each_injected_failure(tmp_path):
    tool('promtool')
    tool('prometheus')
    recording = load_recording(str(SAMPLE))
    events = sorted(recording['events'], key=lambda event: event['t'])
    names = ['test_drain', 'test_application', 'test_bgp_session']
    recording['tests'] = [{'nodeid': name, 'start': events[2 * i]['t'], 'end': events[2 * i + 1]['t'] + 3, 'outcome': 'passed'}
                          for i, name in enumerate(names)]
    rules = tmp_path / 'rules.yml'
    rules.write_text(re.sub(r'for: \d+m', 'for: 4s', RULES.read_text()))
    text = alert_report.report(recording, str(rules))
    table = [[cell.strip() for cell in line.strip('|').split('|')] for line in text.splitlines() if line.startswith('| Anycast')]
    fired = {(row[0], row[2], row[5]) for row in table}
    assert ('AnycastRegionFewerNvasAnnouncing', '', 'test_drain') in fired  # NVA 1 withdrew after its drain
    assert ('AnycastRegionNotAnnouncing', '', 'test_application') in fired  # no NVA announces without the application
    assert ('AnycastBgpSessionDown', 'we-nva2', 'test_bgp_session') in fired
    assert not any(alert == 'AnycastBgpSessionDown' and test != 'test_bgp_session' for alert, _nva, test in fired)
    assert all(row[1] == 'westeurope' for row in table)


class FakeHost:  # pylint: disable=too-few-public-methods
    key, mgmt_ip = 'key', '192.0.2.1'


class FakeTopology:  # pylint: disable=too-few-public-methods
    def host(self, name):  # pylint: disable=unused-argument
        return FakeHost()


class FakeRegion:  # pylint: disable=too-few-public-methods
    name = 'westeurope'
    nvas = [('we-nva1', '10.10.2.4', '10.10.3.4', '198.18.0.11')]


def test_the_e2e_recording_keeps_scraping_an_nva_that_goes_away_and_writes_alerts_md(tmp_path, monkeypatch):
    # The NVA's scrape loop runs here instead of over SSH; the checker goes away halfway (an NVA stopped by a test).
    monkeypatch.setattr('anycast_lab.hosts.host.ssh_argv', lambda key, address, argv: argv)
    server = http.server.HTTPServer(('127.0.0.1', 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    session = alert_report.E2eAlerts(str(tmp_path / 'alerts'), interval=0.3, url='http://127.0.0.1:%d/metrics' % server.server_port)
    session.start(FakeTopology(), [FakeRegion()])
    session.test_started('tests/e2e/test_x.py::test_one')
    time.sleep(1.5)
    server.shutdown()
    server.server_close()
    session.test_outcome('tests/e2e/test_x.py::test_one', 'failed')
    session.test_finished('tests/e2e/test_x.py::test_one')
    session.test_started('tests/e2e/test_x.py::test_last')  # the session ends in the last test's teardown
    time.sleep(1.5)
    if not shutil.which('promtool') or not shutil.which('prometheus'):
        monkeypatch.setattr(alert_report, 'report', lambda recording: 'scrapes: %d\n' % len(recording['scrapes']))
    path = session.finish()
    assert path == str(tmp_path / 'alerts' / 'alerts.md')
    recording = load_recording(str(tmp_path / 'alerts' / 'recording.jsonl.gz'))
    oks = [scrape['ok'] for scrape in recording['scrapes']]
    assert oks[0] and True in oks and False in oks and not oks[-1]
    assert [test['nodeid'] for test in recording['tests']] == ['tests/e2e/test_x.py::test_one', 'tests/e2e/test_x.py::test_last']
    assert recording['tests'][0]['outcome'] == 'failed'
    text = pathlib.Path(path).read_text(encoding='utf-8')
    assert 'scrapes:' in text or '| tests/e2e/test_x.py::test_one | failed |' in text


def test_the_e2e_recording_never_raises(tmp_path):
    session = alert_report.E2eAlerts(str(tmp_path / 'alerts'))
    session.start(None, [FakeRegion()])  # no topology: logged, nothing recorded
    session.test_started('t')
    session.test_finished('t')
    assert session.finish() is None
