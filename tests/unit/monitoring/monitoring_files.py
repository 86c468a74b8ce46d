"""What the monitoring tests share: the shipped files, promtool, the checker's metric families, PromQL metric names."""

import json
import os
import pathlib
import re
import shutil
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
RULES = ROOT / 'monitoring' / 'prometheus' / 'anycast-nva.rules.yml'
RULES_TEST = pathlib.Path(__file__).resolve().parent / 'rules_test.yml'
DASHBOARD = ROOT / 'monitoring' / 'grafana' / 'anycast-nva-region.json'
JOB = 'anycast-healthcheck'
# Series Prometheus makes itself for every target.
PROMETHEUS_SERIES = {'up'}
# What the dashboard's variables stand for when its queries are checked or run outside Grafana.
GRAFANA_VARIABLES = {'$region': 'westeurope', '$__rate_interval': '1m'}

PROMQL_KEYWORDS = {'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset'}


def tool(name):
    """Path of a tool of the Debian package prometheus; skips when missing, unless ANYCAST_REQUIRE_PROMETHEUS is set."""
    path = shutil.which(name)
    if not path:
        if os.environ.get('ANYCAST_REQUIRE_PROMETHEUS'):
            pytest.fail('%s is missing: install the Debian package prometheus (make deps)' % name)
        pytest.skip('%s is missing (Debian package prometheus; make deps)' % name)
    return path


def metric_names(expr):
    """Names of the metrics a PromQL expression reads (not functions, keywords, label names or durations)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r'\{[^}]*\}', ' ', text)
    text = re.sub(r'\[[^\]]*\]', ' ', text)
    text = re.sub(r'\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)', ' ', text)
    names = set()
    for match in re.finditer(r'(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*', text):
        if match.group(0) in PROMQL_KEYWORDS or text[match.end():].lstrip().startswith('('):
            continue
        names.add(match.group(0))
    return names


def checker_families(tmp_path):
    """Every metric family the checker can export: rendered with each optional part present."""
    dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # nothing compiled into the role's files
    try:
        from anycast_healthcheck.config import validate_prefix  # pylint: disable=import-outside-toplevel
        from anycast_healthcheck.metrics import Metrics  # pylint: disable=import-outside-toplevel
        from anycast_healthcheck.state import Health, Prefix  # pylint: disable=import-outside-toplevel
    finally:
        sys.dont_write_bytecode = dont_write
    netfilter = tmp_path / 'netfilter'
    netfilter.mkdir()
    (netfilter / 'nf_conntrack_count').write_text('10\n')
    (netfilter / 'nf_conntrack_max').write_text('100\n')
    spec = validate_prefix({'prefix': '10.250.0.10/32', 'checks': [{'type': 'tcp', 'host': '10.11.1.4', 'port': 80}]}, 'p')
    metrics = Metrics()
    metrics.conntrack_dir = str(netfilter)
    metrics.region_nvas = 2
    metrics.failsafe_file = str(tmp_path / 'failsafe.json')
    metrics.observe('10.250.0.10/32', [{'name': 'tcp://10.11.1.4:80', 'ok': True, 'seconds': 0.001}])
    metrics.bird_view = {'values': {'10.250.0.10/32': 1}, 'exported': {'10.250.0.10/32': ['route_server_0']},
                         'sessions': {'route_server_0': True}}
    text = metrics.render({'10.250.0.10/32': Prefix(spec, Health(spec))}, 0.0)
    return dict(re.findall(r'^# TYPE (\S+) (\S+)$', text, re.M))


def load_dashboard():
    with open(DASHBOARD, encoding='utf-8') as handle:
        return json.load(handle)


def dashboard_panels(dashboard):
    """The panels with queries (rows excluded), nested rows' panels included."""
    found = []
    for panel in dashboard['panels']:
        if panel.get('type') == 'row':
            found.extend(panel.get('panels', []))
        else:
            found.append(panel)
    return found


def variable_exprs(dashboard):
    """{name: PromQL} of the dashboard's query variables: label_values(SELECTOR, LABEL) as count by (LABEL) (SELECTOR)."""
    found = {}
    for var in dashboard['templating']['list']:
        if var['type'] == 'query':
            match = re.fullmatch(r'label_values\((.+), *(\w+)\)', var['query']['query'])
            assert match, var['query']['query']
            found[var['name']] = 'count by (%s) (%s)' % (match.group(2), match.group(1))
    return found


def grafana_expr(expr, variables=None):
    """A dashboard query with its Grafana variables replaced (longest name first)."""
    for name, value in sorted((variables or GRAFANA_VARIABLES).items(), key=lambda item: -len(item[0])):
        expr = expr.replace(name, value)
    return expr
