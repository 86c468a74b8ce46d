"""Configuration validation: good input gets defaults, bad input names the field."""

import json
import subprocess
import sys

import pytest

from anycast_healthcheck.config import ConfigError, PREFIX_DEFAULTS, validate_config


def config(**prefix_overrides):
    prefix = {'prefix': '10.250.0.10/32', 'checks': [{'type': 'http', 'url': 'http://10.11.1.4/health'}]}
    prefix.update(prefix_overrides)
    return {'prefixes': [prefix]}


def test_minimal_config_gets_the_defaults():
    result = validate_config(config())
    prefix = result['prefixes'][0]
    for key, value in PREFIX_DEFAULTS.items():
        assert prefix[key] == value
    assert prefix['checks'][0]['expect_status'] == [200]
    assert prefix['checks'][0]['tls_verify'] is True
    assert prefix['checks'][0]['keepalive'] is True


def test_validation_does_not_change_the_input():
    raw = config()
    before = json.dumps(raw, sort_keys=True)
    validate_config(raw)
    assert json.dumps(raw, sort_keys=True) == before


BAD = [
    (config(prefix='10.250.0.0/24'), 'prefixes[0].prefix: must be an IPv4 /32'),
    (config(prefix='10.250.0.10'), 'prefixes[0].prefix: must be an IPv4 /32'),
    (config(prefix='fd00::1/128'), 'prefixes[0].prefix: must be an IPv4 /32'),
    (config(rise=0), 'prefixes[0].rise: must be an integer between 1 and 1000'),
    (config(fall=True), 'prefixes[0].fall: must be an integer'),
    (config(interval=-1), 'prefixes[0].interval: must be a number'),
    (config(timeout=1.0), 'prefixes[0].timeout: must not exceed interval'),
    (config(fast_interval=1.0), 'prefixes[0].fast_interval: must not exceed interval'),
    (config(on_failure='ignore'), 'prefixes[0].on_failure: must be one of withdraw, prepend'),
    (config(prepend=0), 'prefixes[0].prepend: must be an integer between 1 and 10'),
    (config(intervall=1), 'prefixes[0]: unknown option(s) intervall'),
    (config(checks=[]), 'prefixes[0].checks: must be a non-empty list'),
    (config(checks=[{'type': 'ping', 'host': '10.11.1.4'}]), 'prefixes[0].checks[0].type: must be one of command, http, tcp'),
    (config(checks=[{'type': 'tcp', 'host': '10.11.1.4', 'port': 70000}]), 'prefixes[0].checks[0].port: must be an integer between 1 and 65535'),
    (config(checks=[{'type': 'tcp', 'host': 'backend', 'port': 80}]), 'prefixes[0].checks[0].host: must be an IP address'),
    (config(checks=[{'type': 'tcp', 'port': 80}]), 'prefixes[0].checks[0].host: is required'),
    (config(checks=[{'type': 'http', 'url': 'ftp://10.11.1.4/'}]), 'prefixes[0].checks[0].url: must be http://'),
    (config(checks=[{'type': 'http', 'url': 'http://10.11.1.4:99999/'}]), 'prefixes[0].checks[0].url: must be http://'),
    (config(checks=[{'type': 'http', 'url': 'http://app.example/'}]), 'prefixes[0].checks[0].url (host): must be an IP address'),
    (config(checks=[{'type': 'http', 'url': 'http://10.11.1.4/', 'expect_status': 700}]), 'prefixes[0].checks[0].expect_status'),
    (config(checks=[{'type': 'http', 'url': 'http://10.11.1.4/', 'body_regex': '('}]), 'prefixes[0].checks[0].body_regex: is not a valid'),
    (config(checks=[{'type': 'http', 'url': 'http://10.11.1.4/', 'tls_verify': 'no'}]), 'prefixes[0].checks[0].tls_verify: must be true or false'),
    (config(checks=[{'type': 'http', 'url': 'http://10.11.1.4/', 'keepalive': 'no'}]), 'prefixes[0].checks[0].keepalive: must be true or false'),
    (config(checks=[{'type': 'tcp', 'host': '10.11.1.4', 'port': 80, 'keepalive': False}]), 'prefixes[0].checks[0]: unknown option(s) keepalive'),
    (config(checks=[{'type': 'http', 'url': 'http://10.11.1.4/', 'ca_file': '/ca.pem'}]), 'prefixes[0].checks[0].ca_file: only applies to https'),
    (config(checks=[{'type': 'command', 'argv': ['curl', 'x']}]), 'prefixes[0].checks[0].argv: the program must be an absolute path'),
    (config(checks=[{'type': 'command', 'argv': '/bin/true'}]), 'prefixes[0].checks[0].argv: must be a non-empty list'),
    (config(checks=[{'type': 'tcp', 'host': '10.11.1.4', 'port': 80}] * 2), 'prefixes[0].checks: check names must be unique'),
    ({'prefixes': [config()['prefixes'][0], config()['prefixes'][0]]}, 'prefixes[1].prefix: is listed twice'),
    ({'prefixes': [], 'metrics_listen': 'localhost:9469'}, 'metrics_listen: must be IP:PORT'),
    ({'prefixes': [], 'state_file': 'announce.conf'}, 'state_file: must be an absolute path'),
    ({'prefix': []}, 'config: unknown option(s) prefix'),
]


