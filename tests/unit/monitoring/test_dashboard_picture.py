"""bench/dashboard_picture.py and anycast_lab.metrics_recorder on recorded data: parsing, the scrape loop, the lab injections undone, the rendered picture.

data/dashboard_sample.jsonl.gz is a recording of two real checker processes (the role's daemon, a BIRD stand-in from
tests/unit/healthcheck/test_daemon.py, one TCP backend) scraped every second for 57 s while NVA 1 was drained and
undrained, the backend stopped and started, and a BGP session of NVA 2 disabled and enabled.
The rendering tests need promtool, prometheus (Debian package prometheus) and matplotlib (bench/requirements-bench.txt):
they skip without them, and fail instead under ANYCAST_REQUIRE_PROMETHEUS=1 (make prometheus).
"""

import http.server
import os
import pathlib
import subprocess
import tempfile
import threading
import time

import pytest

from anycast_lab import metrics_recorder
from monitoring_files import load_dashboard, tool
import dashboard_picture  # bench/ is on pytest's pythonpath (pytest.ini)

SAMPLE = pathlib.Path(__file__).resolve().parent / 'data' / 'dashboard_sample.jsonl.gz'
TEXT = '''# HELP anycast_healthcheck_announce_value Value written for BIRD.
# TYPE anycast_healthcheck_announce_value gauge
anycast_healthcheck_announce_value{prefix="10.250.0.10/32"} 1
anycast_healthcheck_check_duration_seconds{prefix="10.250.0.10/32",check="cmd \\"a\\\\b\\""} 0.25
anycast_healthcheck_bird_up 1 1700000000000
'''


def matplotlib_or_skip():
    try:
        import matplotlib  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        if os.environ.get('ANYCAST_REQUIRE_PROMETHEUS'):
            pytest.fail('matplotlib is missing: pip install -r bench/requirements-bench.txt')
        pytest.skip('matplotlib is missing (bench/requirements-bench.txt)')


def recording(*scrapes, events=()):
    return {'meta': {'region': 'westeurope', 'interval': 1.0, 'source': 'test'},
            'scrapes': [dict(zip(('t', 'nva', 'ok', 'text'), s), region='westeurope') for s in scrapes], 'events': list(events)}


def test_the_exposition_text_is_parsed_with_escaped_label_values():
    assert metrics_recorder.parse_exposition(TEXT) == [
        ('anycast_healthcheck_announce_value', {'prefix': '10.250.0.10/32'}, 1.0),
        ('anycast_healthcheck_check_duration_seconds', {'prefix': '10.250.0.10/32', 'check': 'cmd "a\\b"'}, 0.25),
        ('anycast_healthcheck_bird_up', {}, 1.0)]
    with pytest.raises(ValueError):
        metrics_recorder.parse_exposition('anycast_healthcheck_up{prefix=1} 1\n')


def test_openmetrics_gets_the_target_labels_an_up_per_scrape_and_one_block_per_family():
    text = metrics_recorder.to_openmetrics(recording((100.0, 'we-nva1', True, TEXT), (101.5, 'we-nva1', False, ''),
                                                     (102.0, 'we-nva2', True, TEXT)))
    lines = text.splitlines()
    assert lines[-1] == '# EOF'
    target = 'instance="we-nva1",job="anycast-healthcheck",nva="we-nva1",region="westeurope"'
    assert 'up{%s} 1.0 100.000' % target in lines
    assert 'up{%s} 0.0 101.500' % target in lines
    assert ('anycast_healthcheck_check_duration_seconds{check="cmd \\"a\\\\b\\"",instance="we-nva1",job="anycast-healthcheck",nva="we-nva1",'
            'prefix="10.250.0.10/32",region="westeurope"} 0.25 100.000') in lines
    families = [line.split()[2] for line in lines if line.startswith('# TYPE')]
    assert len(families) == len(set(families)) == 4  # every family's samples in one block
    assert all(line.split()[3] == 'unknown' for line in lines if line.startswith('# TYPE'))


