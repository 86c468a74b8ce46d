# -*- coding: utf-8 -*-
# Copyright: (c) 2026, anycast.nva maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options every anycast.nva Azure module takes (see plugins/module_utils/arm.py).
    DOCUMENTATION = r"""
options:
  subscription_id:
    description:
      - The Azure subscription that holds the resources.
      - Falls back to the E(AZURE_SUBSCRIPTION_ID) environment variable. Required one way or the other.
    type: str
  auth_source:
    description:
      - Where the credential comes from.
      - V(auto) uses O(client_id), O(secret) and O(tenant) when all three are set, otherwise
        azure-identity's C(DefaultAzureCredential) (environment, workload identity, managed identity, Azure CLI, ...).
      - V(cli) uses the Azure CLI login (C(az login)).
      - V(msi) uses the managed identity of the machine running the module (O(client_id) picks a user-assigned one).
      - V(env) uses the service principal in E(AZURE_CLIENT_ID), E(AZURE_CLIENT_SECRET), E(AZURE_TENANT_ID).
      - V(credentials) uses O(client_id), O(secret) and O(tenant).
    type: str
    default: auto
    choices: [auto, cli, msi, env, credentials]
  client_id:
    description:
      - Application (client) id of a service principal, or of a user-assigned managed identity with O(auth_source=msi).
      - Falls back to E(AZURE_CLIENT_ID).
    type: str
  secret:
    description:
      - Client secret of the service principal.
      - Falls back to E(AZURE_CLIENT_SECRET), then E(AZURE_SECRET).
    type: str
  tenant:
    description:
      - Entra ID tenant id of the service principal.
      - Falls back to E(AZURE_TENANT_ID), then E(AZURE_TENANT).
    type: str
  arm_endpoint:
    description:
      - Azure Resource Manager endpoint. Change it for sovereign clouds (for example V(https://management.usgovcloudapi.net))
        or for a local ARM emulator.
      - The token scope is derived from it (C(<arm_endpoint>/.default)).
    type: str
    default: https://management.azure.com
  authority_host:
    description:
      - Entra ID (login) endpoint the credential gets its tokens from, for example V(https://login.microsoftonline.us).
      - When it is not the public cloud's V(https://login.microsoftonline.com), instance discovery is disabled.
      - Falls back to E(AZURE_AUTHORITY_HOST); unset means the public cloud.
    type: str
  ca_bundle:
    description:
      - A PEM file of CA certificates to trust for the ARM and Entra ID endpoints instead of the system store
        (a private endpoint behind an inspecting proxy, or the lab's emulator).
    type: path
  timeout:
    description:
      - Seconds that bound the whole run of the module, all waits and retries included.
      - The SDK's own retries (HTTP 408, 429, 5xx) and this collection's retries (409 C(AnotherOperationInProgress),
        a Route Server whose routing is not provisioned yet) stop when it runs out, and the module fails with Azure's last answer.
      - Creating a Route Server takes Azure 20 minutes or more.
    type: int
    default: 1800
requirements:
  - python >= 3.8
  - azure-mgmt-network >= 33.0.0, < 34.0.0
  - azure-identity >= 1.15.0
notes:
  - Every module supports check mode (no request that changes anything is sent) and diff mode (before/after of what it manages).
  - Errors name the module option at fault and carry Azure's error code and message.
"""

    # The attributes of a module that changes Azure resources (listed before ansible.builtin.action_common_attributes).
    CHANGES = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: azure
"""

    # The attributes of a module that only reads (listed before ansible.builtin.action_common_attributes).
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    details: Read-only; it runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: azure
"""
