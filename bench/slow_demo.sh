#!/usr/bin/env bash
# Run scripts/demo.sh as a machine FACTOR times slower would (default 2.5, about the slowest 2-core
# machine this project has met): the whole script, set-up check, training, figures and report, runs
# in a cgroup whose CPU quota is nproc / FACTOR cores, in periods of 10 ms so that the two training
# processes are slowed evenly rather than stopped for long stretches. A stand-in for a slow machine,
# not one: it slows compute alike everywhere, where a real machine differs more in some parts (the
# gloo barriers even pay a little extra here). Needs root and the cpu controller (cgroup v1 or v2).
#
#   FACTOR=2.5 DEMO_SEED=0 DEMO_OUTDIR=/tmp/slow bash bench/slow_demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FACTOR=${FACTOR:-2.5}
PERIOD=10000  # microseconds
QUOTA=$(python3 -c "import os; print(int($PERIOD * os.cpu_count() / float('$FACTOR')))")
name="stylegan-slow-demo-$$"
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then  # cgroup v2
  group=/sys/fs/cgroup/$name
  mkdir "$group"
  echo "$QUOTA $PERIOD" > "$group/cpu.max"
elif [ -d /sys/fs/cgroup/cpu ]; then  # cgroup v1
  group=/sys/fs/cgroup/cpu/$name
  mkdir "$group"
  echo "$PERIOD" > "$group/cpu.cfs_period_us"
  echo "$QUOTA" > "$group/cpu.cfs_quota_us"
else
  echo "slow_demo: no cgroup cpu controller under /sys/fs/cgroup" >&2
  exit 1
fi
trap 'rmdir "$group" 2>/dev/null || true' EXIT
echo "slow_demo: $(python3 -c "print($QUOTA / $PERIOD)") of $(nproc) cores ($FACTOR x slower), cgroup $group"
bash -c "echo \$\$ > '$group/cgroup.procs'; exec bash scripts/demo.sh"
