"""GPU metrics on jupyter-server's /metrics: base units, labels, DCGM names, no NVML per scrape."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY
from tornado.httpclient import HTTPClientError

from gpu_devbox.gpus import NvmlAdapter, Sampler, SamplerConfig, VisibleDevices
from gpu_devbox.server.base import AUTH_RESOURCE
from gpu_devbox.server.prometheus import GpuCollector, register
from tests.conftest import Fetch
from tests.fakenvml import CAPTURE, FakeNVML


def samples(text: str) -> dict[str, list[Any]]:
    """Metric name -> its samples, parsed with prometheus_client's own parser."""
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


async def scrape(jp_fetch: Fetch) -> dict[str, list[Any]]:
    response = await jp_fetch("metrics")
    return samples(response.body.decode())


async def test_gpu_metrics_are_on_the_servers_metrics_endpoint(
    jp_fetch: Fetch, fake_nvml: FakeNVML
) -> None:
    await jp_fetch("gpu-devbox", "api", "gpus")  # the first sample exists
    metrics = await scrape(jp_fetch)
    used = metrics["gpu_devbox_memory_reserved_bytes"]
    assert [s.labels["gpu"] for s in used] == ["0", "1"]
    assert used[0].labels["model"] == "NVIDIA H100 80GB HBM3"
    assert used[0].labels["uuid"].startswith("GPU-")
    assert used[0].value == CAPTURE["idle"]["mem_v2"]["reserved"]
    assert metrics["gpu_devbox_power_watts"][0].value == pytest.approx(98.829)
    assert metrics["gpu_devbox_sm_clock_hertz"][0].value == 345e6
    assert metrics["gpu_devbox_utilization_ratio"][0].value == 0.0
    assert metrics["gpu_devbox_nvml_up"][0].value == 1.0
    info = metrics["gpu_devbox_info"][0].labels
    assert info["driver_version"] == "580.159.04"
    assert info["cuda_driver_version"] == "13.0"
    assert "DCGM_FI_DEV_FB_USED" not in metrics  # aliases are opt-in


async def test_a_scrape_never_calls_nvml(jp_fetch: Fetch, fake_nvml: FakeNVML) -> None:
    # A stopped sampler would still be scraped from its cache: use a collector directly.
    sampler = Sampler(
        NvmlAdapter(lambda: fake_nvml),
        visible=VisibleDevices.from_env({}),
        config=SamplerConfig(interval=60, slow_interval=60),
    )
    sampler.tick()
    before = fake_nvml.nvml_calls
    collector = GpuCollector(sampler, prefix="probe")
    for _ in range(50):
        list(collector.collect())
    assert fake_nvml.nvml_calls == before


class TestDcgmNames:
    @pytest.fixture
    def gpu_devbox_config(self, gpu_devbox_config: dict[str, Any]) -> dict[str, Any]:
        return {**gpu_devbox_config, "prometheus_dcgm_names": True}

    @pytest.fixture
    def fake_nvml(self, fake_nvml: FakeNVML) -> FakeNVML:
        fake_nvml.state = "loaded"
        return fake_nvml

    async def test_dcgm_exporter_names_and_units(self, jp_fetch: Fetch) -> None:
        await jp_fetch("gpu-devbox", "api", "gpus")
        metrics = await scrape(jp_fetch)
        fb = metrics["DCGM_FI_DEV_FB_USED"][0]
        assert fb.value == pytest.approx(925_696_000 / 2**20)  # MiB, as dcgm-exporter
        assert set(fb.labels) == {"gpu", "UUID", "device", "modelName", "Hostname"}
        assert fb.labels["device"] == "nvidia0"
        assert metrics["DCGM_FI_DEV_GPU_UTIL"][0].value == 100
        assert metrics["DCGM_FI_DEV_GPU_TEMP"][0].value == 54
        assert metrics["DCGM_FI_DEV_POWER_USAGE"][0].value == pytest.approx(696.327)
        assert metrics["DCGM_FI_DEV_SM_CLOCK"][0].value == 1380
        assert metrics["DCGM_FI_DEV_MEM_CLOCK"][0].value == 2619


