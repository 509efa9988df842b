"""Every package README's quick start runs as written, in a fresh process from an empty folder.

Convention: the quick start is the first ```python block under a heading containing "Quick start".
"""

import os
import subprocess
import sys
import textwrap

import pytest
from monorepo import load_packages, quick_start

PACKAGES = load_packages()
TIMEOUT_S = 300  # the budget is ~2 minutes on 2 cores; the margin absorbs a busy machine


@pytest.mark.parametrize("name", PACKAGES)
def test_quick_start_runs(name, tmp_path):
    pkg = PACKAGES[name]
    code = quick_start(pkg.readme.read_text())
    assert code, f"{name}: README has no ```python block under a 'Quick start' heading"
    script = tmp_path / "quick_start.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, script.name],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"{name} quick start failed:\n{code}\n{proc.stdout}\n{proc.stderr}"


# ---- the extractor ----

FENCE = "```"


def readme(body: str) -> str:
    return textwrap.dedent(body).replace("'''", FENCE)


def test_takes_the_first_python_block_of_the_section():
    text = readme("""\
        # pkg
        '''python
        not_this()
        '''
        ## Quick start
        '''bash
        pip install pkg
        '''
        '''python
        # a comment, not a heading
        this()
        '''
        '''python
        nor_this()
        '''
        """)
    assert quick_start(text) == "# a comment, not a heading\nthis()\n"


@pytest.mark.parametrize(
    "heading", ["## Quick start", "### Quickstart", "## Quick-start (CPU, 1 min)", "# QUICK START"]
)
@pytest.mark.parametrize("info", ["python", "py", "Python title='demo'", "{.python}"])
def test_tolerates_heading_and_info_string_variants(heading, info):
    text = readme(f"""\
        {heading}

        Some prose.

        ''' {info}
        run()
        '''
        """)
    assert quick_start(text) == "run()\n"


def test_accepts_subsections_and_indented_or_tilde_fences():
    text = readme("""\
        ## Quick start
        ### On CPU
        1. Run:
           ~~~~python
           run()
           ~~~~
        """)
    assert quick_start(text) == "run()\n"


@pytest.mark.parametrize(
    "body",
    [
        "# pkg\n'''python\nrun()\n'''\n",  # no quick-start heading
        "## Quick start\n'''bash\npip install pkg\n'''\n## API\n'''python\nrun()\n'''\n",  # section ended
    ],
)
def test_finds_nothing_outside_a_quick_start_section(body):
    assert quick_start(readme(body)) is None


def test_a_later_quick_start_section_counts():
    body = "## Quick start\nSee below.\n## API\n## Quick start (GPU)\n'''python\nrun()\n'''\n"
    assert quick_start(readme(body)) == "run()\n"
