"""The README and docs/*.md checked against the code, so that they cannot drift from it.

What is checked, for README.md and every docs/*.md:

* command lines: every `stylegan SUBCOMMAND ...` (also `python -m stylegan`, `torchrun ... -m
  stylegan`, and one quoted inside another command, e.g. after `ssh host`) in a bash / sh /
  console code block (unlabelled blocks show output), and every inline code span that is such a
  command line; inline `--option` mentions and `stylegan.x.y` names in the prose must exist. The
  subcommand must exist; its arguments are parsed by click's own parser of that subcommand (no
  callback runs, nothing is trained or downloaded): an unknown option, an option without its
  value, a surplus positional argument, or a value outside a `click.Choice` / not a number where
  the option takes a number is a failure naming the file and line. Synopsis lines
  (`[--psi 0.7] [--noise const|none]`) are checked for option names only. `python SCRIPT.py
  --option` lines naming a script of this repository check the script exists and that its
  argparse parser declares the options (read with `ast`, nothing is run); any other path of the
  repository a command line names (scripts/, bench/, tests/, docs/, src/) must exist.
* `--help` output: a code block that starts with click's `Usage: stylegan ...` must equal the
  real `--help` output of that command (whitespace at line ends aside).
* Python blocks run: each ```python block is executed in a fresh namespace, in a temporary
  working directory, offline (no download, a private cache), on tiny networks. The names the
  docs take as given (`G`, `D`, `z`, `c`, `ws`, `seeds`, `reals`, `batch_size`) are provided by
  `context()`. Where a snippet names a large file (an official pickle, a checkpoint, LPIPS
  weights, the MNIST dataset) or asks for a GPU or many steps, `SNIPPETS` below says what is put
  in its place: a tiny file of the same kind under the same name, or a small textual
  substitution. Snippets that cannot run offline are listed there with the reason; they are
  still compiled and their imports executed. A python block not in the table runs as is with
  the context names.
* links: every relative link (and image) in README.md and docs/*.md points to an existing file
  of the repository, and every `#anchor` (same file or `file.md#anchor`) names a heading of
  that file (GitHub's anchor rules).
* layout: README's "Layout" section names every top-level package and module of src/stylegan,
  in the order of tests/test_architecture.py's layers (the README says imports point down it).
* citations: no source file cites a "SPEC" file (there is none in the repository).
"""
from __future__ import annotations

import ast
import dataclasses
import re
import shlex
import shutil
import textwrap
from pathlib import Path
from typing import Callable, Iterator, Optional

import click
import pytest
import torch
from click.testing import CliRunner

from stylegan.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_LANGS = {"bash", "sh", "shell", "console", "zsh"}  # unlabelled blocks show output, not commands
ENV = re.compile(r"^[A-Za-z_]\w*=")  # an environment assignment before a command
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")  # NET, N, FILE, RUN_DIR: stands for a value
REPO_DIRS = ("scripts/", "bench/", "tests/", "docs/", "src/")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# ----------------------------------------------------------------------------------- markdown

