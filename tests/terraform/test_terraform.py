"""Offline checks of the deployment in terraform/ and of scripts/package.py.

Structure is checked on every .tf file parsed with python-hcl2. What needs
Terraform's own evaluation (variable validation, the environment each
function gets, the bundle's file list) runs `terraform console` on a copy of
variables.tf and of main.tf's variable-only locals: no provider, no network.
`terraform validate` runs only where the google and archive providers are
already on disk.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2
import pytest
from hcl2.utils import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
TF = REPO / "terraform"
EXAMPLE = TF / "examples" / "basic"
EXAMPLE_TFVARS = EXAMPLE / "terraform.tfvars.example"
TERRAFORM = shutil.which("terraform")

# The Cloud Functions of main.py: resource name -> (entry point, signature).
FUNCTIONS = {
    "http": ("operations_http", "http"),
    "worker": ("operations_worker", "cloud_event"),
    "sweep": ("operations_sweep", "cloud_event"),
}
MESSAGE_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
SUPPORTED_RUNTIMES = {"python311", "python312", "python313"}
BASIC_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}

# Every grant the deployment makes, reviewed: (resource type, name) -> role.
# A new grant fails this test until it is added here with its reason.
EXPECTED_GRANTS = {
    # Runtime accounts: operation documents (Firestore has no finer role).
    ("google_project_iam_member", "function_datastore_user"): "roles/datastore.user",
    # Runtime accounts: publish on the jobs topic only.
    ("google_pubsub_topic_iam_member", "function_jobs_publisher"): "roles/pubsub.publisher",
    # Trigger account: invoke the worker and sweep services only.
    ("google_cloud_run_service_iam_member", "events_invoker"): "roles/run.invoker",
    # allUsers (auth is in the function) or the API Gateway account.
    ("google_cloud_run_service_iam_member", "http_invoker"): "roles/run.invoker",
    # Pub/Sub service agent: mint the trigger account's push tokens.
    ("google_service_account_iam_member", "pubsub_agent_token_creator"):
        "roles/iam.serviceAccountTokenCreator",
    # Pub/Sub service agent: forward failed jobs to the dead-letter topic.
    ("google_pubsub_topic_iam_member", "dead_letter_publisher"): "roles/pubsub.publisher",
    # Build account: Cloud Run Builder, the predefined role for function builds.
    ("google_project_iam_member", "build_builder"): "roles/run.builder",
    # HTTP runtime account: read the page-token key, on that one secret.
    ("google_secret_manager_secret_iam_member", "http_page_token"):
        "roles/secretmanager.secretAccessor",
    # Runtime accounts: publish lifecycle events, on the events topic only.
    ("google_pubsub_topic_iam_member", "function_events_publisher"): "roles/pubsub.publisher",
    # Runtime accounts that export spans / metrics: write them (project-level
    # roles only), for exactly the functions whose OTEL_* exporters are on.
    ("google_project_iam_member", "function_trace_agent"): "roles/cloudtrace.agent",
    ("google_project_iam_member", "function_metric_writer"): "roles/monitoring.metricWriter",
}
# Made by the gcloud step in pubsub.tf: the Pub/Sub service agent acknowledges
# dead-lettered messages on the Eventarc subscription.
EXPECTED_GCLOUD_ROLES = {"roles/pubsub.subscriber"}
PROJECT_ROLES = {"roles/datastore.user", "roles/run.builder", "roles/cloudtrace.agent",
                 "roles/monitoring.metricWriter"}

# Queries of lib/core/store.py, as (field, direction) prefixes of a composite index.
REQUIRED_INDEXES = {
    "list": [("parent", "ASCENDING"), ("createTime", "DESCENDING")],
    "list by done": [("parent", "ASCENDING"), ("done", "ASCENDING"),
                     ("createTime", "DESCENDING")],
    "list by kind": [("parent", "ASCENDING"), ("kind", "ASCENDING"),
                     ("createTime", "DESCENDING")],
    "list by verb": [("parent", "ASCENDING"), ("verb", "ASCENDING"),
                     ("createTime", "DESCENDING")],
    "list by target": [("parent", "ASCENDING"), ("target", "ASCENDING"),
                       ("createTime", "DESCENDING")],
    "list by error code": [("parent", "ASCENDING"), ("error.code", "ASCENDING"),
                           ("createTime", "DESCENDING")],
    "sweep expired leases": [("state", "ASCENDING"), ("lease.expireTime", "ASCENDING")],
    "sweep stale queued": [("state", "ASCENDING"), ("updateTime", "ASCENDING")],
}

# Settings Terraform leaves unset on purpose, with the reason.
LEFT_AT_DEFAULT = {
    "PAGE_TOKEN_SECRET": "mounted from Secret Manager (secret_environment_variables), not a "
                         "plain environment variable; checked by its own test",
    "OPERATIONS_SURFACES_FILE": "set only when var.surfaces is given; unset keeps the "
                                "built-in v1/v3beta1 table (see the surfaces test)",
    "MAX_OPERATION_TIMEOUT": "the longest create timeout (7 days by default) is an API "
                             "limit, the same in every deployment",
}
# Settings whose default is wrong in the cloud: each function must get them.
EXPLICIT_EVERYWHERE = {"GOOGLE_CLOUD_PROJECT", "OPERATIONS_COLLECTION", "OPERATIONS_TOPIC"}


# --- helpers ---------------------------------------------------------------

_HCL_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)


def _tf_files() -> list[Path]:
    return sorted(p for p in TF.rglob("*.tf") if ".terraform" not in p.parts)


@functools.cache
def _parse(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_HCL_OPTIONS)


def _blocks(kind: str, directory: Path = TF) -> list[dict[str, Any]]:
    return [b for p in sorted(directory.glob("*.tf")) for b in _parse(p).get(kind, [])]


@functools.cache
def _resources() -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for block in _blocks("resource"):
        for kind, named in block.items():
            for name, body in named.items():
                assert (kind, name) not in found, f"{kind}.{name} is declared twice"
                found[(kind, name)] = body
    return found


def _resource(kind: str, name: str) -> dict[str, Any]:
    try:
        return _resources()[(kind, name)]
    except KeyError:
        pytest.fail(f"terraform/ declares no {kind}.{name}")


def _one(body: dict[str, Any], block: str) -> dict[str, Any]:
    value = body.get(block)
    assert isinstance(value, list) and len(value) == 1, f"expected one {block} block"
    return value[0]


def _variables(directory: Path = TF) -> dict[str, dict[str, Any]]:
    return {name: body for b in _blocks("variable", directory) for name, body in b.items()}


def _locals(directory: Path = TF) -> dict[str, Any]:
    return {k: v for b in _blocks("locals", directory) for k, v in b.items()}


def _main_py_functions() -> dict[str, list[str]]:
    """Top-level functions of main.py -> their decorators, as dotted names."""
    tree = ast.parse((REPO / "main.py").read_text(encoding="utf-8"))
    return {
        node.name: [ast.unparse(d) for d in node.decorator_list]
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


def _config_docstring_variables() -> list[str]:
    from lib.core import config
    return re.findall(r"^\s{4}([A-Z][A-Z0-9_]+)\s", config.__doc__ or "", flags=re.M)


def _load_package_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_script", REPO / "scripts" / "package.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package_script = _load_package_script()


def _terraform_env() -> dict[str, str]:
    # No version check against checkpoint-api.hashicorp.com: no network.
    return {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}


@pytest.fixture(scope="module")
def terraform() -> str:
    if TERRAFORM is None:
        pytest.skip("terraform CLI not on PATH: fmt, console and validate checks skipped")
    return TERRAFORM


def _pure_locals_text() -> str:
    """main.tf's and monitoring.tf's locals blocks that use only variables and
    other locals."""
    text = "\n".join((TF / name).read_text(encoding="utf-8")
                     for name in ("main.tf", "monitoring.tf"))
    blocks = re.findall(r"^locals \{\n.*?^\}\n", text, flags=re.M | re.S)
    impure = re.compile(
        r"\bpath\.|\bdata\.|\bterraform_data\.|\b(?:google|random)_[a-z0-9_]+\.")
    pure = [b for b in blocks if not impure.search(re.sub(r"#.*", "", b))]
    assert pure, "main.tf has no variable-only locals block (tests evaluate it)"
    return "\n".join(pure)


@pytest.fixture(scope="module")
def console_dir(terraform: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("tf-console")
    shutil.copy(TF / "variables.tf", work / "variables.tf")
    (work / "locals.tf").write_text(_pure_locals_text(), encoding="utf-8")
    shutil.copy(EXAMPLE_TFVARS, work / "example.tfvars")
    return work


class ConsoleError(Exception):
    """terraform console reported an error (e.g. a failed validation)."""


def _console(terraform: str, directory: Path, expression: str, *args: str) -> Any:
    """Evaluates ``jsonencode(expression)`` with terraform console; returns it decoded."""
    result = subprocess.run(
        [terraform, "console", "-no-color", *args],
        input=f"jsonencode({expression})\n", cwd=directory, env=_terraform_env(),
        capture_output=True, text=True, timeout=60,
    )
    # console exits 0 even when a variable fails validation: read stderr.
    if result.returncode != 0 or "Error:" in result.stderr:
        raise ConsoleError(result.stderr.strip())
    literal = json.loads(result.stdout.strip())  # an HCL string literal
    return json.loads(literal.replace("$${", "${").replace("%%{", "%{"))


RENDERED = {
    "env": "{ http = local.environment_http, worker = local.environment_worker,"
           " sweep = local.environment_sweep }",
    "policy_json": "local.policy_json",
    "surfaces_json": "local.surfaces_json",
    "names": "local.names",
    "project_id": "var.project_id",
    "http_concurrency": "var.http_function.max_instance_request_concurrency",
    "worker_concurrency": "var.worker_function.max_instance_request_concurrency",
    "http_timeout": "var.http_function.timeout_seconds",
    "dashboard": "local.dashboard",
    "failed_filter": "local.failed_filter",
    "trace_functions": "local.trace_exporting_functions",
    "metric_functions": "local.metric_exporting_functions",
}


def _render(terraform: str, directory: Path, *args: str) -> dict[str, Any]:
    expression = "{ " + ", ".join(f"{key} = {value}" for key, value in RENDERED.items()) + " }"
    rendered: dict[str, Any] = _console(terraform, directory, expression,
                                        "-var-file=example.tfvars", *args)
    return rendered


@pytest.fixture(scope="module")
def rendered(terraform: str, console_dir: Path) -> dict[str, Any]:
    """The settings Terraform renders for examples/basic/terraform.tfvars.example."""
    return _render(terraform, console_dir)


# --- files, formatting, versions --------------------------------------------

def test_terraform_files_are_formatted(terraform: str) -> None:
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", "-no-color", str(TF)],
        env=_terraform_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"run `terraform fmt -recursive terraform/`:\n{result.stdout}"


@pytest.mark.parametrize("path", _tf_files(), ids=lambda p: str(p.relative_to(TF)))
def test_every_tf_file_parses(path: Path) -> None:
    assert isinstance(_parse(path), dict)


def test_root_module_is_split_by_concern() -> None:
    expected = {"versions.tf", "variables.tf", "main.tf", "functions.tf", "pubsub.tf",
                "firestore.tf", "iam.tf", "outputs.tf"}
    assert expected <= {p.name for p in TF.glob("*.tf")}


def test_versions_pin_terraform_and_the_providers() -> None:
    settings = _blocks("terraform")
    assert len(settings) == 1
    assert re.fullmatch(r">= 1\.\d+\.\d+, < 2\.0\.0", settings[0]["required_version"])
    providers = settings[0]["required_providers"][0]
    assert providers["google"]["source"] == "hashicorp/google"
    assert providers["archive"]["source"] == "hashicorp/archive"
    for name in ("google", "archive"):
        assert re.fullmatch(r">= \d+\.\d+\.\d+, < \d+\.0\.0", providers[name]["version"]), name
    assert not _blocks("provider"), "the module must not configure providers (examples do)"


def test_variables_are_typed_described_and_alphabetical() -> None:
    for directory in (TF, EXAMPLE):
        variables = _variables(directory)
        assert list(variables) == sorted(variables), f"{directory}: not alphabetical"
        for name, body in variables.items():
            assert body.get("type") and body.get("description"), f"{name}: type and description"


def test_outputs_name_the_api_topic_and_service_accounts() -> None:
    outputs = {n: b for block in _blocks("output") for n, b in block.items()}
    assert {"api_url", "jobs_topic", "service_accounts"} <= set(outputs)
    assert all(body.get("description") for body in outputs.values())
    assert "google_cloudfunctions2_function.http" in outputs["api_url"]["value"]
    accounts = outputs["service_accounts"]["value"]
    assert set(accounts) == {"build", "events", "http", "sweep", "worker"}


# --- resources ----------------------------------------------------------------

@pytest.mark.parametrize("kind, name", [
    ("google_cloudfunctions2_function", "http"),
    ("google_cloudfunctions2_function", "worker"),
    ("google_cloudfunctions2_function", "sweep"),
    ("google_cloud_scheduler_job", "sweep"),
    ("google_pubsub_topic", "jobs"),
    ("google_pubsub_topic", "sweep"),
    ("google_pubsub_topic", "dead_letter"),
    ("google_pubsub_topic", "events"),
    ("google_pubsub_subscription", "dead_letter"),
    ("google_monitoring_dashboard", "operations"),
    ("google_monitoring_alert_policy", "forced_cancels"),
    ("google_monitoring_alert_policy", "failure_rate"),
    ("google_monitoring_metric_descriptor", "alerted"),
    ("terraform_data", "worker_dead_letter"),
    ("google_firestore_database", "default"),
    ("google_firestore_index", "operations"),
    ("google_firestore_field", "expire_time"),
    ("google_service_account", "function"),
    ("google_service_account", "events"),
    ("google_service_account", "build"),
    ("google_storage_bucket", "sources"),
    ("google_storage_bucket_object", "code"),
    ("google_storage_bucket_object", "http"),
    ("google_project_service", "enabled"),
])
def test_resource_is_declared(kind: str, name: str) -> None:
    _resource(kind, name)


@pytest.mark.parametrize("name", list(FUNCTIONS), ids=lambda n: f"{n} function")
def test_function_runs_an_entry_point_of_main_py(name: str) -> None:
    entry_point, signature = FUNCTIONS[name]
    body = _resource("google_cloudfunctions2_function", name)
    assert _one(body, "build_config")["entry_point"] == entry_point
    defined = _main_py_functions()
    assert entry_point in defined, f"main.py defines no top-level {entry_point}()"
    assert f"functions_framework.{signature}" in defined[entry_point], (
        f"main.py's {entry_point} must be decorated @functions_framework.{signature}")
    if signature == "http":
        assert "event_trigger" not in body
    else:
        assert _one(body, "event_trigger")["event_type"] == MESSAGE_PUBLISHED


def test_package_script_checks_the_entry_points_terraform_deploys() -> None:
    deployed = {_one(_resource("google_cloudfunctions2_function", n), "build_config")["entry_point"]
                for n in FUNCTIONS}
    assert set(package_script.ENTRY_POINTS) == deployed


def test_functions_run_the_validated_python_runtime() -> None:
    runtime = _variables()["runtime"]
    assert runtime["default"] == "python311"
    condition = runtime["validation"][0]["condition"]
    assert set(re.findall(r"python3\d+", condition)) == SUPPORTED_RUNTIMES
    for name in FUNCTIONS:
        build = _one(_resource("google_cloudfunctions2_function", name), "build_config")
        assert build["runtime"] == "${var.runtime}"


def test_bundled_code_parses_as_the_oldest_supported_python() -> None:
    oldest = min(SUPPORTED_RUNTIMES)
    version = (3, int(oldest.removeprefix("python3")))
    for name in package_script.bundle_files():
        if name.endswith(".py"):
            ast.parse((REPO / name).read_text(encoding="utf-8"), name, feature_version=version)


def test_worker_is_triggered_by_the_jobs_topic_with_retries() -> None:
    trigger = _one(_resource("google_cloudfunctions2_function", "worker"), "event_trigger")
    assert trigger["pubsub_topic"] == "${google_pubsub_topic.jobs.id}"
    assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
    assert trigger["service_account_email"] == "${google_service_account.events.email}"


def test_scheduler_ticks_the_sweep_topic_that_triggers_the_sweep() -> None:
    trigger = _one(_resource("google_cloudfunctions2_function", "sweep"), "event_trigger")
    assert trigger["pubsub_topic"] == "${google_pubsub_topic.sweep.id}"
    assert trigger["retry_policy"] == "RETRY_POLICY_DO_NOT_RETRY"
    job = _resource("google_cloud_scheduler_job", "sweep")
    assert _one(job, "pubsub_target")["topic_name"] == "${google_pubsub_topic.sweep.id}"
    service = _one(_resource("google_cloudfunctions2_function", "sweep"), "service_config")
    assert service["max_instance_count"] == 1


@pytest.mark.parametrize("name, limit", [("http", 3600), ("worker", 540)])
def test_timeouts_and_instance_limits_come_from_variables(name: str, limit: int) -> None:
    service = _one(_resource("google_cloudfunctions2_function", name), "service_config")
    for key in ("timeout_seconds", "max_instance_count", "min_instance_count",
                "max_instance_request_concurrency"):
        assert service[key] == f"${{var.{name}_function.{key}}}"
    conditions = " ".join(v["condition"] for v in _variables()[f"{name}_function"]["validation"])
    assert f"var.{name}_function.timeout_seconds <= {limit}" in conditions


def test_http_timeout_must_exceed_the_longest_wait() -> None:
    conditions = [v["condition"] for v in _variables()["http_function"]["validation"]]
    assert any("var.http_function.timeout_seconds > var.wait_max_seconds" in c for c in conditions)


def test_each_function_runs_as_its_own_service_account() -> None:
    accounts = set()
    for name in FUNCTIONS:
        body = _resource("google_cloudfunctions2_function", name)
        accounts.add(_one(body, "service_config")["service_account_email"])
        assert _one(body, "build_config")["service_account"] == "${google_service_account.build.id}"
    assert accounts == {f'${{google_service_account.function["{n}"].email}}' for n in FUNCTIONS}
    assert set(json.loads(
        _resource("google_service_account", "function")["for_each"]
        .removeprefix("${toset(").removesuffix(")}"))) == set(FUNCTIONS)


def test_source_objects_are_named_by_the_bundle_hash() -> None:
    for name in ("code", "http"):
        obj = _resource("google_storage_bucket_object", name)
        assert f"data.archive_file.{name}.output_md5" in obj["name"]
        assert obj["source"] == f"${{data.archive_file.{name}.output_path}}"
    http = _one(_resource("google_cloudfunctions2_function", "http"), "build_config")
    assert "google_storage_bucket_object.http.name" in json.dumps(http)
    for name in ("worker", "sweep"):
        build = _one(_resource("google_cloudfunctions2_function", name), "build_config")
        assert "google_storage_bucket_object.code.name" in json.dumps(build)


# --- IAM ----------------------------------------------------------------------

def _iam_resources() -> dict[tuple[str, str], dict[str, Any]]:
    return {key: body for key, body in _resources().items() if "_iam_" in key[0]}


def test_no_basic_role_is_granted_anywhere() -> None:
    for path in _tf_files():
        found = set(re.findall(r"roles/[A-Za-z.]+", path.read_text(encoding="utf-8")))
        assert not found & BASIC_ROLES, f"{path.name} grants {found & BASIC_ROLES}"
    assert not {body["role"] for body in _iam_resources().values()} & BASIC_ROLES


def test_iam_grants_are_exactly_the_reviewed_ones() -> None:
    iam = _iam_resources()
    authoritative = [key for key in iam if key[0].endswith(("_iam_policy", "_iam_binding"))]
    assert not authoritative, f"authoritative IAM would remove others' grants: {authoritative}"
    assert {key: body["role"] for key, body in iam.items()} == EXPECTED_GRANTS
    project_roles = {body["role"] for key, body in iam.items()
                     if key[0] == "google_project_iam_member"}
    assert project_roles <= PROJECT_ROLES


def test_gcloud_step_grants_only_the_dead_letter_subscriber_role() -> None:
    command = _one(_resource("terraform_data", "worker_dead_letter"), "provisioner")
    text = json.dumps(command)
    assert set(re.findall(r"--role=\\?\"?(roles/[A-Za-z.]+)", text)) == EXPECTED_GCLOUD_ROLES
    for flag in ("--dead-letter-topic", "--max-delivery-attempts"):
        assert flag in text


def test_invokers_are_scoped_to_the_functions() -> None:
    events = _resource("google_cloud_run_service_iam_member", "events_invoker")
    assert events["member"] == "serviceAccount:${google_service_account.events.email}"
    assert events["for_each"] == {"sweep": "${google_cloudfunctions2_function.sweep}",
                                  "worker": "${google_cloudfunctions2_function.worker}"}
    http = _resource("google_cloud_run_service_iam_member", "http_invoker")
    assert http["service"] == "${google_cloudfunctions2_function.http.name}"
    assert "allUsers" in http["member"] and "var.api_gateway_service_account" in http["member"]


def test_runtime_accounts_publish_to_the_jobs_topic_only() -> None:
    grant = _resource("google_pubsub_topic_iam_member", "function_jobs_publisher")
    assert grant["topic"] == "${google_pubsub_topic.jobs.name}"
    assert grant["for_each"] == "${google_service_account.function}"


# --- Firestore ------------------------------------------------------------------

def _declared_indexes() -> dict[str, list[tuple[str, str]]]:
    declared = _locals()["firestore_indexes"]
    return {name: [(f["field"], f["order"]) for f in fields] for name, fields in declared.items()}


@pytest.mark.parametrize("query", list(REQUIRED_INDEXES))
def test_a_composite_index_serves_the_query(query: str) -> None:
    required = REQUIRED_INDEXES[query]
    candidates = [fields for fields in _declared_indexes().values()
                  if fields[: len(required)] == required
                  and all(f == "__name__" for f, _ in fields[len(required):])]
    assert candidates, f"no index starts with {required}"


def test_list_indexes_order_names_newest_first() -> None:
    for name, fields in _declared_indexes().items():
        if name.startswith("list"):
            assert fields[-1] == ("__name__", "DESCENDING"), name


def test_indexes_and_ttl_are_on_the_configured_collection() -> None:
    index = _resource("google_firestore_index", "operations")
    assert index["for_each"] == "${local.firestore_indexes}"
    assert index["collection"] == "${var.collection}"
    ttl = _resource("google_firestore_field", "expire_time")
    assert ttl["field"] == "expireTime" and ttl["collection"] == "${var.collection}"
    assert "ttl_config" in ttl
    database = _resource("google_firestore_database", "default")
    assert database["name"] == "(default)" and database["type"] == "FIRESTORE_NATIVE"
    # No lock outlives a worker that dies inside a transaction.
    assert database["concurrency_mode"] == "OPTIMISTIC"


def test_create_request_ids_expire_by_ttl_next_to_the_operations() -> None:
    from lib.core.store import REQUESTS_SUFFIX

    ttl = _resource("google_firestore_field", "request_id_expire_time")
    assert ttl["collection"] == "${var.collection}" + REQUESTS_SUFFIX
    assert ttl["field"] == "expireTime" and "ttl_config" in ttl


def test_cancel_inbox_entries_expire_by_ttl_on_the_store_s_collection_group() -> None:
    from lib.core.store import INBOX_SUFFIX

    ttl = _resource("google_firestore_field", "cancel_inbox_expire_time")
    assert ttl["collection"] == "${var.collection}" + INBOX_SUFFIX
    assert ttl["field"] == "expireTime" and "ttl_config" in ttl


# --- Pub/Sub ------------------------------------------------------------------

def test_dead_letter_topic_keeps_failed_jobs_and_the_agent_may_publish_to_it() -> None:
    subscription = _resource("google_pubsub_subscription", "dead_letter")
    assert subscription["topic"] == "${google_pubsub_topic.dead_letter.id}"
    publisher = _resource("google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert publisher["topic"] == "${google_pubsub_topic.dead_letter.name}"
    assert publisher["member"] == "serviceAccount:${local.pubsub_service_agent}"
    step = _resource("terraform_data", "worker_dead_letter")
    assert "google_cloudfunctions2_function.worker.event_trigger[0].trigger" in json.dumps(step)


# --- settings: what the code reads vs what Terraform sets ----------------------

def test_config_docstring_lists_every_variable_config_reads() -> None:
    source = (REPO / "lib" / "core" / "config.py").read_text(encoding="utf-8")
    read = set(re.findall(r'(?:env\.get\(|\(\s*env,\s*)"([A-Z][A-Z0-9_]+)"', source))
    assert read, "found no env.get(...) in lib/core/config.py"
    assert set(_config_docstring_variables()) == read


def test_every_setting_is_set_by_terraform_or_left_at_its_default(
    rendered: dict[str, Any],
) -> None:
    set_somewhere = set().union(*(env.keys() for env in rendered["env"].values()))
    for variable in _config_docstring_variables():
        assert variable in set_somewhere or variable in LEFT_AT_DEFAULT, (
            f"lib/core/config.py reads {variable}: set it in terraform/main.tf (environment_*) "
            f"or list it in LEFT_AT_DEFAULT with the reason")


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_cloud_critical_settings_are_explicit(rendered: dict[str, Any], function: str) -> None:
    env = rendered["env"][function]
    assert set(env) >= EXPLICIT_EVERYWHERE
    assert env["GOOGLE_CLOUD_PROJECT"] == rendered["project_id"]
    assert env["OPERATIONS_TOPIC"] == rendered["names"]["jobs_topic"]


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_rendered_environment_is_accepted_by_settings(
    rendered: dict[str, Any], function: str,
) -> None:
    from lib.core.config import Settings

    settings = Settings.from_env(rendered["env"][function])
    assert settings.project == "my-project"
    assert settings.topic == "operations-jobs" and settings.collection == "operations"
    if function == "http":
        assert settings.policy_file == "/workspace/policy.json"
        assert [(i.issuer, i.audience) for i in settings.issuers] == [
            ("ci-runner@my-project.iam.gserviceaccount.com", "https://operations.example.com/")]
        assert settings.tokeninfo_url == "https://oauth2.googleapis.com/tokeninfo"
        assert settings.wait_max_seconds < rendered["http_timeout"]
        assert settings.trust_forwarded_authorization is False


def test_threads_match_each_functions_request_concurrency(rendered: dict[str, Any]) -> None:
    env = rendered["env"]
    assert env["http"]["THREADS"] == str(rendered["http_concurrency"])
    assert env["worker"]["THREADS"] == str(rendered["worker_concurrency"])
    assert env["sweep"]["THREADS"] == "1"
    assert {e["WORKERS"] for e in env.values()} == {"1"}
    service = _one(_resource("google_cloudfunctions2_function", "http"), "service_config")
    assert service["max_instance_request_concurrency"] == (
        "${var.http_function.max_instance_request_concurrency}")
    for name in FUNCTIONS:
        service = _one(_resource("google_cloudfunctions2_function", name), "service_config")
        assert service["environment_variables"] == f"${{local.environment_{name}}}"


def test_page_tokens_are_signed_with_a_generated_secret_unless_one_is_given(
    rendered: dict[str, Any],
) -> None:
    assert int(_resource("random_password", "page_token_secret")["length"]) >= 32
    version = _resource("google_secret_manager_secret_version", "page_token")
    assert version["secret"] == "${google_secret_manager_secret.page_token.id}"
    assert version["secret_data"] == (
        "${coalesce(var.page_token_secret, random_password.page_token_secret.result)}")
    # The HTTP function gets it mounted, pinned to that version; no function
    # has it in its plain environment (visible to anyone who can read the
    # function's configuration).
    service = _one(_resource("google_cloudfunctions2_function", "http"), "service_config")
    assert _one(service, "secret_environment_variables") == {
        "key": "PAGE_TOKEN_SECRET", "project_id": "${var.project_id}",
        "secret": "${google_secret_manager_secret.page_token.secret_id}",
        "version": "${google_secret_manager_secret_version.page_token.version}"}
    assert not any("PAGE_TOKEN_SECRET" in env for env in rendered["env"].values())
    grant = _resource("google_secret_manager_secret_iam_member", "http_page_token")
    assert grant["secret_id"] == "${google_secret_manager_secret.page_token.secret_id}"
    assert grant["member"] == 'serviceAccount:${google_service_account.function["http"].email}'


def test_rendered_policy_is_accepted_by_the_code(rendered: dict[str, Any]) -> None:
    from lib.edge.policy import Policy

    data = json.loads(rendered["policy_json"])
    assert all(None not in binding.values() for binding in data["bindings"])
    Policy.from_dict(data)


def test_surfaces_variable_renders_a_route_table_the_code_accepts(
    terraform: str, console_dir: Path,
) -> None:
    from lib.edge.routes import DEFAULT_SURFACES, RouteTable

    out = _render(terraform, console_dir, f"-var=surfaces={json.dumps(DEFAULT_SURFACES)}")
    rendered = json.loads(out["surfaces_json"])
    # Terraform's optional attributes render as null where a route leaves them out.
    for spec in rendered.values():
        spec["routes"] = [{k: v for k, v in route.items() if v is not None}
                          for route in spec["routes"]]
    assert rendered == DEFAULT_SURFACES
    table = RouteTable.from_surfaces(json.loads(out["surfaces_json"]))
    assert table.match("POST", "/v1/jobs").operation_template() == "operations/{id}"
    assert out["env"]["http"]["OPERATIONS_SURFACES_FILE"] == "/workspace/surfaces.json"


def test_gateway_mode_trusts_the_forwarded_token(terraform: str, console_dir: Path) -> None:
    from lib.core.config import Settings

    out = _render(terraform, console_dir,
                  "-var=api_gateway_service_account=gateway@my-project.iam.gserviceaccount.com")
    assert Settings.from_env(out["env"]["http"]).trust_forwarded_authorization is True


def test_null_tokeninfo_url_disables_opaque_tokens(
    terraform: str, console_dir: Path, tmp_path: Path,
) -> None:
    from lib.core.config import Settings

    # -var=x=null would be the string "null" for a string variable.
    (tmp_path / "null.tfvars").write_text("tokeninfo_url = null\n", encoding="utf-8")
    out = _render(terraform, console_dir, f"-var-file={tmp_path / 'null.tfvars'}")
    assert Settings.from_env(out["env"]["http"]).tokeninfo_url is None


@pytest.mark.parametrize("override, message", [
    ("runtime=python39", "runtime must be python311, python312 or python313"),
    ("wait_max_seconds=300", "must exceed wait_max_seconds"),
    ("http_function={max_instance_request_concurrency=8, available_cpu=\"0.5\"}",
     "available_cpu must be at least 1"),
    ("worker_function={timeout_seconds=600}", "from 1 to 540"),
    ("heartbeat_seconds=60", "less than lease_seconds"),
    ("name=operations-service-with-a-long-name", "name must be 1 to 23"),
    ('issuers={"x"={keys="http://example.com/jwks",audience="https://api"}}', "https:// URL"),
    ('issuers={"https://iss.example"={keys="https://example.com/jwks"}}',
     "Each issuer needs an audience"),
    ('issuers={"b"={keys="https://e.com/j",audience="https://api"},'
     '"a"={keys="https://e.com/j",audience=" "}}', "Missing for: a."),
    ('policy={bindings=[{members=["user:a@example.com"],resources=["**"],'
     'role="roles/operations.editor",permissions=["jobs.create"]}]}',
     "exactly one of role or permissions"),
    ('policy={bindings=[{members=["user:a@example.com"],resources=["**"],'
     'role="roles/owner"}]}', "roles/operations.viewer or roles/operations.editor"),
    ('policy={bindings=[{members=["alice@example.com"],resources=["**"],'
     'role="roles/operations.viewer"}]}', "Members must be"),
    ("api_gateway_service_account=gateway", "service account email"),
    ("alert_failure_rate_threshold=1.5", "above 0 and at most 1"),
    ("alert_forced_cancels_threshold=-1", "0 or more"),
    ("alert_window_seconds=90", "whole number of minutes"),
    ('alert_notification_channels=["email-me"]', "notificationChannels"),
    ("trace_sample_ratio=2", "trace_sample_ratio must be from 0 to 1"),
], ids=[
    "an unsupported runtime is refused",
    "an HTTP timeout not above the longest wait is refused",
    "request concurrency without a full CPU is refused",
    "a worker timeout above the event-function limit is refused",
    "a heartbeat not shorter than the lease is refused",
    "a name too long for service account ids is refused",
    "an issuer whose keys are not https is refused",
    "an issuer without an audience is refused",
    "an issuer with a blank audience is refused, named",
    "a binding with both role and permissions is refused",
    "a binding with a non-operations role is refused",
    "a member without a type prefix is refused",
    "a gateway account that is not an email is refused",
    "a failure-rate threshold above 1 is refused",
    "a negative forced-cancel threshold is refused",
    "an alert window that is not whole minutes is refused",
    "a notification channel that is not a channel id is refused",
    "a trace sample ratio above 1 is refused",
])
def test_variable_validation_refuses(
    terraform: str, console_dir: Path, override: str, message: str,
) -> None:
    with pytest.raises(ConsoleError) as refused:
        _console(terraform, console_dir, "var.project_id", "-var-file=example.tfvars",
                 f"-var={override}")
    assert message in " ".join(str(refused.value).split())


# --- examples -----------------------------------------------------------------

def test_example_tfvars_sets_only_variables_both_roots_declare() -> None:
    values = hcl2.loads(EXAMPLE_TFVARS.read_text(encoding="utf-8"),
                        serialization_options=_HCL_OPTIONS)
    assert set(values) <= set(_variables(TF)) and set(values) <= set(_variables(EXAMPLE))
    required = {n for n, b in _variables(EXAMPLE).items() if "default" not in b}
    assert required <= set(values)


def test_example_passes_its_variables_to_the_module() -> None:
    module = _blocks("module", EXAMPLE)[0]["operations"]
    assert module["source"] == "../.."
    assert {k for k in module if k != "source"} == set(_variables(EXAMPLE))
    assert set(_variables(EXAMPLE)) <= set(_variables(TF))
    assert _blocks("provider", EXAMPLE), "the example root configures the google provider"


# --- the source bundle ------------------------------------------------------------

def test_terraform_and_package_script_bundle_the_same_files(
    terraform: str, tmp_path: Path,
) -> None:
    expression = _locals()["bundle_files"]
    assert expression.startswith("${") and expression.endswith("}")
    (tmp_path / "bundle.tf").write_text(
        "locals {\n"
        f"  repo_root    = {json.dumps(str(REPO))}\n"
        f"  bundle       = jsondecode(file({json.dumps(str(TF / 'bundle.json'))}))\n"
        f"  bundle_files = {expression[2:-1]}\n"
        "}\n", encoding="utf-8")
    assert _console(terraform, tmp_path, "local.bundle_files") == package_script.bundle_files()


def test_package_script_globs_like_terraform_fileset(terraform: str, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for name in ["main.py", "main_test.py", "requirements.txt", "lib/a.py", "lib/b.json",
                 "lib/sub/c.py", "lib/sub/test_c.py", "lib/sub/deeper/d.py", "lib/.e.py",
                 "libx/f.py", "tests/g.py", "conftest.py", "lib/conftest.py"]:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("", encoding="utf-8")
    manifest = tmp_path / "bundle.json"
    manifest.write_text(json.dumps({
        "include": ["main.py", "requirements.txt", "lib/**/*.py", "lib/*.json", "lib/su?/*.py"],
        "exclude": ["**/conftest.py", "lib/**/test_*.py", "lib/sub/deeper/**"],
    }), encoding="utf-8")
    (tmp_path / "bundle.tf").write_text(
        "locals {\n"
        f"  repo_root    = {json.dumps(str(tree))}\n"
        f"  bundle       = jsondecode(file({json.dumps(str(manifest))}))\n"
        f"  bundle_files = {_locals()['bundle_files'][2:-1]}\n"
        "}\n", encoding="utf-8")
    expected = _console(terraform, tmp_path, "local.bundle_files")
    assert package_script.bundle_files(tree, manifest) == expected
    assert "lib/sub/c.py" in expected and "lib/sub/deeper/d.py" not in expected


def test_bundle_holds_the_runtime_and_nothing_dev_only() -> None:
    files = package_script.bundle_files()
    assert {"main.py", "requirements.txt", "lib/__init__.py", "lib/core/config.py"} <= set(files)
    for name in files:
        assert name in ("main.py", "requirements.txt") or name.startswith("lib/"), name
        assert Path(name).name not in ("devtoken.py", "localstack.py", "conftest.py"), name
        assert not Path(name).name.startswith("test_"), name


def test_every_file_under_lib_is_bundled_or_excluded_on_purpose() -> None:
    files = set(package_script.bundle_files())
    _, exclude = package_script.read_manifest()
    patterns = [package_script.pattern_regex(p) for p in exclude]
    for path in sorted((REPO / "lib").rglob("*")):
        relative = path.relative_to(REPO).as_posix()
        if path.is_dir() or "__pycache__" in path.parts:
            continue
        assert relative in files or any(p.fullmatch(relative) for p in patterns), (
            f"{relative} is neither bundled nor excluded: decide in terraform/bundle.json")


def test_bundled_code_imports_only_bundled_lib_modules() -> None:
    files = set(package_script.bundle_files())
    for name in files:
        if not name.endswith(".py"):
            continue
        tree = ast.parse((REPO / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for module in modules:
                if module != "lib" and not module.startswith("lib."):
                    continue
                path = module.replace(".", "/")
                candidates = {f"{path}.py", f"{path}/__init__.py"}
                is_module = any((REPO / c).exists() for c in candidates)
                assert not is_module or candidates & files, (
                    f"{name} imports {module}, which the bundle leaves out")


# --- terraform validate (only with providers already on disk) -------------------

def _local_plugin_dir() -> Path | None:
    candidates = [
        TF / ".terraform" / "providers",
        Path(os.environ["TF_PLUGIN_CACHE_DIR"]) if os.environ.get("TF_PLUGIN_CACHE_DIR") else None,
        Path.home() / ".terraform.d" / "plugins",
        Path.home() / ".local" / "share" / "terraform" / "plugins",
        Path("/usr/local/share/terraform/plugins"),
        Path("/usr/share/terraform/plugins"),
    ]
    for directory in candidates:
        providers = directory / "registry.terraform.io" / "hashicorp" if directory else None
        if providers and (providers / "google").is_dir() and (providers / "archive").is_dir():
            return directory
    return None


@pytest.mark.parametrize("root", [".", "examples/basic"])
def test_terraform_validate(terraform: str, tmp_path: Path, root: str) -> None:
    plugins = _local_plugin_dir()
    if plugins is None:
        pytest.skip("hashicorp/google and hashicorp/archive providers are not on disk "
                    "(no network here): run `terraform -chdir=terraform init -backend=false` "
                    "once to enable `terraform validate`")
    copy = tmp_path / "terraform"
    shutil.copytree(TF, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    directory = copy / root
    for command in (["init", "-backend=false", "-input=false", f"-plugin-dir={plugins}"],
                    ["validate"]):
        result = subprocess.run([terraform, *command, "-no-color"], cwd=directory,
                                env=_terraform_env(), capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"terraform {command[0]}:\n{result.stdout}{result.stderr}"


# --- scripts/package.py's import check ------------------------------------------

@pytest.mark.parametrize("main_py, outcome", [
    ("def operations_http(r): pass\ndef operations_worker(e): pass\n"
     "def operations_sweep(e): pass\n", {"missing": []}),
    ("def operations_http(r): pass\n", {"missing": ["operations_worker", "operations_sweep"]}),
    ("import socket\nsocket.create_connection(('example.com', 443))\n", "NetworkAtImport"),
    ("import urllib.request\nurllib.request.urlopen('http://169.254.169.254/')\n",
     "NetworkAtImport"),
], ids=[
    "a main with every entry point passes",
    "missing entry points are reported",
    "a socket opened at import time is refused",
    "an HTTP call at import time is refused",
])
def test_import_check_refuses_network_and_reports_entry_points(
    tmp_path: Path, main_py: str, outcome: Any,
) -> None:
    (tmp_path / "main.py").write_text(main_py, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", package_script._IMPORT_CHECK, *package_script.ENTRY_POINTS],
        cwd=tmp_path, env={"PATH": os.defpath, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True, text=True, timeout=60,
    )
    if isinstance(outcome, dict):
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1]) == outcome
    else:
        assert result.returncode != 0 and outcome in result.stderr


# --- telemetry and lifecycle events -------------------------------------------

def _instrument_names() -> set[str]:
    source = (REPO / "lib" / "core" / "telemetry.py").read_text(encoding="utf-8")
    return set(re.findall(r'create_[a-z_]+\(\s*"(operations\.[a-z_.]+)"', source))


def test_events_topic_exists_and_every_function_may_publish_to_it_and_is_told_its_name(
    rendered: dict[str, Any],
) -> None:
    topic = _resource("google_pubsub_topic", "events")
    assert topic["name"] == "${local.names.events_topic}"
    grant = _resource("google_pubsub_topic_iam_member", "function_events_publisher")
    assert grant["topic"] == "${google_pubsub_topic.events.name}"
    assert grant["for_each"] == "${google_service_account.function}"
    for env in rendered["env"].values():
        assert env["OPERATIONS_EVENTS_TOPIC"] == rendered["names"]["events_topic"]
    assert rendered["names"]["events_topic"] != rendered["names"]["jobs_topic"]


@pytest.mark.parametrize("function", list(FUNCTIONS))
def test_each_function_exports_exactly_what_its_account_may_write(
    rendered: dict[str, Any], function: str,
) -> None:
    from lib.core import otel_setup
    env = rendered["env"][function]
    chosen = otel_setup.exporters_from_env(env)
    assert chosen.traces == (("gcp_trace",) if function in rendered["trace_functions"] else ())
    assert chosen.metrics == (
        ("gcp_monitoring",) if function in rendered["metric_functions"] else ())
    assert env["OTEL_SERVICE_NAME"] == rendered["names"][function]
    assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert 0 <= float(env["OTEL_TRACES_SAMPLER_ARG"]) <= 1


def test_trace_and_metric_writers_are_granted_by_the_exporting_lists() -> None:
    trace = _resource("google_project_iam_member", "function_trace_agent")
    metric = _resource("google_project_iam_member", "function_metric_writer")
    assert trace["for_each"] == "${toset(local.trace_exporting_functions)}"
    assert metric["for_each"] == "${toset(local.metric_exporting_functions)}"
    for grant in (trace, metric):
        assert grant["member"] == (
            "serviceAccount:${google_service_account.function[each.key].email}")


def test_least_privilege_the_sweep_exports_no_spans(rendered: dict[str, Any]) -> None:
    # It writes no span a user follows; without the exporter it needs no role.
    assert "sweep" not in rendered["trace_functions"]
    assert rendered["env"]["sweep"]["OTEL_TRACES_EXPORTER"] == "none"
    assert set(rendered["trace_functions"]) == {"http", "worker"}


def _charts(rendered: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    tiles = rendered["dashboard"]["mosaicLayout"]["tiles"]
    return {tile["widget"]["title"]: [
        {"filter": d["timeSeriesQuery"]["timeSeriesFilter"]["filter"],
         **d["timeSeriesQuery"]["timeSeriesFilter"]["aggregation"]}
        for d in tile["widget"]["xyChart"]["dataSets"]] for tile in tiles}


def _lines_of(charts: dict[str, list[dict[str, Any]]], metric: str) -> list[dict[str, Any]]:
    return [line for lines in charts.values() for line in lines
            if f'metric.type="{metric}"' in line["filter"]]


@pytest.mark.parametrize("metric, reducers, group_by", [
    ("operations.created", {"REDUCE_SUM"}, []),
    ("operations.ended", {"REDUCE_SUM"}, ["metric.label.code"]),
    ("operations.running", {"REDUCE_SUM"}, []),
    ("operations.cancel.ack_latency", {"REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_99"}, []),
    ("operations.queue_latency", {"REDUCE_PERCENTILE_50", "REDUCE_PERCENTILE_99"}, []),
    ("operations.cancel.forced", {"REDUCE_SUM"}, []),
], ids=["created", "ended by code", "running now", "cancel ack latency p50 and p99",
        "queue latency", "forced cancels"])
def test_the_dashboard_charts(rendered: dict[str, Any], metric: str, reducers: set[str],
                              group_by: list[str]) -> None:
    assert metric in _instrument_names(), f"lib/core/telemetry.py records no {metric}"
    lines = _lines_of(_charts(rendered), f"workload.googleapis.com/{metric}")
    assert {line["crossSeriesReducer"] for line in lines} == reducers
    assert all(line["groupByFields"] == group_by for line in lines)


def test_the_dashboard_charts_the_http_functions_5xx_rate(rendered: dict[str, Any]) -> None:
    lines = _lines_of(_charts(rendered), "run.googleapis.com/request_count")
    assert len(lines) == 1
    assert f'resource.label.service_name="{rendered["names"]["http"]}"' in lines[0]["filter"]
    assert 'metric.label.response_code_class="5xx"' in lines[0]["filter"]
    assert lines[0]["perSeriesAligner"] == "ALIGN_RATE"


def test_every_charted_operations_metric_is_one_the_code_records(
    rendered: dict[str, Any],
) -> None:
    charted = set(re.findall(r'workload\.googleapis\.com/(operations\.[a-z_.]+)"',
                             json.dumps(rendered["dashboard"]).replace('\\"', '"')))
    assert charted and charted <= _instrument_names()


def test_alert_policies_use_the_threshold_variables() -> None:
    forced = _one(_one(_resource("google_monitoring_alert_policy", "forced_cancels"),
                       "conditions"), "condition_threshold")
    assert forced["filter"] == '${local.metric_filter["cancel.forced"]}'
    assert forced["threshold_value"] == "${var.alert_forced_cancels_threshold}"
    assert forced["comparison"] == "COMPARISON_GT"
    failure = _one(_one(_resource("google_monitoring_alert_policy", "failure_rate"),
                        "conditions"), "condition_threshold")
    assert failure["threshold_value"] == "${var.alert_failure_rate_threshold}"
    assert failure["filter"] == "${local.failed_filter}"
    assert failure["denominator_filter"] == '${local.metric_filter["ended"]}'
    for name in ("forced_cancels", "failure_rate"):
        policy = _resource("google_monitoring_alert_policy", name)
        assert policy["notification_channels"] == "${var.alert_notification_channels}"
        condition = _one(_one(policy, "conditions"), "condition_threshold")
        assert _one(condition, "aggregations")["alignment_period"] == (
            "${var.alert_window_seconds}s")
        assert policy["depends_on"] == ["${google_monitoring_metric_descriptor.alerted}"]


def test_the_failure_rate_counts_neither_successes_nor_cancels(rendered: dict[str, Any]) -> None:
    assert rendered["failed_filter"] == (
        'metric.type="workload.googleapis.com/operations.ended" '
        'AND NOT metric.label.code = one_of("0", "1")')


def test_alert_thresholds_are_validated_variables() -> None:
    variables = _variables()
    for name in ("alert_failure_rate_threshold", "alert_forced_cancels_threshold",
                 "alert_notification_channels", "alert_window_seconds", "trace_sample_ratio"):
        assert variables[name].get("validation"), f"{name} has no validation block"
