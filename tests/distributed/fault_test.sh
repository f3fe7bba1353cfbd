#!/bin/bash
# A process killed with SIGKILL in a data-parallel job: the job ends with a non-zero status within
# 30 seconds (never a hang), the checkpoint process 0 saved before it loads intact, and training
# resumes from it on another number of processes (here one instead of two).
#   fault_test.sh MPIEXEC FAULT_PROGRAM
set -u
mpiexec=$1
program=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

timeout 30 "$mpiexec" -n 2 "$program" --checkpoint "$dir/run.ckpt" --die-after 2 \
  > "$dir/killed.log" 2>&1
status=$?
cat "$dir/killed.log"
if [ "$status" -eq 124 ]; then  # timeout's status: it had to stop the job
  echo "FAIL: the job was still running 30 seconds after one of its processes was killed"
  exit 1
fi
if [ "$status" -eq 0 ]; then
  echo "FAIL: the job ended with status 0 although one of its processes was killed"
  exit 1
fi
grep -q "^epoch 2 " "$dir/killed.log" || { echo "FAIL: no checkpoint of epoch 2 was reported"; exit 1; }
grep -q "^epoch 3 " "$dir/killed.log" && { echo "FAIL: training went on after the kill"; exit 1; }

"$mpiexec" -n 1 "$program" --checkpoint "$dir/run.ckpt" --resume > "$dir/resumed.log" 2>&1
resumed=$?
cat "$dir/resumed.log"
[ "$resumed" -eq 0 ] || { echo "FAIL: the resumed run failed ($resumed)"; exit 1; }
grep -q "resumed after epoch 2 on 1 process" "$dir/resumed.log" || { echo "FAIL: not resumed"; exit 1; }
grep -q "^finished 6 epochs" "$dir/resumed.log" || { echo "FAIL: the resumed run did not finish"; exit 1; }
echo "PASS: the job ended with status $status after the kill; resumed on one process"
