"""The shipped alert rules and Grafana dashboard: promtool checks and tests them, and they read only what the checker exports.

`make prometheus` runs this file with ANYCAST_REQUIRE_PROMETHEUS=1 (a missing promtool fails there instead of skipping).
"""

import re
import subprocess

import pytest
import yaml

from monitoring_files import (DASHBOARD, JOB, PROMETHEUS_SERIES, RULES, RULES_TEST, checker_families, dashboard_panels,
                              grafana_expr, load_dashboard, metric_names, tool, variable_exprs)

# Alerts about the scrape configuration itself: there is no region (or not for sure) to name.
NO_REGION = {'AnycastCheckerTargetsAbsent', 'AnycastCheckerTargetLabelsMissing'}


def rules():
    with open(RULES, encoding='utf-8') as handle:
        return [rule for group in yaml.safe_load(handle)['groups'] for rule in group['rules']]


def promtool(*args):
    return subprocess.run([tool('promtool')] + list(args), capture_output=True, text=True, check=False, timeout=120)


def test_promtool_check_rules():
    proc = promtool('check', 'rules', str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'SUCCESS: %d rules found' % len(rules()) in proc.stdout


def test_promtool_test_rules():
    proc = promtool('test', 'rules', str(RULES_TEST))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_each_alert_is_tested_firing_and_silent():
    with open(RULES_TEST, encoding='utf-8') as handle:
        cases = [case for test in yaml.safe_load(handle)['tests'] for case in test['alert_rule_test']]
    for rule in rules():
        mine = [case for case in cases if case['alertname'] == rule['alert']]
        assert any(case.get('exp_alerts') for case in mine), '%s never fires in %s' % (rule['alert'], RULES_TEST.name)
        assert any(not case.get('exp_alerts') for case in mine), '%s is never expected silent' % rule['alert']


def test_alerts_name_their_region_nva_and_prefix_and_carry_a_severity():
    for rule in rules():
        summary = rule['annotations']['summary']
        assert rule['labels']['severity'] in ('critical', 'warning', 'info'), rule['alert']
        assert '$labels.region' in summary or rule['alert'] in NO_REGION, rule['alert']
        if 'anycast_healthcheck_' in rule['expr'] and 'by (region' not in rule['expr']:
            assert '$labels.nva' in summary, rule['alert']  # per-NVA alerts name the NVA
        if re.search(r'anycast_healthcheck_(healthy|bird_exported|announce_value|transitions_total|drained)\b', rule['expr']):
            assert '$labels.prefix' in summary, rule['alert']  # per-prefix alerts name the prefix


def test_metric_names_are_found_in_promql():
    expr = ('sum by (region, prefix) (rate(a_total{job="x", y=~"a|b"}[5m])) < on (region) group_left max by (region) (b)'
            ' and ignoring(z) c offset 5m or absent(d) unless time() - e > bool 3600')
    assert metric_names(expr) == {'a_total', 'b', 'c', 'd', 'e'}


def test_rules_and_dashboard_read_only_what_the_checker_exports(tmp_path):
    exported = set(checker_families(tmp_path)) | PROMETHEUS_SERIES
    dashboard = load_dashboard()
    exprs = [rule['expr'] for rule in rules()] + [t['expr'] for p in dashboard_panels(dashboard) for t in p['targets']]
    exprs += list(variable_exprs(dashboard).values())
    used = set()
    for expr in exprs:
        unknown = metric_names(expr) - exported
        assert not unknown, 'not exported by the checker: %s in %s' % (sorted(unknown), expr)
        used |= metric_names(expr)
    assert used >= {'up', 'anycast_healthcheck_bird_exported', 'anycast_healthcheck_bird_session_established',
                    'anycast_healthcheck_drained', 'anycast_healthcheck_withdraws_total'}


def test_the_dashboard_is_a_provisioning_file_with_a_datasource_and_queries_in_every_panel():
    dashboard = load_dashboard()
    assert dashboard.get('id') is None  # Grafana gives it one; a provisioned file must not pin it
    assert dashboard['uid'] and dashboard['title'] and isinstance(dashboard['schemaVersion'], int)
    variables = {var['name']: var for var in dashboard['templating']['list']}
    assert variables['datasource']['type'] == 'datasource' and variables['datasource']['query'] == 'prometheus'
    assert variables['region']['type'] == 'query'
    panels = dashboard_panels(dashboard)
    assert len({p['id'] for p in panels}) == len(panels) >= 8
    for panel in panels:
        name = panel['title']
        assert panel['datasource'] == {'type': 'prometheus', 'uid': '${datasource}'}, name
        assert panel['type'] in ('timeseries', 'state-timeline'), name
        grid = panel['gridPos']
        assert 0 <= grid['x'] and grid['x'] + grid['w'] <= 24 and grid['h'] > 0, name
        assert panel['targets'], name
        refs = [t['refId'] for t in panel['targets']]
        assert len(set(refs)) == len(refs), name
        for target in panel['targets']:
            assert target['datasource'] == panel['datasource'] and target['expr'].strip(), name
            assert 'job="%s", region="$region"' % JOB in target['expr'], name
    titles = ' '.join(p['title'].lower() for p in panels)
    for subject in ('announc', 'probe latency', 'probe failures', 'withdraws', 'bgp sessions', 'drain'):
        assert subject in titles, subject


def test_every_dashboard_query_parses(tmp_path):
    # promtool parses every query as a recording rule of a throwaway rules file.
    dashboard = load_dashboard()
    records = [{'record': 'dashboard:panel%d_%s' % (p['id'], t['refId']), 'expr': grafana_expr(t['expr'])}
               for p in dashboard_panels(dashboard) for t in p['targets']]
    records += [{'record': 'dashboard:variable_' + name, 'expr': expr} for name, expr in variable_exprs(dashboard).items()]
    path = tmp_path / 'dashboard.rules.yml'
    path.write_text(yaml.safe_dump({'groups': [{'name': 'dashboard', 'rules': records}]}))
    proc = promtool('check', 'rules', str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'SUCCESS: %d rules found' % len(records) in proc.stdout


@pytest.mark.parametrize('broken', ['sum by (prefix (x)', 'rate(x[5m]', 'x{a="b"} >'])
def test_a_broken_query_fails_the_parse_check(tmp_path, broken):
    path = tmp_path / 'broken.rules.yml'
    path.write_text(yaml.safe_dump({'groups': [{'name': 'g', 'rules': [{'record': 'r', 'expr': broken}]}]}))
    assert promtool('check', 'rules', str(path)).returncode != 0


def test_the_files_are_shipped_with_the_collection():
    with open(RULES.parents[2] / 'galaxy.yml', encoding='utf-8') as handle:
        ignored = yaml.safe_load(handle)['build_ignore']
    for path in (RULES, DASHBOARD):
        relative = path.relative_to(RULES.parents[2]).as_posix()
        assert not any(relative == i or relative.startswith(i.rstrip('/') + '/') for i in ignored), relative