@pytest.mark.parametrize('raw,message', BAD, ids=[m[:60] for _r, m in BAD])
def test_bad_input_names_the_field(raw, message):
    with pytest.raises(ConfigError) as err:
        validate_config(raw)
    assert str(err.value).startswith(message)


def run_cli(daemon, *args):
    return subprocess.run([sys.executable, str(daemon)] + list(args), capture_output=True, text=True, check=False, timeout=30)


def test_check_config_accepts_a_good_file(tmp_path, daemon_path):
    path = tmp_path / 'config.json'
    path.write_text(json.dumps(config()))
    result = run_cli(daemon_path, 'check-config', str(path))
    assert result.returncode == 0, result.stderr
    assert 'configuration OK: 1 prefix' in result.stdout


def test_the_launcher_runs_the_package_under_python_isolated_mode(tmp_path, daemon_path):
    # As the unit runs it: python3 -I (no script directory, no cwd on sys.path), from elsewhere.
    path = tmp_path / 'config.json'
    path.write_text(json.dumps(config()))
    result = subprocess.run([sys.executable, '-I', str(daemon_path), 'check-config', str(path)], cwd=str(tmp_path),
                            capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode == 0, result.stderr
    assert 'configuration OK: 1 prefix' in result.stdout


def test_check_config_rejects_a_bad_file_and_names_the_field(tmp_path, daemon_path):
    path = tmp_path / 'config.json'
    path.write_text(json.dumps(config(rise=0)))
    result = run_cli(daemon_path, '--config', str(path), 'check-config')
    assert result.returncode == 2
    assert 'prefixes[0].rise: must be an integer between 1 and 1000' in result.stderr


def test_check_config_rejects_invalid_json(tmp_path, daemon_path):
    path = tmp_path / 'config.json'
    path.write_text('{"prefixes": [')
    result = run_cli(daemon_path, 'check-config', str(path))
    assert result.returncode == 2
    assert 'not valid JSON' in result.stderr


def test_role_defaults_equal_the_daemon_defaults(daemon_path):
    yaml = pytest.importorskip('yaml')
    role = daemon_path.parents[1]
    defaults = yaml.safe_load((role / 'defaults' / 'main.yml').read_text())
    specs = yaml.safe_load((role / 'meta' / 'argument_specs.yml').read_text())['argument_specs']['main']['options']
    for key, value in PREFIX_DEFAULTS.items():
        assert defaults['healthcheck_' + key] == value, key
        assert specs['healthcheck_' + key]['default'] == value, key


def test_the_checker_writes_the_file_the_bird_role_has_bird_include(daemon_path):
    # The announcement contract's file is named once in the roles (the bird role's vars);
    # the healthcheck role leaves it to the daemon's default.
    yaml = pytest.importorskip('yaml')
    roles = daemon_path.parents[2]
    bird_vars = yaml.safe_load((roles / 'bird' / 'vars' / 'main.yml').read_text())
    healthcheck_vars = yaml.safe_load((roles / 'healthcheck' / 'vars' / 'main.yml').read_text())
    assert validate_config(config())['state_file'] == bird_vars['bird__live_file'] == '/run/anycast-nva/announce.conf'
    assert 'state_file' not in healthcheck_vars['healthcheck__config']


def test_default_check_names_and_errors_leave_secrets_out():
    # A token in a URL's query or user info, or in a command's arguments, must not reach the
    # check's name (metric labels, logs, status) nor a validation error (Ansible's output).
    config = validate_config({'prefixes': [{'prefix': '10.250.0.10/32', 'checks': [
        {'type': 'http', 'url': 'http://user:s3cret-a@10.11.1.4:8080/health?token=s3cret-b#frag'},
        {'type': 'command', 'argv': ['/usr/local/bin/app-ready', '--token', 's3cret-c']}]}]})
    names = [check['name'] for check in config['prefixes'][0]['checks']]
    assert names == ['http://10.11.1.4:8080/health?...', '/usr/local/bin/app-ready']
    same_program = {'type': 'command', 'argv': ['/bin/check', '--token=s3cret-f']}
    for checks in ([{'type': 'http', 'url': 'ftp://10.11.1.4/?token=s3cret-d'}],     # a bad URL
                   [{'type': 'command', 'argv': ['/bin/check', {'token': 's3cret-e'}]}],  # a bad argv
                   [same_program, dict(same_program, argv=['/bin/check', '-v'])]):      # two default names alike
        with pytest.raises(ConfigError) as error:
            validate_config({'prefixes': [{'prefix': '10.250.0.10/32', 'checks': checks}]})
        assert 's3cret' not in str(error.value), str(error.value)
