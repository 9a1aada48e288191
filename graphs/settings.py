"""Engine settings, read from the environment by small helpers that fail loudly.

``SWITCHYARD_MODEL``               default model for nodes that name none
``ANTHROPIC_API_KEY``              when unset, the offline model runs instead of Claude
``ANTHROPIC_BASE_URL``             read by the Anthropic SDK itself
``SWITCHYARD_MAX_CONCURRENCY``     nodes running at once in one run (default 64)
``SWITCHYARD_WARM_THEN_FAN``       calls sharing a cached prompt prefix wait for the first
                                   one's cache write (graphs.warm; default on)
``SWITCHYARD_HTTP_GET_ENABLED``    allow the agent tool ``http_get`` (default off)
``SWITCHYARD_HTTP_NODE_ENABLED``   allow the ``http`` node (default off)
``SWITCHYARD_HTTP_ALLOW_HOSTS``    internal hosts both may reach, comma-separated (default none)
``SWITCHYARD_HTTP_TIMEOUT_S``      the http node's budget when it sets no timeout_s (default 30)
``SWITCHYARD_HTTP_MAX_REQUEST_BYTES``   the http node's request body cap (default 1000000)
``SWITCHYARD_HTTP_MAX_RESPONSE_BYTES``  the http node's response body cap (default 10000000)
``SWITCHYARD_MCP_TIMEOUT_S``       the budget of one MCP tool call or listing (default 30); MCP
                                   servers are reached through the same allow-list
``SWITCHYARD_MCP_MAX_BYTES``       the cap on one response of an MCP server (default 1000000)
``SWITCHYARD_OFFLINE_DELAY_MS``    pause between the offline model's streamed words (default 0)
``SWITCHYARD_SANDBOX_WORKERS``     template sandbox processes per event loop (default 2)
``SWITCHYARD_SANDBOX_TIMEOUT_S``   wall-clock budget of one sandboxed render (default 2)
``SWITCHYARD_SANDBOX_MEMORY_MIB``  address space of one sandbox process (default 256)
``SWITCHYARD_SUBFLOW_MAX_DEPTH``   how deep flows may call flows (default 5; the command line
                                   and the web app alike)
``SWITCHYARD_CODE_WORKERS``        code node jobs at once per event loop (default 4)
``SWITCHYARD_CODE_TIMEOUT_S``      wall-clock budget of one code node job (default 10)
``SWITCHYARD_CODE_CPU_S``          CPU seconds of one code node job (default 5)
``SWITCHYARD_CODE_MEMORY_MIB``     address space of one code node job (default 256)
``SWITCHYARD_CODE_SCRATCH_MIB``    size of a code node job's scratch directory (default 16)
``SWITCHYARD_CODE_STDOUT_CHARS``   the most a code node job may print (default 1048576)
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from graphs.limits import CodeSettings, SandboxSettings
from graphs.llm.offline import OfflineClient
from graphs.llm.types import ModelClient
from graphs.net import AllowList
from graphs.nodes import NODE_TYPES
from graphs.nodes.base import Services
from graphs.tools import BUILTIN_TOOLS, ToolSettings

DEFAULT_MODEL = "claude-sonnet-4-6"


class SettingsError(ValueError):
    """An environment variable holds a value the engine cannot use."""


def env_str(name: str, default: str, env: Mapping[str, str] = os.environ) -> str:
    value = env.get(name, default).strip()
    if not value:
        raise SettingsError(f"{name} is set but empty")
    return value


def env_int(
    name: str, default: int, *, minimum: int = 0, env: Mapping[str, str] = os.environ
) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_float(
    name: str, default: float, *, minimum: float = 0.0, env: Mapping[str, str] = os.environ
) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum or value == float("inf"):  # `not >=` also refuses NaN
        raise SettingsError(f"{name} must be a finite number of at least {minimum:g}, got {raw}")
    return value


def env_bool(name: str, default: bool, env: Mapping[str, str] = os.environ) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name} must be 1/0, true/false, yes/no or on/off, got {raw!r}")


def model_client_from_env(env: Mapping[str, str] = os.environ) -> ModelClient:
    """The Anthropic client when an API key is set, else the offline model."""
    if env.get("ANTHROPIC_API_KEY"):
        from graphs.llm.anthropic import AnthropicClient

        return AnthropicClient()
    delay_ms = env_int("SWITCHYARD_OFFLINE_DELAY_MS", 0, env=env)
    return OfflineClient(chunk_delay_s=delay_ms / 1000)


def services_from_env(env: Mapping[str, str] = os.environ) -> Services:
    # Here, not at the top: the gate loads asyncio, which checking a flow does without.
    from graphs.warm import WarmGate

    return Services(
        model_client=model_client_from_env(env),
        default_model=env_str("SWITCHYARD_MODEL", DEFAULT_MODEL, env=env),
        tools=dict(BUILTIN_TOOLS),
        registry=NODE_TYPES,
        tool_settings=tool_settings_from_env(env),
        max_concurrency=env_int("SWITCHYARD_MAX_CONCURRENCY", 64, minimum=1, env=env),
        sandbox=sandbox_from_env(env),
        code=code_from_env(env),
        # One gate per process: the prompt cache is the API key's, whichever run warms it.
        warm=WarmGate() if env_bool("SWITCHYARD_WARM_THEN_FAN", True, env=env) else None,
    )


def code_from_env(env: Mapping[str, str] = os.environ) -> CodeSettings:
    default = CodeSettings()
    return CodeSettings(
        workers=env_int("SWITCHYARD_CODE_WORKERS", default.workers, minimum=1, env=env),
        timeout_s=env_float("SWITCHYARD_CODE_TIMEOUT_S", default.timeout_s, minimum=0.1, env=env),
        cpu_s=env_int("SWITCHYARD_CODE_CPU_S", default.cpu_s, minimum=1, env=env),
        # The interpreter takes about 20 MiB of address space before the job.
        memory_mib=env_int("SWITCHYARD_CODE_MEMORY_MIB", default.memory_mib, minimum=64, env=env),
        scratch_mib=env_int("SWITCHYARD_CODE_SCRATCH_MIB", default.scratch_mib, minimum=1, env=env),
        stdout_chars=env_int(
            "SWITCHYARD_CODE_STDOUT_CHARS", default.stdout_chars, minimum=0, env=env
        ),
    )


def tool_settings_from_env(env: Mapping[str, str] = os.environ) -> ToolSettings:
    default = ToolSettings()
    return ToolSettings(
        http_get_enabled=env_bool("SWITCHYARD_HTTP_GET_ENABLED", False, env=env),
        http_node_enabled=env_bool("SWITCHYARD_HTTP_NODE_ENABLED", False, env=env),
        http_allow=allow_list_from_env(env),
        http_timeout_s=env_float(
            "SWITCHYARD_HTTP_TIMEOUT_S", default.http_timeout_s, minimum=0.01, env=env
        ),
        http_max_request_bytes=env_int(
            "SWITCHYARD_HTTP_MAX_REQUEST_BYTES", default.http_max_request_bytes, env=env
        ),
        http_max_response_bytes=env_int(
            "SWITCHYARD_HTTP_MAX_RESPONSE_BYTES", default.http_max_response_bytes, env=env
        ),
        mcp_timeout_s=env_float(
            "SWITCHYARD_MCP_TIMEOUT_S", default.mcp_timeout_s, minimum=0.01, env=env
        ),
        mcp_max_response_bytes=env_int(
            "SWITCHYARD_MCP_MAX_BYTES", default.mcp_max_response_bytes, minimum=1024, env=env
        ),
    )


def allow_list_from_env(env: Mapping[str, str] = os.environ) -> AllowList:
    """``SWITCHYARD_HTTP_ALLOW_HOSTS``; a malformed entry stops start-up, naming it.

    >>> allow_list_from_env({"SWITCHYARD_HTTP_ALLOW_HOSTS": "api.internal:8443, 10.1.0.0/16"})
    AllowList(names=(('api.internal', 8443),), addresses=((IPv4Network('10.1.0.0/16'), None),))
    >>> allow_list_from_env({"SWITCHYARD_HTTP_ALLOW_HOSTS": "10.1.0.0/33"})
    Traceback (most recent call last):
    ...
    graphs.settings.SettingsError: SWITCHYARD_HTTP_ALLOW_HOSTS: '10.1.0.0/33' is not a network: ...
    """
    try:
        return AllowList.parse(env.get("SWITCHYARD_HTTP_ALLOW_HOSTS", ""))
    except ValueError as exc:
        raise SettingsError(f"SWITCHYARD_HTTP_ALLOW_HOSTS: {exc}") from None


def sandbox_from_env(env: Mapping[str, str] = os.environ) -> SandboxSettings:
    default = SandboxSettings()
    return SandboxSettings(
        workers=env_int("SWITCHYARD_SANDBOX_WORKERS", default.workers, minimum=1, env=env),
        timeout_s=env_float(
            "SWITCHYARD_SANDBOX_TIMEOUT_S", default.timeout_s, minimum=0.01, env=env
        ),
        # Python itself and Jinja take about 30 MiB of address space before any job.
        memory_mib=env_int(
            "SWITCHYARD_SANDBOX_MEMORY_MIB", default.memory_mib, minimum=64, env=env
        ),
    )


def default_services() -> Services:
    """Services for checks that call no model: the registry and tool names matter."""
    return Services(
        model_client=OfflineClient(),
        default_model=DEFAULT_MODEL,
        tools=dict(BUILTIN_TOOLS),
        registry=NODE_TYPES,
    )