@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block: its file, the line of its first code line, its info string, its text."""

    path: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{rel(self.path)}:{self.line}"


FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


def read_blocks(path: Path) -> tuple[list[Block], list[tuple[int, str]]]:
    """(fenced blocks, the other lines as (line number, text))."""
    blocks, prose = [], []
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        indent, fence, lang = m.groups()
        start, body = i + 1, []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        blocks.append(Block(path, start + 1, lang.lower(), "\n".join(body)))
        i += 1
    return blocks, prose


DOCS = {path: read_blocks(path) for path in DOC_FILES}
ALL_BLOCKS = [b for blocks, _ in DOCS.values() for b in blocks]
PYTHON_BLOCKS = [b for b in ALL_BLOCKS if b.lang in ("python", "py")]


def inline_spans(path: Path) -> Iterator[tuple[int, str]]:
    """Inline code spans of the prose (outside fenced blocks) as (line, text)."""
    for line_no, line in DOCS[path][1]:
        for m in re.finditer(r"(`+)(.+?)\1", line):
            yield line_no, m.group(2).strip()


# ----------------------------------------------------------------------------------- command lines

@dataclasses.dataclass(frozen=True)
class CommandLine:
    where: str
    argv: tuple[str, ...]  # after `stylegan`
    synopsis: bool = False  # `[--opt VALUE]` placeholders: option names only
    mention: bool = False  # an inline span: `stylegan generate --projected-w` names an option


def shell_lines(block: Block) -> Iterator[tuple[int, str]]:
    """Logical lines of a shell block (backslash continuations joined, `$ ` prompts removed)."""
    pending, first = "", 0
    for k, line in enumerate(block.text.split("\n")):
        if not pending:
            first = block.line + k
        stripped = line.rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full.startswith("$ "):
            full = full[2:]
        if full:
            yield first, full


def split_words(text: str) -> Optional[list[str]]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:  # an unbalanced quote: prose, not a command line
        return None


def stylegan_argv(words: list[str]) -> Iterator[tuple[list[str], bool]]:
    """Each stylegan invocation in a command line: (arguments after `stylegan`, is a synopsis)."""
    for i, w in enumerate(words):
        # `stylegan`, `python -m stylegan`, `torchrun ... -m stylegan`, `VAR=value stylegan`
        if w == "stylegan" and (i == 0 or words[i - 1] == "-m" or all(ENV.match(x) for x in words[:i])):
            args = words[i + 1:]
            synopsis = any(a.startswith("[") for a in args)
            if synopsis:  # `[--noise const|none]` -> `--noise const`
                args = [a.strip("[]").split("|")[0] for a in args]
            yield [a for a in args if a != "..."], synopsis
            return
        if " " in w and re.match(r"^(stylegan|python3? -m stylegan|torchrun .*-m stylegan) ", w):
            inner = split_words(w)  # a command quoted inside another, e.g. `ssh host 'stylegan ...'`
            if inner:
                yield from stylegan_argv(inner)


def command_lines() -> list[CommandLine]:
    found = []
    for path in DOC_FILES:
        for block in DOCS[path][0]:
            if block.lang not in SHELL_LANGS:
                continue
            for line_no, text in shell_lines(block):
                words = split_words(text)
                for argv, synopsis in stylegan_argv(words or []):
                    found.append(CommandLine(f"{rel(path)}:{line_no}", tuple(argv), synopsis))
        for line_no, span in inline_spans(path):
            words = split_words(span)
            if words and words[0] in ("stylegan", "torchrun", "python"):
                for argv, synopsis in stylegan_argv(words):
                    if argv:  # a bare `stylegan` names the program
                        found.append(CommandLine(f"{rel(path)}:{line_no}", tuple(argv), synopsis, mention=True))
    return found


COMMAND_LINES = command_lines()
NUMBER_TYPES = (click.types.IntParamType, click.types.FloatParamType)


def check_values(cmd: click.Command, ctx: click.Context, opts: dict) -> list[str]:
    """Values given to Choice or numeric options that the option would refuse."""
    problems = []
    for param in cmd.params:
        if param.name not in opts or not isinstance(param.type, (click.Choice, *NUMBER_TYPES)):
            continue
        values = opts[param.name]
        for value in values if isinstance(values, (list, tuple)) else [values]:
            if isinstance(value, str) and PLACEHOLDER.match(value):
                continue
            try:
                param.type.convert(value, param, ctx)
            except click.BadParameter as e:
                problems.append(f"{param.opts[0]} {value!r}: {e.format_message()}")
    return problems


def check_command(line: CommandLine) -> list[str]:
    if not line.argv:
        return ["no subcommand"]
    group_ctx = click.Context(main, info_name="stylegan")
    problems = []
    names, args = line.argv[0], list(line.argv[1:])
    for name in names.split("/"):  # `stylegan generate/mix/video/figures --precision bf16`
        cmd = main.get_command(group_ctx, name)
        if cmd is None:
            problems.append(f"no subcommand {name!r} (have: {', '.join(main.list_commands(group_ctx))})")
            continue
        ctx = click.Context(cmd, info_name=name, parent=group_ctx)
        try:
            opts, extra, _ = cmd.make_parser(ctx).parse_args(list(args))
        except click.BadOptionUsage as e:
            if not (line.mention and args and e.option_name == args[-1]):  # `--projected-w` named alone
                problems.append(f"stylegan {name}: {e.format_message()}")
            continue
        except click.UsageError as e:
            problems.append(f"stylegan {name}: {e.format_message()}")
            continue
        if extra:
            problems.append(f"stylegan {name}: unexpected extra arguments {extra}")
        if not line.synopsis:
            problems += [f"stylegan {name}: {p}" for p in check_values(cmd, ctx, opts)]
    return problems


def test_the_docs_show_command_lines():
    """The extraction works: a change of the parser that silently finds nothing would pass all."""
    subcommands = {line.argv[0] for line in COMMAND_LINES if line.argv}
    assert len(COMMAND_LINES) > 50 and {"train", "generate", "metrics", "selftest"} <= subcommands


@pytest.mark.parametrize("line", COMMAND_LINES, ids=lambda c: f"{c.where}:{' '.join(c.argv[:1])}")
def test_command_line_parses(line):
    problems = check_command(line)
    assert not problems, f"{line.where}: stylegan {' '.join(line.argv)}\n  " + "\n  ".join(problems)


def argparse_options(script: Path) -> set[str]:
    """The option strings of every `add_argument(...)` call in a script (read, not run)."""
    options = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            options |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")}
    return options


def repo_path_problems() -> list[str]:
    problems = []
    for path in DOC_FILES:
        for block in DOCS[path][0]:
            if block.lang not in SHELL_LANGS:
                continue
            for line_no, text in shell_lines(block):
                words = split_words(text) or []
                where = f"{rel(path)}:{line_no}"
                for i, w in enumerate(words):
                    if w.startswith(REPO_DIRS) and not (ROOT / w).exists():
                        problems.append(f"{where}: {w} does not exist")
                    if w.startswith(("python", "python3")) and i + 1 < len(words) and words[i + 1].endswith(".py"):
                        script = ROOT / words[i + 1]
                        if not script.is_file() or "argparse" not in script.read_text(encoding="utf-8"):
                            continue
                        declared = argparse_options(script)
                        for opt in words[i + 2:]:
                            opt = opt.split("=")[0]
                            if opt.startswith("--") and opt not in declared:
                                problems.append(f"{where}: {words[i + 1]} has no option {opt}")
    return problems


def test_command_lines_name_existing_files_and_script_options():
    problems = repo_path_problems()
    assert not problems, "\n".join(problems)


def subcommand_options() -> dict[str, set[str]]:
    ctx = click.Context(main, info_name="stylegan")
    return {name: {o for p in main.get_command(ctx, name).params for o in (*p.opts, *p.secondary_opts)}
            for name in main.list_commands(ctx)}


def script_options() -> dict[str, set[str]]:
    """{'bench/bench.py': its argparse options} for the repository's Python scripts."""
    return {rel(p): argparse_options(p) for d in ("bench", "scripts") for p in sorted((ROOT / d).glob("*.py"))}


