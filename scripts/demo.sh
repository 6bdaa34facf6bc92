#!/usr/bin/env bash
# The longest loop that exists so far, on the embedded default (SQLite + local files):
#   data set -> training pipeline -> registry (gate, champion) -> real-time scoring over HTTP
#   (Open Inference Protocol v2 and MLflow's /invocations) -> drift check on new data
#   -> retrain on the new version -> promotion gate -> audit trail verified and exported.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mc="$here/.venv/bin/modelcycle"
py="$here/.venv/bin/python"
demo="$here/demo-workspace"
port="${MODELCYCLE_DEMO_PORT:-8765}"
server_pid=""

cleanup() { if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

rm -rf "$demo"
step() { printf '\n\033[1m$ modelcycle %s\033[0m\n' "$*"; "$mc" "$@"; }

step init "$demo"
cd "$demo"

# 1. Data: a generated credit-risk data set (shipped generator, no download).
step data sample credit credit-2026-10.csv --rows 6000 --seed 1
step data add credit credit-2026-10.csv
step data show credit@1

# 2. Train with the built-in tabular trainer (a pipeline: load, split, preprocess, train,
#    evaluate, register as challenger), then make it champion: nothing to beat yet.
step train --data credit --target default --model hgb --seed 0
step models promote credit/1 --to champion
step runs list

# 3. Serve the champion and score through both protocols.
printf '\n\033[1m$ modelcycle serve credit@champion --port %s &\033[0m\n' "$port"
"$mc" serve credit@champion --host 127.0.0.1 --port "$port" > serve.log 2>&1 &
server_pid=$!
"$py" - "$port" <<'PY'
import csv, json, sys, time, urllib.request

port = sys.argv[1]
base = f"http://127.0.0.1:{port}"
for _ in range(300):  # bounded wait for readiness (at most ~60 s)
    try:
        with urllib.request.urlopen(f"{base}/v2/health/ready", timeout=1) as r:
            if r.status == 200:
                break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("server did not become ready; see serve.log")

def post(path, body, ctype="application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers.get("X-Model-Version"), json.loads(r.read())

with urllib.request.urlopen(f"{base}/v2/models/credit", timeout=5) as r:
    meta = json.loads(r.read())
print("v2 metadata inputs:", [(i["name"], i["datatype"]) for i in meta["inputs"]])
# One applicant from the training file, typed as the model's metadata says.
convert = {"INT64": int, "INT32": int, "FP64": float, "FP32": float, "BYTES": str}
dtypes = {i["name"]: i["datatype"] for i in meta["inputs"]}
with open("credit-2026-10.csv", newline="") as fh:
    record = next(r for r in csv.DictReader(fh) if all(r[k] != "" for k in dtypes))
row = {k: convert[t](record[k]) for k, t in dtypes.items()}
v2 = {"id": "demo-1", "inputs": [
    {"name": k, "shape": [1], "datatype": dtypes[k], "data": [v]} for k, v in row.items()
], "parameters": {"probabilities": True}}
version, answer = post("/v2/models/credit/infer", v2)
print(f"v2 infer (answered by version {version}):", json.dumps(answer["outputs"]))
version, answer = post("/invocations", {"dataframe_records": [row, row]})
print(f"MLflow /invocations (version {version}):", answer)
PY
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
echo "server stopped cleanly"

# 4. A month later the data has moved: check drift against the training data.
step data sample credit credit-2026-11.csv --rows 6000 --seed 2 --drift 0.6
step monitor drift --reference data:credit@1 --current credit-2026-11.csv

# 5. Retrain on the new version and let the gate decide on the same holdout.
step data add credit credit-2026-11.csv
step train --data credit@2 --target default --model hgb --seed 0
printf '\n\033[1m$ modelcycle models promote credit/2 --to champion\033[0m\n'
"$mc" models promote credit/2 --to champion || echo "(the gate refused: credit/1 stays champion)"
step models show credit@champion

# 6. Every change above is in the tamper-evident audit trail.
step audit log --limit 12
step audit verify
step audit export audit-export.jsonl
step audit verify --file audit-export.jsonl
printf '\nDemo workspace left in %s\n' "$demo"
