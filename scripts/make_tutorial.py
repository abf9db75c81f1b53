#!/usr/bin/env python3
# make_tutorial.py: regenerates the command outputs in docs/tutorial.md, so none is pasted by hand.
# Each block in the page is
#   <!-- run: COMMAND -->            (or run-exact: the output must not change between runs)
#   ```text
#   ...what COMMAND printed...
#   ```
#   <!-- end run -->
# Default: run every COMMAND from the repository root (bash, after a build: ./run.sh or ./test.sh)
# and write the outputs into the page (atomically). --check (a ctest): run them into a scratch
# directory instead of docs/figures/, fail if one exits non-zero or a run-exact block's output
# differs from the page, and leave the page alone. Blocks marked run-nocheck are skipped by --check
# (./run.sh itself: it configures and builds, which a test must not do under a running ctest).
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "tutorial.md")
BLOCK = re.compile(r"<!-- (run|run-exact|run-nocheck): (.*?) -->\n```text\n(.*?)```\n<!-- end run -->", re.S)


def run(command, figures):
    env = dict(os.environ, OMP_WAIT_POLICY="passive", PYTHONPATH=os.path.join(ROOT, "build", "python"))
    cmd = command.replace("docs/figures/", figures + "/") if figures else command
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    # What the command printed about its files names them where the page says they go.
    return r.returncode, r.stdout.replace(figures + "/", "docs/figures/") if figures else r.stdout


def main(argv):
    check = "--check" in argv[1:]
    page = open(PAGE).read()
    failures, ran = [], 0
    scratch = tempfile.mkdtemp(prefix="tutorial-") if check else None

    def replace(m):
        nonlocal ran
        kind, command, old = m.group(1), m.group(2), m.group(3)
        if check and kind == "run-nocheck":
            return m.group(0)
        status, out = run(command, scratch)
        ran += 1
        if status != 0:
            failures.append(f"'{command}' exited {status}:\n{out[-2000:]}")
        elif check and kind == "run-exact" and out != old:
            failures.append(f"'{command}' printed something else than docs/tutorial.md shows (rerun "
                            f"scripts/make_tutorial.py):\n--- page\n{old}--- now\n{out}")
        print(f"{'ok  ' if status == 0 else 'FAIL'} {command}", flush=True)
        return f"<!-- {kind}: {command} -->\n```text\n{out}```\n<!-- end run -->"

    try:
        new = BLOCK.sub(replace, page)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if ran == 0:
        failures.append("docs/tutorial.md has no <!-- run: ... --> blocks")
    if failures:
        print("\n\n".join(failures), file=sys.stderr)
        return 1
    if not check:
        tmp = PAGE + f".tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(new)
        os.replace(tmp, PAGE)
        print(f"wrote {PAGE} ({ran} commands)")
    else:
        print(f"{ran} commands ran, every one as docs/tutorial.md says")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