def option_mention_problems() -> list[str]:
    """Inline `--option` spans in the prose: in a section whose heading names `stylegan X`, an
    option of X; after a script name (`bench.py --compare`), an option of that script; elsewhere,
    an option of some subcommand or repository script. (Spans that are whole `stylegan ...`
    command lines are checked by test_command_line_parses.)"""
    commands, scripts = subcommand_options(), script_options()
    everything = set().union(*commands.values(), *scripts.values())
    problems = []
    for path in DOC_FILES:
        section = None
        for line_no, line in DOCS[path][1]:
            heading = re.match(r"^#{1,6}\s+(.*)", line)
            if heading:
                m = re.search(r"`stylegan ([\w-]+)", heading.group(1))
                section = m.group(1) if m and m.group(1) in commands else None
                continue
            for m in re.finditer(r"(`+)(.+?)\1", line):
                words = split_words(m.group(2)) or []
                if not words or words[0] in ("stylegan", "torchrun") or "-m" in words:
                    continue
                script = next((w for w in words if w.endswith(".py")), None)
                if script is not None:
                    known = next((opts for name, opts in scripts.items() if name.endswith(script)), None)
                    scope = f"{script}"
                    if known is None:
                        continue
                else:
                    known, scope = (commands[section], f"stylegan {section}") if section else (everything, "any")
                for w in words:
                    for opt in w.strip("[]").split("=")[0].split("/"):  # `--mirror/--no-mirror`
                        if opt.startswith("--") and len(opt) > 2 and opt not in known:
                            problems.append(f"{rel(path)}:{line_no}: `{m.group(2)}`: {scope} has no option {opt}")
    return problems


def test_options_named_in_the_prose_exist():
    problems = option_mention_problems()
    assert not problems, "\n".join(problems)


TOP_PACKAGES = ("ops", "nn", "models", "perf", "io", "data", "metrics", "synth", "training", "selftest",
                "explore", "cli", "util", "device", "distributed", "version")
