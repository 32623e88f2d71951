"""Build the notebook images from the catalog: the CI matrix, the tags, the bake file, the
locks, the size check, the base-image lifecycle audit and the README's tables, all generated
from the catalog's "build: true" images (see images/README.md).

  gpu-devbox images matrix                       the build matrix as JSON (CI)
  gpu-devbox images tags cuda13-pytorch --sha S  every tag of one image, one per line
  gpu-devbox images bake --sha S > bake.json     a file for `docker buildx bake -f bake.json`
  gpu-devbox images lock [IMAGE...]              resolve each image's lock (images/locks/)
  gpu-devbox images lock --check                 are the committed locks current?
  gpu-devbox images size IMAGE --oci DIR         a built image's size per layer group, and its
                                                 budget (exit 1 when over it)
  gpu-devbox images audit [--pull]               are the nvidia/cuda bases still supported?
  gpu-devbox images docs                         the driver table and compatibility matrix
  gpu-devbox images prepull | kubectl apply -f -  a DaemonSet per CUDA image, pulling it onto
                                                 the nodes whose driver runs it
  gpu-devbox images prepull --values             Z2JH prePuller.extraImages for the others

Exit status: 0 on success, 1 when the audit finds a base past end of life (or showing NVIDIA's
deprecation notice) or a lock is stale or missing, 2 on bad input (an unreadable or invalid
catalog, an unknown image, a bad --sha/--version/--registry/--option) or when audit --pull
cannot pull or start a base, or when prepull meets an image it cannot place (a CUDA version
no known driver runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gpu_devbox.cli import CliError
from gpu_devbox.cli.common import bounded_int, print_json

if TYPE_CHECKING:
    from gpu_devbox.catalog import Catalog
    from gpu_devbox.images.plan import ImageBuild


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``gpu-devbox images`` and its subcommands."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="images_command", metavar="SUBCOMMAND")
    sub.required = True

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        child: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        child.add_argument(
            "--catalog",
            metavar="FILE",
            help="the catalog YAML (default: the catalog gpu-devbox ships)",
        )
        return child

    def registry(child: argparse.ArgumentParser) -> None:
        child.add_argument(
            "--registry",
            metavar="PREFIX",
            help="push to PREFIX/<repository name> instead of the catalog's registry and owner "
            "(e.g. ghcr.io/me, localhost)",
        )

    matrix = command("matrix", "print the build matrix as JSON ({'include': [...]})")
    registry(matrix)
    matrix.add_argument("--cuda", metavar="X.Y", help="only this CUDA line ('cpu': the CPU image)")

    tags = command("tags", "print every tag of one image, one full reference per line")
    tags.add_argument("image", metavar="IMAGE", help="the catalog name of a build: true image")
    tags.add_argument("--sha", required=True, help="the git commit being built")
    tags.add_argument("--version", help="a release version (adds vV-cuda-X.Y)")
    tags.add_argument("--json", action="store_true", help="print a JSON list")
    registry(tags)

    bake = command("bake", "print a docker buildx bake file (JSON) with one target per image")
    bake.add_argument("--sha", help="the git commit being built (adds cuda-X.Y-<sha7> tags)")
    bake.add_argument("--version", help="a release version (adds vV-cuda-X.Y tags)")
    bake.add_argument("--created", metavar="TIME", help="the OCI created label (default: now)")
    bake.add_argument("--cuda", metavar="X.Y", help="only this CUDA line ('cpu': the CPU image)")
    bake.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME",
        help="a build option, repeatable: zsh (zsh installed), nsys (the Nsight Systems CLI in "
        "the CUDA images; linux/amd64 only)",
    )
    bake.add_argument(
        "--platform",
        action="append",
        metavar="OS/ARCH",
        help="build only for this platform, repeatable (default: the catalog's platforms)",
    )
    registry(bake)

    lock = command("lock", "resolve each image's pinned packages into images/locks/IMAGE.txt (uv)")
    lock.add_argument("images", nargs="*", metavar="IMAGE", help="only these images")
    lock.add_argument(
        "--check",
        action="store_true",
        help="resolve nothing: say whether each lock is current, stale or missing (exit 1 if "
        "one is not current)",
    )
    lock.add_argument(
        "--root",
        metavar="DIR",
        default=".",
        help="the repository root the locks live under (default: the current directory)",
    )

    size = command("size", "a built image's sizes per layer group, checked against its size_budget")
    size.add_argument("image", metavar="IMAGE", help="the catalog name of the image")
    size.add_argument(
        "--oci",
        metavar="DIR",
        required=True,
        help="the image saved to a directory: an OCI layout (an unpacked docker save) or "
        "podman save --format docker-dir --compress",
    )
    size.add_argument("--json", action="store_true", help="print the sizes as JSON")

    audit = command(
        "audit", "judge each image's nvidia/cuda base under NVIDIA's container support policy"
    )
    audit.add_argument(
        "--today", metavar="YYYY-MM-DD", help="judge as of this date (default: today, UTC)"
    )
    audit.add_argument(
        "--warn-days",
        metavar="DAYS",
        type=bounded_int(0, 3650),
        default=90,
        help="report an end of life this many days ahead (default 90)",
    )
    audit.add_argument("--json", action="store_true", help="print the findings as JSON")
    audit.add_argument(
        "--pull",
        action="store_true",
        help="also pull each base (unless present) and start it once: an image printing "
        "NVIDIA's deprecation notice fails the audit",
    )
    audit.add_argument(
        "--runtime",
        metavar="CMD",
        help="the container command for --pull (default: docker, else podman), e.g. "
        "'podman --root DIR'",
    )
    audit.add_argument(
        "--run-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra option for the run of --pull, repeatable (--run-arg=--ulimit=nofile=1024)",
    )

    prepull = command(
        "prepull",
        "print a DaemonSet (YAML) per CUDA image that pulls it onto the nodes whose driver "
        "runs it, or with --values the Z2JH prePuller values for the images without CUDA",
    )
    prepull.add_argument(
        "--values",
        action="store_true",
        help="print Zero to JupyterHub values (prePuller.extraImages) instead of DaemonSets",
    )
    prepull.add_argument(
        "--namespace", metavar="NS", help="the DaemonSets' namespace (default: kubectl's)"
    )
    prepull.add_argument(
        "--pause-image",
        metavar="REF",
        help="the container keeping each pre-pull pod alive (default: the Kubernetes pause image)",
    )

    docs = command("docs", "print the README's 'which image for which driver' table (Markdown)")
    docs.add_argument(
        "--update",
        metavar="FILE",
        help="rewrite the table between its markers in FILE (images/README.md) instead",
    )


def run(args: argparse.Namespace) -> int:
    """Run one ``gpu-devbox images`` subcommand."""
    from gpu_devbox._version import __version__
    from gpu_devbox.catalog import CatalogError, default_catalog, load_catalog
    from gpu_devbox.images import bake, plan

    try:
        catalog = load_catalog(args.catalog) if args.catalog else default_catalog()
    except CatalogError as exc:
        raise CliError(str(exc)) from None
    command = args.images_command
    try:
        if command == "audit":
            from gpu_devbox.images import audit

            return audit.main(
                catalog,
                today=args.today,
                warn_days=args.warn_days,
                as_json=args.json,
                runtime=_runtime(args.runtime) if args.pull else None,
                run_args=args.run_arg,
            )
        if command == "prepull":
            return _prepull(catalog, args)
        everything = plan.plan(catalog, registry=getattr(args, "registry", None))
        builds = everything
        if getattr(args, "cuda", None) is not None:
            builds = plan.plan(catalog, registry=args.registry, cuda=args.cuda)
        if command == "lock":
            return _lock(everything, args)
        if command == "size":
            return _size(plan.find(everything, args.image), args)
        if command == "matrix":
            print_json(bake.matrix(builds))
        elif command == "tags":
            build = plan.find(everything, args.image)
            refs = plan.references(build, everything, sha=args.sha, version=args.version)
            if args.json:
                print_json(refs)
            else:
                sys.stdout.write("".join(f"{ref}\n" for ref in refs))
        elif command == "bake":
            options = bake.check_options(args.option)
            builds = bake.restrict(builds, args.platform, options)
            document = bake.bake(
                builds,
                everything,
                options=options,
                sha=plan.check_sha(args.sha) if args.sha else None,
                version=plan.check_version(args.version) if args.version else None,
                package_version=__version__,
                created=bake.check_created(args.created) if args.created else None,
            )
            print_json(document)
        elif command == "docs":
            return _docs(everything, args.update)
    except plan.ImagesError as exc:
        raise CliError(str(exc)) from None
    return 0


def _prepull(catalog: Catalog, args: argparse.Namespace) -> int:
    import yaml

    from gpu_devbox.images import prepull

    try:
        if args.values:
            header = (
                "# Zero to JupyterHub values: pre-pull the images without CUDA on every user "
                "node.\n# The CUDA images are pulled by `gpu-devbox images prepull` DaemonSets, "
                "only onto\n# nodes whose driver runs them.\n"
            )
            sys.stdout.write(header + yaml.safe_dump(prepull.z2jh_values(catalog), sort_keys=False))
            return 0
        documents = prepull.daemonsets(
            catalog,
            namespace=args.namespace,
            pause_image=args.pause_image or prepull.PAUSE_IMAGE,
        )
    except prepull.PrepullError as exc:
        raise CliError(str(exc)) from None
    if not documents:
        print("gpu-devbox images prepull: the catalog offers no CUDA image", file=sys.stderr)
        return 0
    # kubectl reads YAML anchors, but people read these: write every mapping out in full
    dumper = type("NoAliases", (yaml.SafeDumper,), {"ignore_aliases": lambda *_: True})
    sys.stdout.write(yaml.dump_all(documents, Dumper=dumper, sort_keys=False))
    return 0


def _runtime(command: str | None) -> list[str]:
    """The container command for ``audit --pull``."""
    import shlex
    import shutil

    if command is not None:
        argv = shlex.split(command)
        if not argv or shutil.which(argv[0]) is None:
            raise CliError(f"--runtime {command!r}: no such command")
        return argv
    for name in ("docker", "podman"):
        if shutil.which(name) is not None:
            return [name]
    raise CliError("--pull needs docker or podman (or --runtime CMD)")


def _lock(builds: tuple[ImageBuild, ...], args: argparse.Namespace) -> int:
    from gpu_devbox.images import lock, plan

    chosen = tuple(plan.find(builds, name) for name in args.images) or builds
    root = Path(args.root)
    if not (root / "images").is_dir():
        raise CliError(f"--root {args.root}: no images/ folder there (the repository root?)")
    if args.check:
        states = [(b, lock.status(b, root)) for b in chosen]
        for build, state in states:
            print(f"{state:8} {build.lock}")
        bad = [b.name for b, state in states if state != "current"]
        if bad:
            print(
                f"locks not current: {', '.join(bad)}; run `gpu-devbox images lock "
                f"{' '.join(bad)}` where the package indexes are reachable",
                file=sys.stderr,
            )
            return 1
        return 0
    for line in lock.write(chosen, root):
        print(line)
    return 0


def _size(build: ImageBuild, args: argparse.Namespace) -> int:
    from gpu_devbox.images import size

    measured = size.measure(args.oci)
    budget = build.image.size_budget
    over = budget is not None and measured.uncompressed > budget
    if args.json:
        print_json(
            {
                "image": build.name,
                "compressed": measured.compressed,
                "uncompressed": measured.uncompressed,
                "budget": budget,
                "within_budget": not over,
                "groups": [
                    {"group": g, "layers": n, "compressed": c, "uncompressed": u}
                    for g, n, c, u in measured.groups()
                ],
            }
        )
    else:
        sys.stdout.write(size.table(build.name, measured, budget))
    if over:
        assert budget is not None
        print(
            f"{build.name} is {size.human(measured.uncompressed)} uncompressed, over its budget "
            f"of {size.human(budget)} (the catalog's size_budget)",
            file=sys.stderr,
        )
        return 1
    return 0


def _docs(builds: tuple[ImageBuild, ...], update: str | None) -> int:
    from gpu_devbox.images import docs

    if update is None:
        sys.stdout.write(docs.table(builds) + "\n" + docs.matrix(builds))
        return 0
    path = Path(update)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {update}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        new = docs.replace_block(text, builds)
    except ValueError as exc:
        raise CliError(f"{update}: {exc}") from None
    if new != text:
        path.write_text(new, encoding="utf-8")
        print(f"updated the table in {update}")
    else:
        print(f"the table in {update} is current")
    return 0
