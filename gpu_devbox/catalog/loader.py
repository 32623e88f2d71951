"""Read a catalog from YAML and check every field, with errors an admin can act on.

Every problem is reported as one :class:`CatalogError` naming the file, the line, the path of
the bad field (``profiles[2].gpu.count``) and what is allowed there. What each field may hold is
the shipped JSON Schema's (``catalog.schema.json``, checked by :mod:`.validation`); this module
reads the YAML with every field's line and keeps the rules that relate fields to each other.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from gpu_devbox.catalog.build import check_builds, read_build
from gpu_devbox.catalog.fields import CatalogError, FieldReader
from gpu_devbox.catalog.model import (
    Architecture,
    Catalog,
    Framework,
    GPUKind,
    GPUQuota,
    GPURequest,
    Image,
    Profile,
    Quantity,
    Toleration,
    Volume,
)
from gpu_devbox.catalog.units import parse_cpu, parse_size
from gpu_devbox.catalog.validation import check as check_schema
from gpu_devbox.catalog.validation import schema

#: The catalog format this code reads (the schema's ``version``).
CATALOG_VERSION: int = schema()["properties"]["version"]["const"]
#: GPU families as NVIDIA's GPU Feature Discovery writes ``nvidia.com/gpu.family``.
GPU_FAMILIES: tuple[str, ...] = tuple(
    schema()["$defs"]["gpu"]["properties"]["families"]["items"]["enum"]
)
#: A CUDA version as the catalog writes it (the schema's ``cudaVersion``).
CUDA_VERSION = re.compile(schema()["$defs"]["cudaVersion"]["pattern"])
#: Where containers see shared memory; set by a profile's ``shm``, never by a volume.
SHM_MOUNT = "/dev/shm"  # noqa: S108 - a mount point in the container, not a temporary file


#: The largest catalog file read, in bytes. A catalog is written by hand: the shipped one is
#: 5 KB, one with a hundred profiles about 50 KB. The cap keeps a wrong path (a log, an image)
#: from holding the hub or the command line for minutes.
MAX_CATALOG_BYTES = 1024 * 1024
#: The most YAML nodes (scalars, lists, mappings) a catalog may hold, counting every use of an
#: alias (``*name``) as a copy of what it names. The shipped catalog has about 300; a thousand
#: profiles fit. Aliases are allowed, but a few hundred bytes of aliases nested in each other
#: (a "billion laughs" document) would otherwise expand to billions of nodes.
MAX_CATALOG_NODES = 20_000
#: How deep lists and mappings may nest (a catalog needs 5 levels). Deeper documents make
#: PyYAML's pure-Python scanner slow (its work per token grows with the depth) and its
#: composer recurse past Python's limit.
MAX_CATALOG_DEPTH = 100

#: The loader: libyaml's parser when PyYAML has it (see below), else PyYAML's SafeLoader.
_LOADER: type[Any] = yaml.SafeLoader

if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _CLoader(CParser, Composer, SafeConstructor, Resolver):
        """libyaml's scanner and parser (as in ``yaml.CSafeLoader``) under PyYAML's composer.

        libyaml parses about ten times faster than PyYAML's Python code and refuses nesting
        deeper than 1,000 levels. Its composer, though, builds the whole document without
        letting go of the GIL: a catalog read in a worker thread would still stall the hub's
        event loop for as long. PyYAML's composer, fed by libyaml's events, costs about the
        same and lets the loop run.
        """

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

        check_node = Composer.check_node
        get_node = Composer.get_node
        get_single_node = Composer.get_single_node
        compose_document = Composer.compose_document
        compose_node = Composer.compose_node

    _LOADER = _CLoader


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    """Read and check the catalog in a YAML file.

    Only a regular file of at most :data:`MAX_CATALOG_BYTES` is read (a FIFO, a device or a
    directory is refused without waiting on it).

    Raises:
        CatalogError: the file cannot be read or the catalog is invalid.
    """
    source = os.fspath(path)
    try:
        raw = _read_regular_file(source)
        text = raw.decode("utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CatalogError(source, "", f"cannot read the catalog: {reason}") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(source, "", f"cannot read the catalog: {exc}") from None
    return parse_catalog_text(text, source)


def _read_regular_file(source: str) -> bytes:
    """The bytes of a regular file, refusing anything else and anything too large.

    Raises:
        OSError: the file cannot be opened or read.
        CatalogError: it is not a regular file, or larger than the cap.
    """
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CatalogError(
                source, "", f"cannot read the catalog: it is {_file_kind(info.st_mode)}, not a file"
            )
        if info.st_size > MAX_CATALOG_BYTES:
            raise _too_large(source, info.st_size)
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CATALOG_BYTES:  # the file may grow while we read it
            # ask for what fstat said (plus one, to see growth), not the whole cap at once
            chunk = os.read(fd, min(MAX_CATALOG_BYTES + 1 - size, info.st_size + 65536))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_CATALOG_BYTES:
            raise _too_large(source, size)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _too_large(source: str, size: int) -> CatalogError:
    return CatalogError(
        source,
        "",
        f"the catalog is {size / 1024**2:.1f} MiB; a catalog file may be at most "
        f"{MAX_CATALOG_BYTES // 1024**2} MiB",
    )


def parse_catalog_text(text: str, source: str = "<catalog>") -> Catalog:
    """Parse and check catalog YAML held in a string.

    The same limits as :func:`load_catalog` apply: at most :data:`MAX_CATALOG_BYTES` of text
    and :data:`MAX_CATALOG_NODES` nodes once aliases are expanded.

    Raises:
        CatalogError: the YAML is malformed, too large or the catalog is invalid.
    """
    if len(text) > MAX_CATALOG_BYTES or len(text.encode("utf-8")) > MAX_CATALOG_BYTES:
        raise _too_large(source, len(text.encode("utf-8")))
    lines: dict[str, int] = {}
    try:
        _check_expansion(text, source)
        node = yaml.compose(text, Loader=_LOADER)
        if node is None:
            data = None
        else:
            _index_lines(node, lines, source)
            constructor = yaml.SafeLoader("")
            try:
                data = constructor.construct_document(node)
            finally:
                constructor.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        # libyaml places "unexpected end" one line past the last one: name the last line
        last = text.count("\n") + 1
        line = min(mark.line + 1, last) if mark is not None else None
        raise CatalogError(source, "", f"not valid YAML: {problem}", line) from None
    except RecursionError:  # the pure-Python parser on a deeply nested document
        raise CatalogError(source, "", "not valid YAML: it is nested too deeply") from None
    return parse_catalog(data, source, lines)


def parse_catalog(
    data: Any, source: str = "<catalog>", lines: Mapping[str, int] | None = None
) -> Catalog:
    """Build a catalog from already-parsed data (a dict as YAML or JSON gives it).

    Raises:
        CatalogError: the catalog is invalid.
    """
    return _Reader(source, lines or {}).catalog(data)


def _check_expansion(text: str, source: str) -> None:
    """Refuse a document of more than :data:`MAX_CATALOG_NODES` nodes, aliases expanded, or
    nested deeper than :data:`MAX_CATALOG_DEPTH`.

    Reads the parser's events only (no node objects), so that the refusal is fast: each alias
    adds the size of the node it names, recorded when that node's anchor closed.

    Raises:
        CatalogError: too many nodes, or too deep.
        yaml.YAMLError: the text is not valid YAML.
    """
    sizes: dict[str, int] = {}  # anchor -> nodes under it, itself included
    open_nodes: list[list[Any]] = []  # [nodes so far, anchor] of each open list or mapping
    open_anchors: set[str] = set()
    expanded = through_aliases = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in open_anchors:
                raise CatalogError(
                    source,
                    "",
                    f"the alias *{event.anchor} is used inside the value it names",
                    _line(event),
                )
            added = sizes.get(str(event.anchor), 1)
            through_aliases += added
        elif isinstance(event, yaml.ScalarEvent):
            added = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(open_nodes) >= MAX_CATALOG_DEPTH:
                raise CatalogError(
                    source,
                    "",
                    f"the catalog is nested more than {MAX_CATALOG_DEPTH} levels deep",
                    _line(event),
                )
            open_nodes.append([1, event.anchor])
            if event.anchor is not None:
                open_anchors.add(event.anchor)
            added = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            count, anchor = open_nodes.pop()
            if anchor is not None:
                sizes[anchor] = count
                open_anchors.discard(anchor)
            if open_nodes:
                open_nodes[-1][0] += count
            continue
        else:
            continue
        expanded += added
        if open_nodes and not isinstance(event, yaml.CollectionStartEvent):
            open_nodes[-1][0] += added
        if expanded > MAX_CATALOG_NODES:
            problem = (
                f"the catalog expands to more than {MAX_CATALOG_NODES:,} YAML values through "
                "its aliases (*name); a catalog may hold at most that many"
                if through_aliases
                else f"the catalog has more than {MAX_CATALOG_NODES:,} YAML values; a catalog "
                "may hold at most that many"
            )
            raise CatalogError(source, "", problem, _line(event))


def _line(event: yaml.Event) -> int | None:
    mark = event.start_mark
    return mark.line + 1 if mark is not None else None


def _index_lines(root: yaml.Node, lines: dict[str, int], source: str) -> None:
    """Record the line of every key and item, and refuse duplicate keys (YAML keeps the last).

    Walks the document as it expands (an alias as a copy of what it names) without recursion;
    :func:`_check_expansion` bounded its size first.
    """
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                # a key that is itself a list or mapping is refused by the reader; never
                # print it here (it may be an alias to something huge)
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else f"<{key.id}>"
                child = f"{path}.{name}" if path else name
                if name in seen:
                    raise CatalogError(
                        source,
                        child,
                        "is given twice; each key may appear once",
                        key.start_mark.line + 1,
                    )
                seen.add(name)
                lines[child] = key.start_mark.line + 1
                stack.append((value, child))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                child = f"{path}[{index}]"
                lines[child] = item.start_mark.line + 1
                stack.append((item, child))


class _Reader(FieldReader):
    """Builds the model from data the schema accepted, checking the rules that relate fields.

    Types, patterns, ranges and the allowed keys are the schema's (:mod:`.validation`); what is
    left here is what JSON Schema cannot say: unique names, references between profiles and
    images, a guarantee not above its limit, and turning sizes and CPU into numbers.
    """

    # -- catalog ------------------------------------------------------------------------------

    def catalog(self, data: Any) -> Catalog:
        if data is None:
            raise self.fail("", "the catalog is empty; it needs images and profiles")
        check_schema(data, self.source, self.lines)
        images = tuple(self.image(item, f"images[{i}]") for i, item in enumerate(data["images"]))
        self.unique((image.name for image in images), "images[{}].name", "image")
        build = read_build(self, data.get("build"), "build")
        check_builds(self, images, build)
        names = {image.name for image in images}
        defaults = data.get("defaults") or {}
        profiles = tuple(
            self.profile(item, f"profiles[{i}]", names, defaults)
            for i, item in enumerate(data["profiles"])
        )
        self.unique((profile.slug for profile in profiles), "profiles[{}].slug", "profile")
        marked = [i for i, profile in enumerate(profiles) if profile.default]
        if len(marked) > 1:
            raise self.fail(
                f"profiles[{marked[1]}].default",
                f"only one profile may be the default ({profiles[marked[0]].slug!r} already is)",
            )
        self.cpu_profiles_need_no_gpu(profiles, {image.name: image for image in images})
        group_quotas = {
            name: self.quota(settings["max_gpus"])
            for name, settings in (data.get("groups") or {}).items()
            if settings and settings.get("max_gpus") is not None
        }
        return Catalog(
            images=images,
            profiles=profiles,
            source=self.source,
            build=build,
            max_gpus=None if data.get("max_gpus") is None else self.quota(data["max_gpus"]),
            group_quotas=group_quotas,
        )

    def quota(self, raw: Any) -> GPUQuota:
        """``2`` (every kind, each in its unit) or ``{whole: 2, mig: 4}`` (the rest unlimited)."""
        if isinstance(raw, int):
            return GPUQuota(whole=raw, mig=raw, shared=raw)
        return GPUQuota(whole=raw.get("whole"), mig=raw.get("mig"), shared=raw.get("shared"))

    def cpu_profiles_need_no_gpu(
        self, profiles: Iterable[Profile], images: Mapping[str, Image]
    ) -> None:
        """No CPU-only profile offers an image marked ``gpu_required``."""
        for i, profile in enumerate(profiles):
            if profile.gpu.wants_gpu:
                continue
            for j, name in enumerate(profile.images):
                if images[name].gpu_required:
                    raise self.fail(
                        f"profiles[{i}].images[{j}]",
                        f"{name!r} needs a GPU (gpu_required: true); a profile without gpu "
                        "cannot offer it",
                    )

    def unique(self, names: Iterable[str], where: str, what: str) -> None:
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise self.fail(where.format(i), f"{name!r} is used by another {what}")
            seen.add(name)

    def image(self, raw: Mapping[str, Any], path: str) -> Image:
        return Image(
            name=raw["name"],
            reference=raw["reference"],
            display_name=(raw.get("display_name") or "").strip(),
            description=(raw.get("description") or "").strip(),
            cuda=self.version(raw.get("cuda"), f"{path}.cuda", CUDA_VERSION),
            flavor=raw.get("flavor", "base"),
            frameworks=tuple(
                Framework(
                    name=item["name"],
                    version=item.get("version"),
                    cuda=self.version(
                        item.get("cuda"), f"{path}.frameworks[{i}].cuda", CUDA_VERSION
                    ),
                )
                for i, item in enumerate(raw.get("frameworks") or [])
            ),
            architectures=tuple(Architecture.parse(a) for a in raw.get("architectures") or []),
            build=raw.get("build", False),
            size_budget=None if raw.get("size_budget") is None else parse_size(raw["size_budget"]),
            packages=tuple(str(p).strip() for p in raw.get("packages") or ()),
            gpu_required=raw.get("gpu_required", False),
            memory_recommended=None
            if raw.get("memory_recommended") is None
            else parse_size(raw["memory_recommended"]),
        )

    def version(self, value: Any, path: str, pattern: re.Pattern[str]) -> str | None:
        """A version as text: YAML reads an unquoted 12.9 as a number, kept as its text."""
        if value is None:
            return None
        text = str(value)
        if not pattern.match(text):
            raise self.fail(path, f'{text!r} is not a version like "12.9"; quote it')
        return text

    def profile(
        self,
        raw: Mapping[str, Any],
        path: str,
        image_names: set[str],
        defaults: Mapping[str, Any],
    ) -> Profile:
        images = self.profile_images(raw["images"], f"{path}.images", image_names)
        default_image = raw.get("default_image", images[0])
        if default_image not in images:
            raise self.fail(
                f"{path}.default_image",
                f"{default_image!r} is not one of this profile's images: {', '.join(images)}",
            )

        def pick(key: str) -> tuple[Any, str]:
            if key in raw:
                return raw[key], f"{path}.{key}"
            return defaults.get(key), f"defaults.{key}"

        cpu_raw, cpu_path = pick("cpu")
        memory_raw, memory_path = pick("memory")
        shm_raw, _ = pick("shm")
        volumes_raw, volumes_path = pick("volumes")
        tolerations_raw, _ = pick("tolerations")
        return Profile(
            slug=raw["slug"],
            display_name=raw["display_name"],
            description=(raw.get("description") or "").strip(),
            default=raw.get("default", False),
            gpu=self.gpu(raw.get("gpu"), f"{path}.gpu"),
            cpu=self.quantity(cpu_raw, cpu_path, parse_cpu),
            memory=self.quantity(memory_raw, memory_path, parse_size),
            shm=None if shm_raw is None else parse_size(shm_raw),
            volumes=self.volumes(volumes_raw or [], volumes_path),
            tolerations=tuple(self.toleration(item) for item in tolerations_raw or []),
            images=images,
            default_image=default_image,
            groups=None if raw.get("groups") is None else tuple(raw["groups"]),
        )

    def profile_images(self, names: list[str], path: str, known: set[str]) -> tuple[str, ...]:
        for i, name in enumerate(names):
            if name not in known:
                raise self.fail(
                    f"{path}[{i}]",
                    f"no image is named {name!r}; images: {', '.join(sorted(known))}",
                )
        return tuple(names)

    def gpu(self, raw: Mapping[str, Any] | None, path: str) -> GPURequest:
        if raw is None:
            return GPURequest()
        min_memory = raw.get("min_memory")
        common: dict[str, Any] = {
            "models": tuple(raw.get("models") or ()),
            "families": tuple(raw.get("families") or ()),
            "min_memory": None if min_memory is None else parse_size(min_memory),
        }
        if raw.get("mig") is not None:
            return GPURequest(GPUKind.MIG, count=1, max_count=1, mig=raw["mig"], **common)
        if raw.get("shared") is not None:
            return GPURequest(GPUKind.SHARED, count=1, max_count=1, **common)
        count = raw["count"]
        max_count = raw.get("max_count", count)
        if max_count < count:
            raise self.fail(
                f"{path}.max_count", f"must be at least count ({count}), not {max_count}"
            )
        return GPURequest(GPUKind.WHOLE, count=count, max_count=max_count, **common)

    def quantity(self, value: Any, path: str, parse: Callable[[Any], float]) -> Quantity:
        if value is None:
            return Quantity()
        if not isinstance(value, dict):
            amount = parse(value)
            return Quantity(guarantee=amount, limit=amount)
        guarantee, limit = value.get("guarantee"), value.get("limit")
        g = None if guarantee is None else parse(guarantee)
        lim = None if limit is None else parse(limit)
        if g is not None and lim is not None and g > lim:
            raise self.fail(f"{path}.guarantee", "must not be more than the limit")
        return Quantity(guarantee=g, limit=lim)

    def volumes(self, items: list[Mapping[str, Any]], path: str) -> tuple[Volume, ...]:
        out: list[Volume] = []
        names: set[str] = set()
        mounts: set[str] = set()
        created = None
        for i, raw in enumerate(items):
            where = f"{path}[{i}]"
            scratch, size = raw.get("scratch"), raw.get("size")
            for key, needs in (
                ("size", "claim"),
                ("sub_path", "claim"),
                ("access_mode", "size"),
                ("storage_class", "size"),
            ):
                if key in raw and needs not in raw:
                    what = (
                        "a claim (a scratch volume is an emptyDir)"
                        if needs == "claim"
                        else "size (it applies to a claim gpu-devbox creates)"
                    )
                    raise self.fail(f"{where}.{key}", f"needs {what}")
            if size is not None:
                if created is not None:
                    raise self.fail(
                        f"{where}.size",
                        f"only one volume per profile may be created (KubeSpawner makes one "
                        f"claim per server); {created!r} already is",
                    )
                created = raw["name"]
            volume = Volume(
                name=raw["name"],
                mount=raw["mount"],
                claim=raw.get("claim"),
                scratch=None if scratch is None else parse_size(scratch),
                read_only=raw.get("read_only", False),
                size=None if size is None else parse_size(size),
                access_mode=raw.get("access_mode"),
                storage_class=raw.get("storage_class"),
                sub_path=raw.get("sub_path"),
            )
            if volume.name in names:
                raise self.fail(f"{where}.name", f"{volume.name!r} is used by another volume")
            if volume.mount in mounts:
                raise self.fail(f"{where}.mount", f"{volume.mount!r} is already mounted")
            names.add(volume.name)
            mounts.add(volume.mount)
            out.append(volume)
        return tuple(out)

    def toleration(self, raw: Mapping[str, Any]) -> Toleration:
        value = raw.get("value")
        return Toleration(
            key=raw["key"],
            operator=raw.get("operator", "Exists" if value is None else "Equal"),
            value=None if value is None else str(value),
            effect=raw.get("effect"),
        )