def test_the_scrape_loop_run_on_an_nva_is_read_back_scrape_by_scrape():
    # The same shell loop the lab's NVAs run over SSH, here against a local server, then a closed port.
    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
            body = TEXT.encode()
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # pylint: disable=arguments-differ
            pass

    server = http.server.HTTPServer(('127.0.0.1', 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = 'http://127.0.0.1:%d/metrics' % server.server_port
    try:
        proc = subprocess.run(['timeout', '1.5', 'sh', '-c', metrics_recorder.scrape_loop(url, 0.3)],
                              capture_output=True, text=True, check=False)
    finally:
        server.shutdown()
        server.server_close()
    scrapes = list(metrics_recorder.scrapes_from_stream(proc.stdout.splitlines(keepends=True)))
    assert len(scrapes) >= 3
    assert all(ok and metrics_recorder.parse_exposition(text) == metrics_recorder.parse_exposition(TEXT) for _t, ok, text in scrapes)
    assert all(abs(stamp - time.time()) < 30 for stamp, _ok, _text in scrapes)
    proc = subprocess.run(['timeout', '1', 'sh', '-c', metrics_recorder.scrape_loop(url, 0.3)], capture_output=True, text=True, check=False)
    failed = list(metrics_recorder.scrapes_from_stream(proc.stdout.splitlines(keepends=True)))
    assert failed and all(not ok and text == '' for _t, ok, text in failed)


class FakeTopology:
    """What Injector uses of the lab's Topology: exec on a host, stop/start of a namespace service."""

    def __init__(self):
        self.calls = []

    def exec(self, node, argv, timeout=None):  # pylint: disable=unused-argument
        self.calls.append((node, tuple(argv)))
        return subprocess.CompletedProcess(argv, 0, '', '')

    def service_stop(self, node, name):
        self.calls.append(('stop', node, name))

    def service_start(self, node, name):
        self.calls.append(('start', node, name))


class Region:  # pylint: disable=too-few-public-methods
    short = 'we'
    nvas = [('we-nva1', '10.10.2.4', '10.10.3.4', '198.18.0.11'), ('we-nva2', '10.10.2.5', '10.10.3.5', '198.18.0.12')]


def test_every_injected_failure_is_undone(tmp_path):
    topo = FakeTopology()
    recorder = dashboard_picture.Recorder(str(tmp_path / 'r.jsonl.gz'), {'region': 'westeurope'})
    injector = dashboard_picture.Injector(topo, Region(), recorder)
    for action in ('drain', 'app-stop', 'session-down'):
        injector.run(action)
    injector.restore()
    recorder.close()
    assert topo.calls == [
        ('we-nva1', ('anycast-healthcheck', 'drain', '--withdraw-after', '15')), ('stop', 'we-app', 'web'),
        ('we-nva2', ('birdc', 'disable', 'route_server_0')),
        ('we-nva1', ('anycast-healthcheck', 'undrain')), ('start', 'we-app', 'web'), ('we-nva2', ('birdc', 'enable', 'route_server_0'))]
    injector.restore()  # nothing left to undo
    assert len(topo.calls) == 6
    with pytest.raises(ValueError, match='no scrapes'):  # events only: nothing to draw
        metrics_recorder.load_recording(str(tmp_path / 'r.jsonl.gz'))


def test_record_over_http_writes_a_recording(tmp_path):
    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
            body = TEXT.encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # pylint: disable=arguments-differ
            pass

    server = http.server.HTTPServer(('127.0.0.1', 0), Metrics)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = str(tmp_path / 'rec.jsonl.gz')
    try:
        dashboard_picture.main(['record', '--url', 'n1=http://127.0.0.1:%d/metrics' % server.server_port,
                                '--url', 'n2=http://127.0.0.1:1/metrics', '--seconds', '1.2', '--interval', '0.4', '--recording', path])
    finally:
        server.shutdown()
        server.server_close()
    recorded = metrics_recorder.load_recording(path)
    assert recorded['meta']['nvas'] == ['n1', 'n2'] and recorded['events'] == []
    by_nva = {nva: [s for s in recorded['scrapes'] if s['nva'] == nva] for nva in ('n1', 'n2')}
    assert len(by_nva['n1']) >= 2 and all(s['ok'] and s['text'] == TEXT for s in by_nva['n1'])
    assert by_nva['n2'] and not any(s['ok'] for s in by_nva['n2'])


def test_the_recorded_sample_goes_through_prometheus_unchanged():
    tool('promtool')
    tool('prometheus')
    sample = metrics_recorder.load_recording(str(SAMPLE))
    start = min(s['t'] for s in sample['scrapes'])
    end = max(s['t'] for s in sample['scrapes'])
    with tempfile.TemporaryDirectory() as workdir, metrics_recorder.prometheus_over(sample, workdir) as query_range:
        result = query_range('anycast_healthcheck_announce_value{job="anycast-healthcheck", nva="we-nva1"}', start, end, 1)
        withdraws = query_range('sum by (reason) (anycast_healthcheck_withdraws_total{nva="we-nva1"})', end, end, 1)
        up = query_range('up', start, end, 1)
    assert [r['metric']['region'] for r in result] == ['westeurope']
    values = [float(v) for _t, v in result[0]['values']]
    assert {0.0, 1.0, 4.0} <= set(values)  # withdrawn, announced, prepended (drain)
    assert values.index(4.0) < values.index(0.0, values.index(4.0)) < len(values) - 1  # prepended, then withdrawn, then back
    assert {r['metric']['reason']: float(r['values'][-1][1]) for r in withdraws}['drain-timeout'] == 1.0
    assert sorted(r['metric']['nva'] for r in up) == ['we-nva1', 'we-nva2']


def test_the_picture_shows_every_panel_of_the_dashboard(tmp_path):
    tool('promtool')
    tool('prometheus')
    matplotlib_or_skip()
    png = tmp_path / 'dashboard.png'
    drawn = dashboard_picture.render(metrics_recorder.load_recording(str(SAMPLE)), str(png))
    titles = [p['title'] for p in load_dashboard()['panels']]
    assert list(drawn) == titles
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and png.stat().st_size > 50000
    by_title = {title.split(' (')[0]: count for title, count in drawn.items()}
    assert by_title['Announcement per NVA and prefix'] == 2
    assert by_title['Exported by BIRD to Route Server'] == 2
    assert by_title['Withdraws and their reasons'] >= 2  # drain-timeout and fall
    assert by_title['BGP sessions to Route Server'] == 6  # two sessions and BIRD, per NVA
    assert by_title['Drain'] == 2 and by_title['NVAs announcing each prefix'] == 2