DOTTED = re.compile(rf"(?<![\w./-])((?:stylegan\.)?(?:{'|'.join(TOP_PACKAGES)})(?:\.\w+)+)")


def resolves(dotted: str) -> bool:
    """`stylegan.synth.sample.generate` names an importable module or an attribute of one."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
            break
        except ModuleNotFoundError:
            continue
    else:
        return False
    for part in parts[i:]:
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def test_dotted_names_in_the_prose_exist():
    """Every inline `stylegan.x.y` / `perf.fast_paths` / `nn.runtime.Runtime` names something real."""
    problems, seen = [], 0
    for path in DOC_FILES:
        for line_no, span in inline_spans(path):
            for m in DOTTED.finditer(span):
                name = m.group(1)
                if name.endswith((".py", ".md")):
                    continue
                seen += 1
                full = name if name.startswith("stylegan.") else f"stylegan.{name}"
                if not resolves(full):
                    problems.append(f"{rel(path)}:{line_no}: `{span}`: {full} does not exist")
    assert seen > 20 and not problems, "\n".join(problems)


# ----------------------------------------------------------------------------------- --help output

def help_blocks(blocks: list[Block] = ALL_BLOCKS) -> list[tuple[Block, list[str]]]:
    out = []
    for block in blocks:
        first = block.text.lstrip("\n").split("\n", 1)[0]
        m = re.match(r"Usage: stylegan(?: ([\w-]+))? ", first)
        if m:
            out.append((block, [m.group(1)] if m.group(1) else []))
    return out


def check_help_block(block: Block, argv: list[str]) -> None:
    result = CliRunner().invoke(main, [*argv, "--help"], prog_name="stylegan", terminal_width=100)
    assert result.exit_code == 0, result.output
    norm = lambda s: [line.rstrip() for line in s.strip("\n").split("\n")]  # noqa: E731
    assert norm(block.text) == norm(result.output), f"{block.where}: `stylegan {' '.join(argv)} --help` changed"


def test_help_output_is_current():
    """Every `--help` output the docs show is the real one (none shown today: nothing to go stale)."""
    for block, argv in help_blocks():
        check_help_block(block, argv)


# ----------------------------------------------------------------------------------- links

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def github_anchor(heading: str) -> str:
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> their text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # GitHub drops punctuation, keeps letters, digits, _ and -
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, seen = set(), {}
    for _, line in (read_blocks(path)[1] if path not in DOCS else DOCS[path][1]):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug = github_anchor(m.group(1))
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def link_problems(path: Path) -> list[str]:
    problems = []
    for line_no, line in DOCS[path][1]:
        line = re.sub(r"(`+).+?\1", "", line)  # links inside inline code are not links
        for m in LINK.finditer(line):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            where = f"{rel(path)}:{line_no}: ({target})"
            if not dest.exists():
                problems.append(f"{where}: no such file")
            elif not dest.is_relative_to(ROOT):
                problems.append(f"{where}: points outside the repository")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{where}: {rel(dest)} has no heading with anchor #{anchor}")
    return problems


@pytest.mark.parametrize("path", DOC_FILES, ids=rel)
def test_links_point_to_existing_files_and_headings(path):
    problems = link_problems(path)
    assert not problems, "\n".join(problems)


def test_anchor_rules():
    assert github_anchor("What the CPU demo produces") == "what-the-cpu-demo-produces"
    assert github_anchor("`stylegan mix`: style mixing (Fig. 3)") == "stylegan-mix-style-mixing-fig-3"
    assert github_anchor("CPU presets") == "cpu-presets"


# ----------------------------------------------------------------------------------- layout

def test_readme_layout_names_every_top_level_package_and_module():
    """README's Layout lists every package / module of src/stylegan in the import order that
    tests/test_architecture.py enforces (it says: imports pointing down this list only)."""
    from test_architecture import RANK

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert section, "README.md has no '## Layout' section"
    named = [re.sub(r"(/|\.py)$", "", s) for s in re.findall(r"`([\w./]+)`", section.group(1))]
    pkg = ROOT / "src" / "stylegan"
    top = {p.stem for p in pkg.glob("*.py") if not p.stem.startswith("__")}
    top |= {p.name for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    missing = sorted(top - set(named))
    assert not missing, f"README.md's Layout does not name {missing}"
    order = [n for n in named if n in top]
    ranks = [RANK[n] for n in order]
    assert ranks == sorted(ranks), f"README.md's Layout is not in the layers' order: {order}"


# ----------------------------------------------------------------------------------- python snippets

def tiny_networks(res: int = 32):
    """A 32 px RGB StyleGAN2 G / D small enough to run every figure and API in the docs at once."""
    from stylegan.models import DiscriminatorConfig, Generator, GeneratorConfig, MappingConfig, build_discriminator

    G = Generator(GeneratorConfig(z_dim=16, w_dim=16, img_resolution=res, channel_base=8 * res, channel_max=16,
                                  mapping=MappingConfig(num_layers=2)))
    D = build_discriminator(DiscriminatorConfig(img_resolution=res, channel_base=8 * res, channel_max=16,
                                                mbstd_group_size=2))
    return G.eval(), D


def context() -> dict:
    """The names the docs' snippets take as given."""
    G, D = tiny_networks()
    z = torch.randn(2, G.z_dim)
    return {"G": G, "D": D, "z": z, "c": None, "ws": G.mapping(z).detach(), "seeds": [0, 1],
            "reals": torch.rand(4, 3, 32, 32) * 2 - 1, "batch_size": 4}


