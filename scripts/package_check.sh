#!/usr/bin/env bash
# The package as its users get it. Builds a wheel from the working tree (its tracked and new
# files, copied to a temp dir so that a stale build/ cannot leak into the wheel), checks that the
# wheel holds every file of the package's source tree (the .lua scripts and py.typed included) and
# nothing else, installs it with the `cli` extra into a new venv, then, from a directory outside
# the checkout, runs `thread-pool --help`, a lease and `thread-pool status` against the Redis of
# $THREAD_POOL_REDIS_URL (else 127.0.0.1:6379) under a key prefix of its own, deleted afterwards.
# Any failure ends it with a line "package check FAILED: ...". PYTHON picks the interpreter
# (default python3); pip's cache is used as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
PYTHON="${PYTHON:-python3}"
pip_quiet=(--quiet --disable-pip-version-check)

fail() {
  echo "package check FAILED: $*" >&2
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/thread-pool-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src" "$tmp/dist" "$tmp/run"

# The working tree as git sees it (tracked files still present, plus new files not ignored): no
# .venv, build/, *.egg-info or __pycache__.
git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
  fail "$root is not a git checkout (the files to build are the ones git knows)"
git -C "$root" ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do
    if [ -f "$f" ]; then printf '%s\0' "$f"; fi
  done |
  tar --null --files-from=- -cf - | tar -xf - -C "$tmp/src"

# What the wheel must hold, listed before the build writes its *.egg-info there.
(cd "$tmp/src/src" && find . -type f | sed 's|^\./||' | sort) >"$tmp/src-files.txt"
[ -s "$tmp/src-files.txt" ] || fail "no files under src/"

"$PYTHON" -m venv "$tmp/venv" || fail "cannot create a venv with $PYTHON"
py="$tmp/venv/bin/python"

echo "building the wheel"
"$py" -m pip wheel "${pip_quiet[@]}" --no-deps --wheel-dir "$tmp/dist" "$tmp/src" ||
  fail "pip wheel could not build the package (see pip's output above)"
wheels=("$tmp"/dist/*.whl)
[ "${#wheels[@]}" -eq 1 ] && [ -f "${wheels[0]}" ] ||
  fail "expected one wheel in $tmp/dist, found: $(ls "$tmp/dist")"
wheel=${wheels[0]}
echo "built $(basename "$wheel")"

# Every file under src/<package>/ must be in the wheel at the same path, and the wheel must hold
# nothing but those packages and its .dist-info.
"$py" - "$wheel" "$tmp/src-files.txt" <<'EOF' || fail "the wheel does not match the source tree (above)"
import sys
import zipfile
from pathlib import Path

wheel, listing = sys.argv[1], Path(sys.argv[2])
names = {n for n in zipfile.ZipFile(wheel).namelist() if not n.endswith("/")}
expected = {n for n in listing.read_text().splitlines() if "/" in n}
packages = sorted({n.split("/", 1)[0] for n in expected})
packaged = {n for n in names if n.split("/", 1)[0] in packages}
problems = []
missing = sorted(expected - packaged)
if missing:
    problems.append(f"{len(missing)} file(s) of src/ missing from the wheel:")
    problems += [f"  {n}" for n in missing]
stale = sorted(packaged - expected)
if stale:
    problems.append(f"{len(stale)} file(s) in the wheel that src/ does not have:")
    problems += [f"  {n}" for n in stale]
foreign = sorted(n for n in names - packaged if ".dist-info/" not in n)
if foreign:
    problems.append(f"{len(foreign)} file(s) in the wheel outside the packages of src/:")
    problems += [f"  {n}" for n in foreign]
lua = sorted(n for n in packaged if n.endswith(".lua"))
if not lua:
    problems.append("no .lua script in the wheel")
if not any(n.endswith("/py.typed") for n in packaged):
    problems.append("no py.typed in the wheel")
for line in problems:
    print(line, file=sys.stderr)
if problems:
    sys.exit(1)
data = sorted(n for n in packaged if not n.endswith(".py"))
print(f"the wheel holds all {len(expected)} files of src/ ({', '.join(packages)}),"
      f" {len(data)} of them data: {len(lua)} .lua, "
      + ", ".join(n for n in data if not n.endswith(".lua")))
EOF

echo "installing it with the cli extra into a new venv"
"$py" -m pip install "${pip_quiet[@]}" "${wheel}[cli]" ||
  fail "pip could not install $(basename "$wheel")[cli] (see pip's output above)"

# From an empty directory, with nothing on PYTHONPATH: only the installed copy can be imported.
cd "$tmp/run"
unset PYTHONPATH
status=0
"$tmp/venv/bin/thread-pool" --help >"$tmp/help.txt" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  cat "$tmp/help.txt" >&2
  fail "'thread-pool --help' exited with status $status (output above)"
fi
grep -q "status" "$tmp/help.txt" || {
  cat "$tmp/help.txt" >&2
  fail "'thread-pool --help' does not list the status command (output above)"
}
echo "thread-pool --help: ok"

"$py" - "$tmp/venv/bin/thread-pool" <<'EOF' || fail "the lease example failed against the installed package (above)"
import json
import os
import subprocess
import sys
import sysconfig
import uuid
from pathlib import Path

import redis
from redis.cluster import RedisCluster

import thread_pool
from thread_pool import StoreUnavailable, ThreadPool

installed = Path(sysconfig.get_paths()["purelib"]).resolve()
where = Path(thread_pool.__file__).resolve()
if installed not in where.parents:
    sys.exit(f"thread_pool was imported from {where}, not from the new venv ({installed})")

url = os.environ.get("THREAD_POOL_REDIS_URL") or "redis://127.0.0.1:6379/0"
prefix = f"pkgcheck.{uuid.uuid4().hex}"
key = "doc-42"
ids = [f"thread_pkgcheck_{uuid.uuid4().hex[:8]}_{n}" for n in (1, 2)]

pool = ThreadPool(redis_url=url, key_prefix=prefix)
try:
    try:
        added = pool.add_threads(key, ids)
    except StoreUnavailable as exc:
        print(f"no Redis at {url} (set THREAD_POOL_REDIS_URL): {exc}", file=sys.stderr)
        sys.exit(1)
    assert added == 2, f"add_threads added {added} threads, not 2"
    with pool.lease(key) as lease:
        assert lease.key == key, lease.key
        assert lease.thread_id in ids, lease.thread_id
        assert isinstance(lease.token, str) and lease.token, lease.token
        assert isinstance(lease.fence, int) and lease.fence >= 1, lease.fence
        assert lease.remaining() > 0, lease.remaining()
        held = pool.stats(key)
        assert (held.threads, held.leased, held.idle) == (2, 1, 1), held
    assert lease.released, "the lease was not released on leaving the with block"
    after = pool.stats(key)
    assert (after.leased, after.idle, after.granted) == (0, 2, 1), after
    print(f"lease of {lease.thread_id} (fence {lease.fence}) granted and released: ok")

    # The CLI's admin scripts, read from the installed package too.
    cli = subprocess.run(
        [sys.argv[1], "status", key, "--json", "--redis-url", url, "--key-prefix", prefix],
        capture_output=True,
        text=True,
        check=False,
    )
    if cli.returncode != 0:
        sys.exit(f"'thread-pool status' exited with {cli.returncode}:\n{cli.stdout}{cli.stderr}")
    shown = sorted(t["thread_id"] for t in json.loads(cli.stdout)["threads"])
    assert shown == sorted(ids), shown
    print("thread-pool status: ok")
finally:
    pool.close()
    # Every key under this run's own prefix, and no other.
    cluster = pool.settings.redis_cluster
    client = RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)
    try:
        for name in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
            client.delete(name)
    except redis.RedisError as exc:
        print(f"could not delete the keys {prefix}:*: {exc}", file=sys.stderr)
    finally:
        client.close()
EOF
echo "package check passed: $(basename "$wheel")"
