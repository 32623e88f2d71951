"""Read a catalog from YAML and check every field, with errors an admin can act on.

Every problem is reported as one :class:`CatalogError` naming the file, the line, the path of
the bad field (``profiles[2].gpu.count``) and what is allowed there. The rules are the ones the
shipped JSON Schema (``catalog.schema.json``) documents; the tests keep the two in step.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from gpu_devbox.catalog.build import check_builds, read_build
from gpu_devbox.catalog.fields import CatalogError, FieldReader
from gpu_devbox.catalog.model import (
    MIG_PATTERN,
    Architecture,
    Catalog,
    Framework,
    GPUKind,
    GPURequest,
    Image,
    Profile,
    Quantity,
    Toleration,
    Volume,
)
from gpu_devbox.catalog.units import parse_cpu, parse_size

#: The catalog format this code reads.
CATALOG_VERSION = 1
#: GPU families as NVIDIA's GPU Feature Discovery writes ``nvidia.com/gpu.family``.
GPU_FAMILIES = (
    "kepler",
    "maxwell",
    "pascal",
    "volta",
    "turing",
    "ampere",
    "ada-lovelace",
    "hopper",
    "blackwell",
    "rubin",
)
MAX_GPUS = 64
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
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
    """Walks the parsed data, building the model and failing on the first bad field."""

    # -- catalog ------------------------------------------------------------------------------

    def catalog(self, data: Any) -> Catalog:
        if data is None:
            raise self.fail("", "the catalog is empty; it needs images and profiles")
        top = self.mapping(data, "", ("version", "images", "profiles", "defaults", "build"))
        for key in ("images", "profiles"):
            if not top.get(key):
                raise self.fail(key, "needs at least one entry")
        version = top.get("version", CATALOG_VERSION)
        if version != CATALOG_VERSION:
            raise self.fail("version", f"must be {CATALOG_VERSION}, not {version!r}")
        images = tuple(
            self.image(item, f"images[{i}]")
            for i, item in enumerate(self.sequence(top["images"], "images", "images"))
        )
        names: set[str] = set()
        for i, image in enumerate(images):
            if image.name in names:
                raise self.fail(f"images[{i}].name", f"{image.name!r} is used by another image")
            names.add(image.name)
        build = read_build(self, top.get("build"), "build")
        check_builds(self, images, build)
        defaults = self.mapping(
            top.get("defaults") or {},
            "defaults",
            ("cpu", "memory", "shm", "volumes", "tolerations"),
        )
        raw_profiles = self.sequence(top["profiles"], "profiles", "profiles")
        profiles = tuple(
            self.profile(item, f"profiles[{i}]", names, defaults)
            for i, item in enumerate(raw_profiles)
        )
        slugs: set[str] = set()
        default_seen = None
        for i, profile in enumerate(profiles):
            if profile.slug in slugs:
                raise self.fail(
                    f"profiles[{i}].slug", f"{profile.slug!r} is used by another profile"
                )
            slugs.add(profile.slug)
            if profile.default:
                if default_seen is not None:
                    raise self.fail(
                        f"profiles[{i}].default",
                        f"only one profile may be the default ({default_seen!r} already is)",
                    )
                default_seen = profile.slug
        return Catalog(images=images, profiles=profiles, source=self.source, build=build)

    def image(self, value: Any, path: str) -> Image:
        raw = self.mapping(
            value,
            path,
            (
                "name",
                "display_name",
                "description",
                "reference",
                "cuda",
                "flavor",
                "frameworks",
                "architectures",
                "build",
                "size_budget",
            ),
            ("name", "reference"),
        )
        reference = self.string(raw["reference"], f"{path}.reference")
        if any(ch.isspace() for ch in reference):
            raise self.fail(f"{path}.reference", "must be an image reference without spaces")
        frameworks = tuple(
            self.framework(item, f"{path}.frameworks[{i}]")
            for i, item in enumerate(
                self.sequence(raw.get("frameworks") or [], f"{path}.frameworks", "frameworks")
            )
        )
        architectures = tuple(
            self.convert(
                self.string(item, f"{path}.architectures[{i}]"),
                f"{path}.architectures[{i}]",
                Architecture.parse,
            )
            for i, item in enumerate(
                self.sequence(
                    raw.get("architectures") or [], f"{path}.architectures", "strings like sm_90"
                )
            )
        )
        cuda = self.cuda(raw.get("cuda"), f"{path}.cuda")
        if architectures and cuda is None:
            raise self.fail(f"{path}.architectures", "only an image with a CUDA version has them")
        return Image(
            name=self.name(raw["name"], f"{path}.name"),
            reference=reference,
            display_name=self.optional_text(raw, "display_name", path),
            description=self.optional_text(raw, "description", path),
            cuda=cuda,
            flavor=self.name(raw.get("flavor", "base"), f"{path}.flavor"),
            frameworks=frameworks,
            architectures=architectures,
            build=self.boolean(raw.get("build", False), f"{path}.build"),
            size_budget=None
            if raw.get("size_budget") is None
            else self.convert(raw["size_budget"], f"{path}.size_budget", parse_size),
        )

    def framework(self, value: Any, path: str) -> Framework:
        raw = self.mapping(value, path, ("name", "version", "cuda"), ("name",))
        version = raw.get("version")
        if version is not None and not isinstance(version, str):
            raise self.fail(f"{path}.version", 'must be a quoted string like "2.9.1"')
        return Framework(
            name=self.string(raw["name"], f"{path}.name"),
            version=version,
            cuda=self.cuda(raw.get("cuda"), f"{path}.cuda"),
        )

    def profile(
        self, value: Any, path: str, image_names: set[str], defaults: Mapping[str, Any]
    ) -> Profile:
        raw = self.mapping(
            value,
            path,
            (
                "slug",
                "display_name",
                "description",
                "default",
                "gpu",
                "cpu",
                "memory",
                "shm",
                "volumes",
                "tolerations",
                "images",
                "default_image",
            ),
            ("slug", "display_name", "images"),
        )
        images = self.sequence(raw["images"], f"{path}.images", "image names")
        if not images:
            raise self.fail(f"{path}.images", "needs at least one image")
        seen: dict[str, None] = {}  # ordered, and a linear duplicate check
        for i, name in enumerate(images):
            where = f"{path}.images[{i}]"
            self.string(name, where)
            if name not in image_names:
                raise self.fail(
                    where, f"no image is named {name!r}; images: {', '.join(sorted(image_names))}"
                )
            if name in seen:
                raise self.fail(where, f"{name!r} is listed twice")
            seen[name] = None
        default_image = raw.get("default_image", images[0])
        if not isinstance(default_image, str) or default_image not in seen:
            raise self.fail(
                f"{path}.default_image",
                f"{default_image!r} is not one of this profile's images: {', '.join(seen)}",
            )

        def pick(key: str) -> tuple[Any, str]:
            if key in raw:
                return raw[key], f"{path}.{key}"
            return defaults.get(key), f"defaults.{key}"

        cpu_raw, cpu_path = pick("cpu")
        memory_raw, memory_path = pick("memory")
        shm_raw, shm_path = pick("shm")
        volumes_raw, volumes_path = pick("volumes")
        tolerations_raw, tolerations_path = pick("tolerations")
        return Profile(
            slug=self.name(raw["slug"], f"{path}.slug"),
            display_name=self.string(raw["display_name"], f"{path}.display_name"),
            description=self.optional_text(raw, "description", path),
            default=self.boolean(raw.get("default", False), f"{path}.default"),
            gpu=self.gpu(raw.get("gpu"), f"{path}.gpu"),
            cpu=self.quantity(cpu_raw, cpu_path, parse_cpu),
            memory=self.quantity(memory_raw, memory_path, parse_size),
            shm=None if shm_raw is None else self.convert(shm_raw, shm_path, parse_size),
            volumes=self.volumes(volumes_raw, volumes_path),
            tolerations=tuple(
                self.toleration(item, f"{tolerations_path}[{i}]")
                for i, item in enumerate(
                    self.sequence(tolerations_raw or [], tolerations_path, "tolerations")
                )
            ),
            images=tuple(seen),
            default_image=default_image,
        )

    def gpu(self, value: Any, path: str) -> GPURequest:
        if value is None:
            return GPURequest()
        raw = self.mapping(
            value, path, ("count", "max_count", "mig", "shared", "models", "families", "min_memory")
        )
        kinds = [key for key in ("count", "mig", "shared") if raw.get(key) is not None]
        if len(kinds) != 1:
            raise self.fail(
                path,
                "give exactly one of count (whole GPUs), mig (a MIG profile like 1g.10gb) "
                "or shared: true (a shared GPU)",
            )
        models = tuple(
            self.string(item, f"{path}.models[{i}]")
            for i, item in enumerate(
                self.sequence(raw.get("models") or [], f"{path}.models", "product-name patterns")
            )
        )
        families = tuple(
            self.family(item, f"{path}.families[{i}]")
            for i, item in enumerate(
                self.sequence(raw.get("families") or [], f"{path}.families", "GPU families")
            )
        )
        min_memory = raw.get("min_memory")
        common: dict[str, Any] = {
            "models": models,
            "families": families,
            "min_memory": None
            if min_memory is None
            else self.convert(min_memory, f"{path}.min_memory", parse_size),
        }
        kind = kinds[0]
        if kind != "count" and raw.get("max_count") is not None:
            raise self.fail(f"{path}.max_count", "only whole-GPU profiles (count) have max_count")
        if kind == "count":
            count = self.integer(raw["count"], f"{path}.count", 1, MAX_GPUS)
            max_count = self.integer(
                raw.get("max_count", count), f"{path}.max_count", count, MAX_GPUS
            )
            return GPURequest(GPUKind.WHOLE, count=count, max_count=max_count, **common)
        if kind == "mig":
            mig = self.string(raw["mig"], f"{path}.mig")
            if not MIG_PATTERN.match(mig):
                raise self.fail(
                    f"{path}.mig",
                    f"{mig!r} is not a MIG profile; use the device plugin's name like 1g.10gb",
                )
            return GPURequest(GPUKind.MIG, count=1, max_count=1, mig=mig, **common)
        if raw["shared"] is not True:
            raise self.fail(f"{path}.shared", "must be true (or leave it out)")
        return GPURequest(GPUKind.SHARED, count=1, max_count=1, **common)

    def family(self, value: Any, path: str) -> str:
        text = self.string(value, path)
        if text not in GPU_FAMILIES:
            raise self.fail(
                path, f"{text!r} is not a GPU family; allowed: {', '.join(GPU_FAMILIES)}"
            )
        return text

    def quantity(self, value: Any, path: str, parse: Callable[[Any], float]) -> Quantity:
        if value is None:
            return Quantity()
        if isinstance(value, dict):
            raw = self.mapping(value, path, ("guarantee", "limit"))
            guarantee = raw.get("guarantee")
            limit = raw.get("limit")
            g = None if guarantee is None else self.convert(guarantee, f"{path}.guarantee", parse)
            lim = None if limit is None else self.convert(limit, f"{path}.limit", parse)
            if g is not None and lim is not None and g > lim:
                raise self.fail(f"{path}.guarantee", "must not be more than the limit")
            return Quantity(guarantee=g, limit=lim)
        amount = self.convert(value, path, parse)
        return Quantity(guarantee=amount, limit=amount)

    def volumes(self, value: Any, path: str) -> tuple[Volume, ...]:
        out: list[Volume] = []
        names: set[str] = set()
        mounts: set[str] = set()
        for i, item in enumerate(self.sequence(value or [], path, "volumes")):
            where = f"{path}[{i}]"
            raw = self.mapping(
                item, where, ("name", "mount", "claim", "scratch", "read_only"), ("name", "mount")
            )
            if (raw.get("claim") is None) == (raw.get("scratch") is None):
                raise self.fail(
                    where,
                    "give exactly one of claim (a PersistentVolumeClaim name) or "
                    "scratch (the size of an emptyDir)",
                )
            mount = self.string(raw["mount"], f"{where}.mount")
            if not mount.startswith("/") or mount.rstrip("/") in ("", SHM_MOUNT):
                raise self.fail(
                    f"{where}.mount",
                    f"{mount!r} is not allowed: use an absolute path other than / and "
                    f"{SHM_MOUNT} (set shm for that)",
                )
            volume = Volume(
                name=self.name(raw["name"], f"{where}.name"),
                mount=mount,
                claim=None
                if raw.get("claim") is None
                else self.string(raw["claim"], f"{where}.claim"),
                scratch=None
                if raw.get("scratch") is None
                else self.convert(raw["scratch"], f"{where}.scratch", parse_size),
                read_only=self.boolean(raw.get("read_only", False), f"{where}.read_only"),
            )
            if volume.name in names:
                raise self.fail(f"{where}.name", f"{volume.name!r} is used by another volume")
            if volume.mount in mounts:
                raise self.fail(f"{where}.mount", f"{volume.mount!r} is already mounted")
            names.add(volume.name)
            mounts.add(volume.mount)
            out.append(volume)
        return tuple(out)

    def toleration(self, value: Any, path: str) -> Toleration:
        raw = self.mapping(value, path, ("key", "operator", "value", "effect"), ("key",))
        operator = raw.get("operator", "Exists" if raw.get("value") is None else "Equal")
        if operator not in ("Exists", "Equal"):
            raise self.fail(f"{path}.operator", f"must be Exists or Equal, not {operator!r}")
        effect = raw.get("effect")
        if effect is not None and effect not in TAINT_EFFECTS:
            raise self.fail(f"{path}.effect", f"must be one of {', '.join(TAINT_EFFECTS)}")
        val = raw.get("value")
        if operator == "Exists" and val is not None:
            raise self.fail(f"{path}.value", "must be left out with operator Exists")
        return Toleration(
            key=self.string(raw["key"], f"{path}.key"),
            operator=operator,
            value=None if val is None else str(val),
            effect=effect,
        )