def write_generator(path: Path, G=None) -> None:
    from stylegan.io.checkpoint import save_checkpoint

    save_checkpoint(path, {"G_ema": G if G is not None else tiny_networks()[0]})


def write_stock_generator(path: Path) -> None:
    """The smallest generator with rosinality's stock channel table (8 px, 512 channels)."""
    from stylegan.models import Generator, GeneratorConfig, MappingConfig

    write_generator(path, Generator(GeneratorConfig(z_dim=32, w_dim=32, img_resolution=8, channel_base=32768,
                                                    channel_max=512, mapping=MappingConfig(num_layers=1))))


def write_official_pickle(tmp: Path, *names: str) -> None:
    from test_official import write_fake_snapshot

    for name in names:
        write_fake_snapshot(tmp, name=name)


def write_tf1_pickle(tmp: Path, name: str) -> None:
    import numpy as np
    from test_official_tf1 import D_DEFAULTS, G_DEFAULTS, tf1_discriminator_variables, tf1_generator_variables
    from test_official_tf1 import write_tf1_pickle as write

    g_over = dict(resolution=32, num_channels=3, fmap_base=64, fmap_max=16, latent_size=16, dlatent_size=16,
                  mapping_fmaps=16, mapping_layers=2)
    d_over = dict(resolution=32, num_channels=3, fmap_base=64, fmap_max=16)
    rng = np.random.default_rng(0)
    write(tmp, g_over, d_over, tf1_generator_variables(dict(G_DEFAULTS, **g_over), rng),
          tf1_discriminator_variables(dict(D_DEFAULTS, **d_over), rng), name=name)


def write_dataset(tmp: Path, name: str) -> None:
    from test_training_helpers import make_dataset

    make_dataset(tmp / name, n=16, labels=True)


def write_image(path: Path) -> None:
    import numpy as np
    import PIL.Image

    PIL.Image.fromarray((np.random.default_rng(0).random((48, 48, 3)) * 255).astype("uint8")).save(path)


def write_fake_lpips(path: Path) -> None:
    from metrics_helpers import save_fake_detector

    save_fake_detector(path)


@dataclasses.dataclass(frozen=True)
class Snippet:
    """How one python block of the docs runs here.

    files: {name: writer(path)} -- tiny stand-ins written into the working directory first.
    subs: (old, new) replacements of the snippet's text; `old` must occur in it.
    skip: why it cannot run offline (then only its imports run).
    """

    files: dict = dataclasses.field(default_factory=dict)
    subs: tuple[tuple[str, str], ...] = ()
    skip: str = ""
    teardown: Optional[Callable[[dict], None]] = None