class TestNoGpu:
    @pytest.fixture
    def fake_nvml(self, fake_nvml: FakeNVML) -> FakeNVML:
        fake_nvml.init_error = 12  # NVML_ERROR_LIBRARY_NOT_FOUND
        return fake_nvml

    async def test_nvml_down_is_visible_and_gpu_series_are_absent(self, jp_fetch: Fetch) -> None:
        await jp_fetch("gpu-devbox", "api", "gpus")
        metrics = await scrape(jp_fetch)
        assert metrics["gpu_devbox_nvml_up"][0].value == 0.0
        assert "gpu_devbox_memory_used_bytes" not in metrics


def test_unregister_removes_the_collector() -> None:
    sampler = Sampler(NvmlAdapter(FakeNVML), config=SamplerConfig())
    collector = GpuCollector(sampler, prefix="probe_unregister")
    unregister = register(collector)
    assert collector in REGISTRY._collector_to_names
    unregister()
    unregister()  # idempotent
    assert collector not in REGISTRY._collector_to_names


def test_an_invalid_prefix_is_refused() -> None:
    sampler = Sampler(NvmlAdapter(FakeNVML), config=SamplerConfig())
    with pytest.raises(ValueError, match="not a valid Prometheus metric name prefix"):
        GpuCollector(sampler, prefix="gpu-devbox")


class DenyGpuDevbox(Authorizer):
    """An authorizer that refuses the gpu-devbox resources and allows everything else."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not resource.startswith(AUTH_RESOURCE)


class TestMetricsPermission:
    """A user the authorizer refuses ``gpu-devbox`` scrapes no GPU series (issue 10, item 15)."""

    @pytest.fixture
    def gpu_devbox_config(self, gpu_devbox_config: dict[str, Any]) -> dict[str, Any]:
        return {**gpu_devbox_config, "prometheus_dcgm_names": True}

    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        jp_server_config["ServerApp"]["authorizer_class"] = DenyGpuDevbox
        return jp_server_config

    async def test_a_refused_user_gets_the_servers_metrics_but_no_gpu_series(
        self, jp_fetch: Fetch, jp_serverapp: Any
    ) -> None:
        jp_serverapp.web_app.settings["gpu_devbox"].sampler.wait_ready(5)
        response = await jp_fetch("metrics")
        assert response.code == 200
        text = response.body.decode()
        metrics = samples(text)
        assert [name for name in metrics if name.startswith(("gpu_devbox", "DCGM_"))] == []
        assert "DCGM_FI_DEV" not in text
        # the rest of /metrics is served (this series is in every jupyter-server since 2.13)
        assert "http_request_duration_seconds_bucket" in metrics

    async def test_no_token_no_metrics(self, jp_fetch: Fetch) -> None:
        with pytest.raises(HTTPClientError) as caught:
            await jp_fetch("metrics", headers={"Authorization": ""})
        assert caught.value.code == 403


async def test_an_authorized_scrape_with_a_token_gets_the_gpu_series(
    jp_fetch: Fetch, jp_serverapp: Any, jp_auth_header: dict[str, str]
) -> None:
    # As Prometheus scrapes with `authorization: {type: token, credentials: ...}`.
    jp_serverapp.web_app.settings["gpu_devbox"].sampler.wait_ready(5)
    response = await jp_fetch("metrics", headers=jp_auth_header)
    assert response.headers["Content-Type"].startswith("text/plain")
    metrics = samples(response.body.decode())
    assert len(metrics["gpu_devbox_memory_total_bytes"]) == 2


class TestAnonymousMetrics:
    """With ``authenticate_prometheus = False`` the administrator publishes /metrics to anyone."""

    @pytest.fixture
    def jp_server_config(self, jp_server_config: dict[str, Any]) -> dict[str, Any]:
        jp_server_config["ServerApp"]["authenticate_prometheus"] = False
        jp_server_config["ServerApp"]["authorizer_class"] = DenyGpuDevbox
        return jp_server_config

    async def test_an_anonymous_scrape_gets_the_gpu_series(
        self, jp_fetch: Fetch, jp_serverapp: Any
    ) -> None:
        jp_serverapp.web_app.settings["gpu_devbox"].sampler.wait_ready(5)
        response = await jp_fetch("metrics", headers={"Authorization": ""})
        assert "gpu_devbox_memory_total_bytes" in response.body.decode()
