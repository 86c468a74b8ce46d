"""site.yml for a lab region through ansible-runner, the engine AWX and Automation Platform run jobs with, laid out
as AWX lays out a job: a private data directory with the project (a playbook that imports anycast.nva.site), the
inventory, and the collection installed from the built tarball; the Azure credential reaches the job only as the
environment variables AWX's Azure Resource Manager credential injects, the SSH key through ssh-agent as AWX does, and
runner writes no env files (AWX's `suppress_env_files`; runner still records the environment in its own 0600
artifacts/<ident>/command). Figures are printed: run with -s.
"""
import glob
import os
import shutil
import subprocess
import sys
import time

import ansible_runner
import yaml

from anycast_lab.paths import REPO
from anycast_lab.regions import plan

WE = plan.REGIONS[0]
BIN = os.path.dirname(sys.executable)
# What AWX's "Microsoft Azure Resource Manager" credential injects into the job's environment.
CREDENTIAL_ENV = {"AZURE_SUBSCRIPTION_ID": "subscription_id", "AZURE_CLIENT_ID": "client_id", "AZURE_SECRET": "secret",
                  "AZURE_TENANT": "tenant"}


def lab_vars():
    with open(os.path.join(REPO, "inventories", "lab", "lab.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def private_data_dir(tmp_path, lab_dir):
    """project/, inventory/ and the collection from the tarball, with no credential in any file."""
    pdd = tmp_path / "job"
    (pdd / "project").mkdir(parents=True)
    (pdd / "project" / "site.yml").write_text("---\n- name: The region's NVAs and Azure\n  ansible.builtin.import_playbook: anycast.nva.site\n")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), REPO],
                   check=True, capture_output=True, cwd=tmp_path)
    tarball = glob.glob(str(tmp_path / "anycast-nva-*.tar.gz"))[0]
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "-p", str(pdd / "requirements_collections"),
                    tarball], check=True, capture_output=True, cwd=tmp_path)
    inventory = pdd / "inventory"
    shutil.copytree(os.path.join(REPO, "inventories", "lab", WE.name), inventory, symlinks=False)
    common = lab_vars()
    for key in CREDENTIAL_ENV.values():
        del common["anycast_azure"][key]
    common["anycast_azure"]["auth_source"] = "auto"
    del common["ansible_ssh_private_key_file"]  # the machine credential: ssh-agent
    common["anycast_lab_dir"] = lab_dir
    (inventory / "group_vars" / "all" / "lab.yml").unlink()
    (inventory / "group_vars" / "all" / "lab.yml").write_text(yaml.safe_dump(common, sort_keys=False))
    return pdd, tarball


def files_with(pdd, secret):
    """Files of the job that hold `secret`; the installed collection aside (it ships the lab's inventories, whose
    service principal opens nothing but the lab's emulator)."""
    installed = pdd / "requirements_collections"
    return [str(path) for path in pdd.rglob("*") if path.is_file() and installed not in path.parents and secret.encode() in path.read_bytes()]


def test_site_runs_under_ansible_runner_as_awx_runs_a_job(deployed, tmp_path, monkeypatch):
    # A job knows nothing of this repository: not its ansible.cfg (whose collections path has the collection too).
    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)
    secrets = lab_vars()["anycast_azure"]
    pdd, tarball = private_data_dir(tmp_path, deployed.base)
    leaked = files_with(pdd, secrets["secret"])
    assert not leaked, f"the credential is in files of the job before it runs: {leaked}"
    with open(os.path.join(deployed.base, "ssh", "id_ed25519"), encoding="utf-8") as handle:
        ssh_key = handle.read()
    env = {name: secrets[key] for name, key in CREDENTIAL_ENV.items()}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(pdd / "requirements_collections"), PATH=BIN + os.pathsep + os.environ["PATH"])
    arm = deployed.arm()
    arm.clear_requests()
    started = time.monotonic()
    result = ansible_runner.run(private_data_dir=str(pdd), playbook="site.yml", inventory=str(pdd / "inventory"),
                                envvars=env, ssh_key=ssh_key, suppress_env_files=True, quiet=True)
    seconds = time.monotonic() - started
    stdout = result.stdout.read()
    print(f"\nansible-runner site.yml {WE.name} with the collection from {os.path.basename(tarball)}: {result.status}, "
          f"{seconds:.0f} s, changed {sum(result.stats['changed'].values()) if result.stats else '?'}", flush=True)
    assert result.status == "successful" and result.rc == 0, stdout[-4000:]
    # The lab was deployed from the repository: the job, from the tarball, finds it as it should be.
    assert sum(result.stats["changed"].values()) == 0, f"the job changed something: {result.stats['changed']}"
    assert arm.writes() == 0, f"the job wrote to ARM: {arm.arm_requests('write')}"
    assert arm.arm_requests(), "the job sent ARM nothing: it did not use the lab's emulator"
    installed = os.path.join(str(pdd / "requirements_collections"), "ansible_collections", "anycast", "nva")
    assert os.path.isdir(installed) and not os.path.islink(installed)
    # ansible-runner records the job's environment in artifacts/<ident>/command, readable by the job's user only;
    # nothing else of the job, and nothing the collection writes, holds the credential.
    recorded = [path for path in files_with(pdd, secrets["secret"]) if os.path.basename(path) == "command"
                and os.path.basename(os.path.dirname(os.path.dirname(path))) == "artifacts"]
    assert all(os.stat(path).st_mode & 0o077 == 0 for path in recorded), f"runner's record is readable by others: {recorded}"
    leaked = sorted(set(files_with(pdd, secrets["secret"])) - set(recorded))
    assert not leaked, f"the credential was written to files of the job: {leaked}"
    assert secrets["secret"] not in stdout, "the credential appears in the job's output"
