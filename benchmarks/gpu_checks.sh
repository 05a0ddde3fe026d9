#!/usr/bin/env bash
# Checks and timings for a machine with one CUDA GPU, run from the repository root:
#     [SKIP="step names ..."] bash benchmarks/gpu_checks.sh [OUTDIR]
# No install needed where PyTorch is present (src/ is put on PYTHONPATH). Every step runs under
# its own time limit and a failing step does not stop the next; the log is OUTDIR/log.txt and the
# run directories are packed into OUTDIR/runs.tgz.
set -u
OUT=${1:-${OUT:-/tmp/seqgan-gpu}}
RUNS=/tmp/seqgan-gpu-runs
mkdir -p "$OUT" && rm -rf "$RUNS" && mkdir -p "$RUNS"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
LOG=$OUT/log.txt
S="python3 -m seqgan"

step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2; shift 2
    [[ " ${SKIP:-} " == *" $name "* ]] && return
    local t0; t0=$(date +%s.%N)
    echo "=== $name: $*" >>"$LOG"
    timeout "$limit" "$@" >>"$LOG" 2>&1
    local rc=$?
    printf '=== %s: rc=%s in %.1f s\n' "$name" "$rc" "$(python3 -c "print($(date +%s.%N) - $t0)")" | tee -a "$LOG"
}

step info 60 bash -c 'nvidia-smi -L; python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(), \"nccl\", torch.cuda.nccl.version())"'
step tests 150 python3 -m pytest tests/test_cuda.py -q -rs -p no:cacheprovider
step tiny 60 $S train --preset tiny --device cuda --out $RUNS/tiny --no-progress
step quick 90 $S train --device cuda --out $RUNS/quick --no-progress
# One GPU: torchrun with one process (no process group), then two processes sharing the GPU over
# gloo (NCCL refuses two ranks on one device), compared with one process at fp32.
step torchrun-1 60 torchrun --standalone --nproc_per_node 1 -m seqgan train --preset tiny --device cuda \
    --out $RUNS/tiny-torchrun1 --no-progress
step fp32-1proc 120 $S train --preset tiny --device cuda --set run.precision=fp32 --out $RUNS/tiny-fp32 --no-progress
step fp32-1proc-eager 120 $S train --preset tiny --device cuda --set run.precision=fp32 run.cuda_graphs=false \
    --out $RUNS/tiny-fp32-eager --no-progress
step torchrun-2-gloo 120 env SEQGAN_DIST_BACKEND=gloo torchrun --standalone --nproc_per_node 2 -m seqgan train \
    --preset tiny --device cuda --set run.precision=fp32 --out $RUNS/tiny-gloo2 --no-progress
step compare 30 python3 - $RUNS/tiny-fp32-eager $RUNS/tiny-fp32 $RUNS/tiny-gloo2 <<'PY'
import json, sys
def load(run): return [json.loads(l) for l in open(run + "/metrics.jsonl")]
base = load(sys.argv[1])
for other in sys.argv[2:]:
    b = load(other)
    worst = max(abs(x[k] - y[k]) / max(abs(x[k]), 1e-12) for x, y in zip(base, b) for k in x
                if k != "elapsed_s" and isinstance(x[k], float))
    print(f"{other.split('/')[-1]} vs one eager process: {len(b)} / {len(base)} lines, max relative difference {worst:.2e}")
PY
step nccl-smoke 60 python3 - <<'PY'
import os, torch, torch.distributed as dist
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
dist.init_process_group("nccl", rank=0, world_size=1)
x = torch.arange(6.0, device="cuda"); dist.all_reduce(x)
parts = [torch.empty(6, device="cuda")]; dist.all_gather(parts, x)
print("nccl", torch.cuda.nccl.version(), "all_reduce/all_gather at world size 1:", parts[0].tolist())
dist.destroy_process_group()
PY
for b in sampling rollout discriminator; do
    step bench-$b 90 $S bench $b --device cuda --repeats 3 --json
done
step bench-adversarial-step 150 $S bench adversarial-step --device cuda --repeats 2 --json
step bench-schedule 120 $S bench schedule --device cuda --json
step paper-adv10 240 $S train --preset paper --device cuda --set schedule.adv_steps=10 run.compile=on --out $RUNS/paper-adv10 --no-progress
step paper-phases 30 python3 - $RUNS/paper-adv10/metrics.jsonl <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
last = {}
for r in lines:
    last[r["phase"]] = r
adv = [r for r in lines if r["phase"] == "adversarial"]
per_step = (adv[-1]["elapsed_s"] - last["d_pretrain"]["elapsed_s"]) / len(adv)
print(f"paper preset, measured: MLE done at {last['mle']['elapsed_s']:.1f} s, D pre-training done at "
      f"{last['d_pretrain']['elapsed_s']:.1f} s, {len(adv)} adversarial steps at {per_step:.2f} s each; "
      f"200 steps -> {last['d_pretrain']['elapsed_s'] + 200 * per_step:.0f} s")
PY
step d-variants 240 python3 benchmarks/gpu_discriminator_variants.py
tar -czf "$OUT/runs.tgz" --exclude='*.pt' -C "$RUNS" . 2>/dev/null
echo "=== summary"; grep -E '^=== .*rc=|^\{|speedup|projected|replay|FAILED|passed|failed|max relative|nccl|measured|elapsed' "$LOG" | tail -60