CPU = ('device="cuda"', 'device="cpu"')  # the docs show a GPU; the test runs on the CPU
SNIPPETS: dict[tuple[str, str], Snippet] = {
    # (file, a string that picks the block): how it runs
    ("README.md", 'stylegan.load("ffhq.safetensors")'): Snippet(files={"ffhq.safetensors": write_generator}),
    ("docs/datasets.md", "open_dataset("): Snippet(
        files={"mnist": lambda p: write_dataset(p.parent, "mnist")}, subs=(('"builtin:mnist"', '"mnist"'),)),
    ("docs/explore.md", "create_app("): Snippet(
        files={"ffhq.safetensors": write_generator}, subs=(CPU,),
        teardown=lambda ns: ns["app"].state.explorer.shutdown()),
    ("docs/interop.md", 'stylegan.load("550000.pt")'): Snippet(files={
        "550000.pt": lambda p: shutil.copy(ROOT / "tests" / "data" / "rosinality_sg2_64.pt", p),
        "ffhq.safetensors": write_stock_generator}),
    ("docs/metrics.md", "compute_metric("): Snippet(
        skip="fid50k_full needs the Inception detector (a download) and 50k generated images"),
    ("docs/official.md", "load_official("): Snippet(files={
        "network-snapshot-000200.pkl": lambda p: write_official_pickle(p.parent, p.name),
        "snapshot.pkl": lambda p: write_official_pickle(p.parent, p.name)}),
    ("docs/official.md", "karras2019stylegan-ffhq-1024x1024.pkl"): Snippet(files={
        "karras2019stylegan-ffhq-1024x1024.pkl": lambda p: write_tf1_pickle(p.parent, p.name)}),
    ("docs/tools.md", "style_mixing_grid("): Snippet(subs=(CPU,)),
    ("docs/tools.md", "project("): Snippet(
        files={"face.png": write_image, "vgg16.pt": write_fake_lpips},
        subs=(CPU, ("num_steps=1000", "num_steps=3"))),
    ("docs/training.md", "resolve_preset("): Snippet(
        files={"mnist": lambda p: write_dataset(p.parent, "mnist")},
        subs=(('"builtin:mnist"', '"mnist"'), ("total_kimg=5", "total_kimg=0.016"))),
}


def snippet_for(block: Block) -> tuple[Optional[tuple[str, str]], Snippet]:
    keys = [k for k in SNIPPETS if k[0] == rel(block.path) and k[1] in block.text]
    assert len(keys) <= 1, f"{block.where}: several SNIPPETS entries pick this block: {keys}"
    return (keys[0], SNIPPETS[keys[0]]) if keys else (None, Snippet())


def test_every_snippets_entry_picks_one_block():
    for key in SNIPPETS:
        picked = [b.where for b in PYTHON_BLOCKS if rel(b.path) == key[0] and key[1] in b.text]
        assert len(picked) == 1, f"SNIPPETS entry {key} picks {picked or 'no python block'}: update the table"


def only_imports(code: str) -> str:
    tree = ast.parse(code)
    tree.body = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return ast.unparse(tree)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.where)
def test_python_snippet_runs(block, tmp_path, monkeypatch, offline):
    _, how = snippet_for(block)
    code = block.text
    for old, new in how.subs:
        assert old in code, f"{block.where}: the substitution of {old!r} no longer applies: update SNIPPETS"
        code = code.replace(old, new)
    code = "\n" * (block.line - 1) + textwrap.dedent(code)  # tracebacks name the docs' line numbers
    compiled = compile(code, block.where, "exec")
    if how.skip:  # cannot run offline by design (the table says why): its imports must still run
        exec(compile(only_imports(code), block.where, "exec"), {})
        return
    monkeypatch.chdir(tmp_path)
    for name, write in how.files.items():
        write(tmp_path / name)
    ns = {"__name__": "__docs__", **context()}
    try:
        exec(compiled, ns)
    finally:
        if how.teardown is not None and "app" in ns:
            how.teardown(ns)


# ----------------------------------------------------------------------------------- citations

def test_sources_cite_papers_not_a_spec_file():
    """There is no SPEC file in the repository: comments cite the paper's section instead."""
    found = [f"{rel(p)}:{i}" for p in sorted((ROOT / "src").rglob("*.py"))
             for i, line in enumerate(p.read_text(encoding="utf-8").split("\n"), 1) if re.search(r"\bSPEC\b", line)]
    assert not found, f"citations of a SPEC file: {found}"


def test_help_check_catches_a_changed_help():
    """The --help check works although the docs show no help output today."""
    shown = CliRunner().invoke(main, ["info", "--help"], prog_name="stylegan", terminal_width=100).output
    block = Block(ROOT / "docs" / "x.md", 1, "", shown)
    assert help_blocks([block]) == [(block, ["info"])]
    check_help_block(block, ["info"])
    with pytest.raises(AssertionError, match="changed"):
        check_help_block(dataclasses.replace(block, text=shown + "  --gone  an old option\n"), ["info"])
