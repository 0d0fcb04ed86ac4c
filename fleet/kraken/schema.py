"""Kraken's configuration structure, written down from its Go config structs.

Kraken loads each component's YAML with `gopkg.in/yaml.v2`'s plain `Unmarshal`
(uber/kraken `utils/configutil/config.go`, `loadFiles`), which silently ignores keys no struct
field names: a misspelt `bandwith:` leaves the agent unthrottled and nobody is told. This module is
the struct tree, so a rendered config can be checked key by key before anything runs.

Every struct below names the file of uber/kraken (commit 2a7fbcb7, `git show HEAD:<file>`) whose
`yaml:"..."` tags it copies. Go's yaml.v2 lower-cases a field without a tag (`Volume.Location` ->
`location`). Structs from outside Kraken are either written out too (zap's logging config, which
every base.yaml sets) or left open (`ANY`: docker distribution's registry configuration, backend
auth maps), because their key sets are theirs to change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

# Go time.Duration as yaml.v2 decodes it from a string (time.ParseDuration), or a bare integer (ns).
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$")
# datasize.ByteSize (github.com/c2h5oh/datasize): "50G", "100MB", "4MB", or a plain number of bytes.
_BYTESIZE = re.compile(r"^\d+(\.\d+)?\s*([KMGTPE]i?B?|B)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Scalar:
    """A leaf: `kind` is str, int, bool, duration or bytesize."""

    kind: str

    def problem(self, value: Any) -> str | None:
        """Why `value` would not decode into this Go type, or None."""
        if self.kind == "str":
            return None if isinstance(value, str | int | float) and not isinstance(value, bool) else "must be a string"
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind == "int":
            return None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
        if self.kind == "duration":
            if isinstance(value, int) and not isinstance(value, bool):
                return None
            ok = isinstance(value, str) and _DURATION.match(value)
            return None if ok else 'must be a Go duration such as "30s" or "24h"'
        if self.kind == "bytesize":
            if isinstance(value, int) and not isinstance(value, bool):
                return None
            return None if isinstance(value, str) and _BYTESIZE.match(value.strip()) else 'must be a size such as "4MB"'
        raise ValueError(f"unknown scalar kind {self.kind}")


@dataclass(frozen=True)
class Any_:
    """A subtree whose keys belong to another project (left open on purpose)."""

    source: str


@dataclass(frozen=True)
class ListOf:
    item: Spec


@dataclass(frozen=True)
class MapOf:
    """A Go map: any key, every value of one type."""

    value: Spec


@dataclass(frozen=True)
class Struct:
    source: str  # the uber/kraken file that declares it
    fields: Mapping[str, Spec] = field(default_factory=dict)


Spec = Union[Scalar, Any_, ListOf, MapOf, Struct]  # noqa: UP007 (forward references in a runtime alias)

STR, INT, BOOL = Scalar("str"), Scalar("int"), Scalar("bool")
DURATION, BYTESIZE = Scalar("duration"), Scalar("bytesize")
STRS = ListOf(STR)

# --- shared pieces ------------------------------------------------------------------------------
ZAP_ENCODER = Struct("go.uber.org/zap zapcore/encoder.go EncoderConfig", {
    "messageKey": STR, "levelKey": STR, "timeKey": STR, "nameKey": STR, "callerKey": STR,
    "functionKey": STR, "stacktraceKey": STR, "skipLineEnding": BOOL, "lineEnding": STR,
    "levelEncoder": STR, "timeEncoder": STR, "durationEncoder": STR, "callerEncoder": STR,
    "nameEncoder": STR, "consoleSeparator": STR,
})  # fmt: skip
ZAP = Struct("go.uber.org/zap config.go Config", {
    "level": STR, "development": BOOL, "disableCaller": BOOL, "disableStacktrace": BOOL,
    "sampling": Struct("go.uber.org/zap config.go SamplingConfig", {"initial": INT, "thereafter": INT}),
    "encoding": STR, "encoderConfig": ZAP_ENCODER, "outputPaths": STRS, "errorOutputPaths": STRS,
    "initialFields": MapOf(STR),
})  # fmt: skip
METRICS = Struct("metrics/config.go", {
    "backend": STR,
    "statsd": Struct("metrics/config.go StatsdConfig", {"host_port": STR, "prefix": STR}),
    "m3": Struct("metrics/config.go M3Config", {"host_port": STR, "service": STR, "env": STR}),
})
SECRET = Struct("utils/httputil/tls.go Secret", {"path": STR})
X509 = Struct("utils/httputil/tls.go X509Pair", {"disabled": BOOL, "cert": SECRET, "key": SECRET, "passphrase": SECRET})
TLS = Struct("utils/httputil/tls.go TLSConfig", {"name": STR, "server": X509, "client": X509, "cas": ListOf(SECRET)})
NGINX = Struct("nginx/nginx.go Config", {
    "binary": STR, "root": BOOL, "name": STR, "template_path": STR, "cache_dir": STR, "log_dir": STR,
    "stdout_log_path": STR, "access_log_path": STR, "error_log_path": STR, "proxy_timeout": STR,
    "listen_backlog": INT,
})  # fmt: skip
LISTENER = Struct("utils/listener/config.go", {"net": STR, "addr": STR})
HOSTLIST = Struct("lib/hostlist/config.go", {"dns": STR, "static": STRS, "ttl": DURATION})
FILTER = Struct("lib/healthcheck/config.go FilterConfig", {"fails": INT, "passes": INT, "timeout": DURATION})
PASSIVE_FILTER = Struct("lib/healthcheck/config.go PassiveFilterConfig", {"fails": INT, "fail_timeout": DURATION})
HASHRING = Struct("lib/hashring/config.go", {
    "max_replica": INT, "refresh_interval": DURATION, "membership_wait_timeout": DURATION,
    "membership_wait_interval": DURATION,
})  # fmt: skip
ACTIVE_UPSTREAM = Struct("lib/upstream/config.go ActiveConfig", {
    "hosts": HOSTLIST,
    "healthcheck": Struct("lib/upstream/config.go ActiveHealthCheckConfig", {
        "filter": FILTER, "monitor": Struct("lib/healthcheck/config.go MonitorConfig", {"interval": DURATION}),
        "disabled": BOOL,
    }),
})  # fmt: skip
PASSIVE_UPSTREAM = Struct("lib/upstream/config.go PassiveConfig", {"hosts": HOSTLIST, "healthcheck": PASSIVE_FILTER})
PASSIVE_HASHRING_UPSTREAM = Struct("lib/upstream/config.go PassiveHashRingConfig", {
    "hosts": HOSTLIST, "healthcheck": PASSIVE_FILTER, "hashring": HASHRING,
})  # fmt: skip
CLEANUP = Struct("lib/store/cleanup.go CleanupConfig", {
    "disabled": BOOL, "interval": DURATION, "tti": DURATION, "ttl": DURATION, "aggressive_threshold": INT,
    "aggressive_ttL": DURATION,  # sic: the tag in Kraken's source has a capital L
    "aggressive_lower_threshold": INT,
})  # fmt: skip
BANDWIDTH = Struct("utils/bandwidth/limiter.go Config", {
    "egress_bits_per_sec": INT, "ingress_bits_per_sec": INT, "token_size": INT, "enable": BOOL,
})  # fmt: skip
LOG = Struct("utils/log/logger.go Config", {
    "level": STR, "disable": BOOL, "service_name": STR, "path": STR, "encoding": STR, "timeEncoder": STR,
})  # fmt: skip
SCHEDULER = Struct("lib/torrent/scheduler/config.go", {
    "seeder_tti": DURATION, "leecher_tti": DURATION, "conn_tti": DURATION, "conn_ttl": DURATION,
    "preemption_interval": DURATION, "emit_stats_interval": DURATION, "disable_preemption": BOOL,
    "probe_timeout": DURATION,
    "connstate": Struct("lib/torrent/scheduler/connstate/config.go", {
        "max_open_conn": INT, "max_mutual_conn": INT, "disable_blacklist": BOOL, "blacklist_duration": DURATION,
    }),
    "conn": Struct("lib/torrent/scheduler/conn/config.go", {
        "handshake_timeout": DURATION, "sender_buffer_size": INT, "receiver_buffer_size": INT, "bandwidth": BANDWIDTH,
    }),
    "dispatch": Struct("lib/torrent/scheduler/dispatch/config.go", {
        "piece_request_min_timeout": DURATION, "piece_request_timeout_per_mb": DURATION,
        "piece_request_policy": STR, "pipeline_limit": INT, "origin_pipeline_limit": INT,
        "endgame_threshold": INT, "disable_endgame": BOOL,
    }),
    "torrentlog": LOG,
    "log": LOG,
})  # fmt: skip
NETWORK_EVENT = Struct("lib/torrent/networkevent/config.go", {"log_path": STR, "enabled": BOOL})
# The registry a component embeds is docker distribution's own configuration.Configuration
# (lib/dockerregistry/config.go wraps it as `docker:`); its keys are distribution's.
DOCKER_REGISTRY = Struct("lib/dockerregistry/config.go", {
    "docker": Any_("github.com/docker/distribution configuration/configuration.go Configuration"),
})
LOCALDB = Struct("localdb/config.go", {"source": STR})
PERSISTED_RETRY = Struct("lib/persistedretry/config.go", {
    "incoming_buffer": INT, "retry_buffer": INT, "num_incoming_workers": INT, "num_retry_workers": INT,
    "max_task_throughput": DURATION, "retry_interval": DURATION, "poll_retries_interval": DURATION,
    "sync_retry_backoff": Any_("utils/httputil/httputil.go ExponentialBackOffConfig"),
    "workqueue_metrics_emit_interval": DURATION, "testing": BOOL,
})  # fmt: skip
REGISTRY_BACKEND = Struct("lib/backend/registrybackend/config.go", {
    "address": STR, "timeout": DURATION,
    "security": Struct("lib/backend/registrybackend/security/security.go Config", {
        "tls": TLS, "basic": Any_("github.com/docker/docker api/types/auth.go AuthConfig"),
        "credsStore": STR, "enableHTTPFallback": BOOL,
    }),
})  # fmt: skip
S3_BACKEND = Struct("lib/backend/s3backend/config.go", {
    "username": STR, "region": STR, "bucket": STR, "endpoint": STR, "disable_ssl": BOOL, "force_path_style": BOOL,
    "root_directory": STR, "upload_part_size": INT, "download_part_size": INT, "upload_concurrency": INT,
    "download_concurrency": INT, "list_max_keys": INT, "buffer_guard": BYTESIZE, "name_path": STR,
})  # fmt: skip
# backend.Config.Backend is map[string]interface{} keyed by the name each backend registers
# (`backend.Register(_registryblob, ...)` in lib/backend/registrybackend/blobclient.go, `_s3` in
# lib/backend/s3backend/client.go, ...). The two the site can name are written out; the others open.
BACKENDS: Mapping[str, Spec] = {
    "registry_blob": REGISTRY_BACKEND,  # lib/backend/registrybackend/blobclient.go
    "registry_tag": REGISTRY_BACKEND,  # lib/backend/registrybackend/tagclient.go
    "s3": S3_BACKEND,  # lib/backend/s3backend/client.go
    "gcs": Any_("lib/backend/gcsbackend/config.go"),
    "hdfs": Any_("lib/backend/hdfsbackend/config.go"),
    "http": Any_("lib/backend/httpbackend/http.go"),
    "testfs": Any_("lib/backend/testfs/config.go"),
    "shadow": Any_("lib/backend/shadowbackend/config.go"),
    "sql": Any_("lib/backend/sqlbackend/config.go"),
}
BACKEND = Struct("lib/backend/config.go", {
    "namespace": STR, "backend": Struct("lib/backend/config.go Config.Backend", BACKENDS), "bandwidth": BANDWIDTH,
    "must_ready": BOOL,
})  # fmt: skip
BACKEND_MANAGER = Any_("lib/backend/manager.go ManagerConfig")
AUTH = MapOf(Any_("lib/backend/config.go AuthConfig"))
CASTORE = Struct("lib/store/config.go CAStoreConfig", {
    "upload_dir": STR, "cache_dir": STR,
    "volumes": ListOf(Struct("lib/store/config.go Volume", {"location": STR, "weight": INT})),
    "capacity": INT, "upload_cleanup": CLEANUP, "cache_cleanup": CLEANUP, "read_part_size": INT,
    "write_part_size": INT, "skip_hash_verification": BOOL,
    "memory_cache": Struct("lib/store/config.go MemoryCacheConfig", {
        "enabled": BOOL, "max_size": INT, "drain_workers": INT, "drain_max_retries": INT, "ttl": DURATION,
        "ttl_interval": DURATION,
    }),
})  # fmt: skip
EXTENDS = {"extends": STR}  # utils/configutil/config.go Extends: the file this one is merged over

# --- the five components ------------------------------------------------------------------------
AGENT = Struct("agent/cmd/config.go", {
    **EXTENDS,
    "zap": ZAP, "metrics": METRICS,
    "store": Struct("lib/store/config.go CADownloadStoreConfig", {
        "download_dir": STR, "cache_dir": STR, "download_cleanup": CLEANUP, "cache_cleanup": CLEANUP,
        "read_part_size": INT, "write_part_size": INT,
    }),
    "registry": DOCKER_REGISTRY, "scheduler": SCHEDULER, "peer_id_factory": STR, "network_event": NETWORK_EVENT,
    "tracker": PASSIVE_HASHRING_UPSTREAM, "build_index": PASSIVE_UPSTREAM,
    "agentserver": Struct("agent/agentserver/server.go Config", {}),
    "registry_backup": STR, "nginx": NGINX, "tls": TLS, "allowed_cidrs": STRS,
    "container_runtime": Struct("lib/containerruntime/factory.go Config", {
        "docker": Struct("lib/containerruntime/dockerdaemon/config.go", {
            "docker_host": STR, "docker_scheme": STR, "docker_version": STR}),
        "containerd": Struct("lib/containerruntime/containerd/config.go", {"address": STR}),
    }),
    "docker_daemon": Any_("lib/containerruntime/dockerdaemon/config.go (deprecated)"),
})  # fmt: skip
ORIGIN = Struct("origin/cmd/config.go", {
    **EXTENDS,
    "verbose": BOOL, "zap": ZAP, "cluster": HOSTLIST, "hashring": HASHRING, "healthcheck": FILTER,
    "blobserver": Struct("origin/blobserver/config.go", {
        "listener": LISTENER, "duplicate_write_back_stagger": DURATION}),
    "castore": CASTORE, "scheduler": SCHEDULER, "network_event": NETWORK_EVENT, "peer_id_factory": STR,
    "metrics": METRICS,
    "metainfogen": Struct("lib/metainfogen/config.go", {"piece_lengths": MapOf(BYTESIZE)}),
    "backend_manager": BACKEND_MANAGER, "backends": ListOf(BACKEND), "auth": AUTH,
    "blobrefresh": Any_("lib/blobrefresh/config.go"), "localdb": LOCALDB, "writeback": PERSISTED_RETRY,
    "nginx": NGINX, "tls": TLS,
})  # fmt: skip
TRACKER = Struct("tracker/cmd/config.go", {
    **EXTENDS,
    "zap": ZAP,
    "peerstore": Struct("tracker/peerstore/config.go", {
        "local": Struct("tracker/peerstore/config.go LocalConfig", {"ttl": DURATION}),
        "redis": Struct("tracker/peerstore/config.go RedisConfig", {
            "enabled": BOOL, "addr": STR, "dial_timeout": DURATION, "read_timeout": DURATION,
            "write_timeout": DURATION, "peer_set_window_size": DURATION, "max_peer_set_windows": INT,
            "max_idle_conns": INT, "max_active_conns": INT, "idle_conn_timeout": DURATION,
        }),
    }),
    "originstore": Struct("tracker/originstore/config.go", {
        "locations_ttl": DURATION, "locations_error_ttl": DURATION, "origin_context_ttl": DURATION,
        "origin_unavailable_ttl": DURATION,
    }),
    "trackerserver": Struct("tracker/trackerserver/config.go", {
        "get_metainfo_limit": DURATION, "announce_limit": INT, "announce_interval": DURATION, "listener": LISTENER,
    }),
    "peerhandoutpolicy": Struct("tracker/peerhandoutpolicy/config.go", {"priority": STR}),
    "origin": ACTIVE_UPSTREAM, "metrics": METRICS, "nginx": NGINX, "tls": TLS,
})  # fmt: skip
BUILD_INDEX = Struct("build-index/cmd/config.go", {
    **EXTENDS,
    "zap": ZAP, "metrics": METRICS, "backend_manager": BACKEND_MANAGER, "backends": ListOf(BACKEND), "auth": AUTH,
    "tagserver": Struct("build-index/tagserver/config.go", {
        "listener": LISTENER, "duplicate_replicate_stagger": DURATION, "duplicate_put_stagger": DURATION,
    }),
    "remotes": MapOf(STRS),  # build-index/tagreplication: RemotesConfig map[string][]string
    "tag_replication": PERSISTED_RETRY,
    "tag_types": ListOf(Struct("build-index/tagtype/map.go Config", {"namespace": STR, "type": STR})),
    "origin": ACTIVE_UPSTREAM, "localdb": LOCALDB, "cluster": ACTIVE_UPSTREAM,
    "tag_store": Struct("build-index/tagstore/config.go", {"write_through": BOOL}),
    "store": Struct("lib/store/config.go SimpleStoreConfig", {
        "upload_dir": STR, "cache_dir": STR, "upload_cleanup": CLEANUP, "cache_cleanup": CLEANUP,
        "read_part_size": INT, "write_part_size": INT,
    }),
    "writeback": PERSISTED_RETRY, "nginx": NGINX, "tls": TLS,
})  # fmt: skip
PROXY = Struct("proxy/cmd/config.go", {
    **EXTENDS,
    "castore": CASTORE, "registry": DOCKER_REGISTRY, "build_index": ACTIVE_UPSTREAM, "origin": ACTIVE_UPSTREAM,
    "zap": ZAP, "metrics": METRICS,
    "registryoverride": Struct("proxy/registryoverride/config.go", {"listener": LISTENER}),
    "server": Struct("proxy/proxyserver/config.go", {
        "listener": LISTENER, "prefetch_min_blob_size": BYTESIZE, "prefetch_max_blob_size": BYTESIZE,
    }),
    "nginx": NGINX, "tls": TLS,
})  # fmt: skip

COMPONENTS: Mapping[str, Struct] = {
    "agent": AGENT, "origin": ORIGIN, "tracker": TRACKER, "build-index": BUILD_INDEX, "proxy": PROXY,
}  # fmt: skip

# Each component's listening ports are command-line flags, not config keys
# (`flag.IntVar(...)` in <component>/cmd/cmd.go ParseFlags).
PORT_FLAGS: Mapping[str, tuple[str, ...]] = {
    "agent": ("peer-port", "agent-server-port", "agent-registry-port"),  # agent/cmd/cmd.go
    "origin": ("peer-port", "blobserver-port"),  # origin/cmd/cmd.go
    "tracker": ("port",),  # tracker/cmd/cmd.go
    "build-index": ("port",),  # build-index/cmd/cmd.go
    "proxy": ("port",),  # proxy/cmd/cmd.go (may be given more than once)
}


def walk(spec: Spec, value: Any, path: str) -> list[tuple[str, str]]:
    """Every (key path, problem) of `value` against `spec`: unknown keys, wrong types."""
    if isinstance(spec, Any_) or value is None:
        return []
    if isinstance(spec, Scalar):
        why = spec.problem(value)
        return [(path, why)] if why else []
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            return [(path, "must be a list")]
        return [p for i, item in enumerate(value) for p in walk(spec.item, item, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [(path, "must be a mapping")]
    if isinstance(spec, MapOf):
        return [p for key, item in value.items() for p in walk(spec.value, item, _join(path, str(key)))]
    found: list[tuple[str, str]] = []
    for key, item in value.items():
        sub = spec.fields.get(str(key))
        where = _join(path, str(key))
        if sub is None:
            found.append((where, f"unknown key: {spec.source} has no field with yaml tag {str(key)!r}, "
                                 "and Kraken's loader (yaml.v2 Unmarshal) would ignore it silently"))
            continue
        found.extend(walk(sub, item, where))
    return found


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
